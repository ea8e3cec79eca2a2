"""Your own loss, swept like a built-in:

    python -m harness -m loss=custom loss._target_=mylosses.cauchy +loss.c=0.5,1,2

`loss._target_` names an importable function `fn(pred, target, **params) -> per-example losses`
(elementwise, torch ops, so autograd gives its gradient), or a subclass of harness.losses.Loss
(which then declares its own tasks, head, schema and `defaults()`). Extra numeric keys under `loss` (added
with `+loss.NAME=...`) are the function's parameters: they arrive as [U, K, 1] tensors and may
differ run to run inside a stack, like Huber's delta. `loss.task` says which task it fits.

Before any training, `loss._target_` is checked in two steps (ConfigError naming it otherwise):
  1. without calling it: it imports, and it is a Loss subclass or a function written in Python
     (def or lambda: not a builtin such as os.system, not a class, not a function of Python's
     standard library) whose signature takes (pred, target, **params);
  2. one probe call on tiny tensors of the task's shapes, pred [1, 2, 3] (or [1, 2, 3, C]) and
     target [1, 2, 3], with the run's parameters: it must return a floating tensor of shape
     [1, 2, 3] (one loss per example) that autograd can differentiate with respect to pred.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from functools import lru_cache
from typing import Any

from harness.errors import ConfigError
from harness.losses.base import Loss
from harness.tasks import TASKS, user_tasks


@lru_cache(maxsize=None)
def _import(target: str):
    module, _, attr = target.replace(":", ".").rpartition(".")
    if not module:
        raise ConfigError("loss._target_", target, "a dotted path module.function, importable from here")
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as e:   # not found, or the module itself fails (a SyntaxError in it, ...)
        raise ConfigError("loss._target_", target, f"an importable function or Loss class ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + " ".join(str(e).split())[:200]


ALLOWED = "a Python function fn(pred, target, **params) returning one loss per example, or a harness.losses.Loss subclass"


def _check_function(target: str, obj, keys: tuple[str, ...]) -> None:
    """Step 1 of the module docstring: what cannot be a loss is refused without calling it."""
    if not inspect.isfunction(obj):
        kind = ("a class" if isinstance(obj, type) else "a builtin" if inspect.isbuiltin(obj)
                else f"an object of type {type(obj).__name__}")
        raise ConfigError("loss._target_", target, f"{ALLOWED}; this is {kind}")
    top = (getattr(obj, "__module__", None) or "").split(".")[0]
    if top in sys.stdlib_module_names:
        raise ConfigError("loss._target_", target, f"{ALLOWED}; this is {obj.__module__}.{obj.__qualname__} of Python's standard library")
    try:
        inspect.signature(obj).bind(None, None, **{k: None for k in keys})
    except TypeError as e:
        params = ", ".join(keys)
        raise ConfigError("loss._target_", target, f"{ALLOWED}; it cannot be called as fn(pred, target{', ' + params if params else ''}) "
                                                   f"(its signature is {inspect.signature(obj)}: {e})") from None


@lru_cache(maxsize=None)
def probe(target: str, task: str, params: tuple[tuple[str, float], ...]) -> None:
    """Step 2 of the module docstring: one call on tiny tensors, through the wrapper the engine calls."""
    import torch

    from harness.heads import HEADS

    t = TASKS.get(task)
    head = HEADS.get(t.head)
    shape = (1, 2, 3) if head.squeeze else (1, 2, 3, head.out_dim(3, {}))
    pred = torch.linspace(-1.0, 1.0, int(torch.tensor(shape).prod())).reshape(shape).requires_grad_(True)
    y = torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.int64 if t.integer_targets else torch.float32)
    values = {k: torch.full((1, 2, 1), v) for k, v in params}
    loss = _wrap(target, task, tuple(k for k, _ in params))()
    shown = f"pred {list(shape)}, target [1, 2, 3]"
    try:
        with torch.enable_grad():
            out = loss.per_example(pred, y, **values)
    except Exception as e:
        raise ConfigError("loss._target_", target, f"{ALLOWED}; a probe call on ({shown}) raised {_one_line(e)}") from None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        what = type(out).__name__ + (f" of {out.dtype}" if isinstance(out, torch.Tensor) else "")
        raise ConfigError("loss._target_", target, f"{ALLOWED}; a probe call on ({shown}) returned a {what}, not a floating tensor")
    if tuple(out.shape) != (1, 2, 3):
        raise ConfigError("loss._target_", target, f"{ALLOWED}; on ({shown}) it returned shape {list(out.shape)}, not [1, 2, 3] "
                                                   "(a loss reduced to its mean is one number: use reduction='none' or write it elementwise)")
    if not out.requires_grad:
        raise ConfigError("loss._target_", target, f"{ALLOWED}, differentiable in pred; on ({shown}) it returned a tensor "
                                                   "outside autograd's graph (compute it from pred with torch ops)")


@lru_cache(maxsize=None)
def _wrap(target: str, task: str, keys: tuple[str, ...]) -> type[Loss]:
    obj = _import(target)
    if isinstance(obj, type) and issubclass(obj, Loss):
        return obj
    _check_function(target, obj, keys)

    class Wrapped(Loss):
        name = "custom"
        tasks = frozenset({task})
        head = TASKS.get(task).head
        schema = {"_target_": str, "task": str, **{k: float for k in keys}}
        stacked = keys
        formula = f"{target}(pred, target)"
        floats_ok = False  # a user's function always gets [U, K, 1] tensors
        __doc__ = obj.__doc__

        @classmethod
        def defaults(cls):
            return {"_target_": target, "task": task}

        def per_example(self, out, y, **params):
            return obj(out, y.expand(out.shape[: y.dim()]), **params)

    Wrapped.__name__ = f"Custom[{target}]"
    return Wrapped


class Custom(Loss):
    name = "custom"
    schema = {"_target_": None, "task": str}
    tasks = frozenset(user_tasks())
    formula = "your function"

    @classmethod
    def resolve(cls, section: dict[str, Any]) -> type[Loss]:
        target, task = section.get("_target_"), section.get("task", cls.defaults()["task"])
        if not isinstance(target, str) or not target:
            raise ConfigError("loss._target_", target, "your loss as module.function (loss=custom loss._target_=mylosses.fn)")
        if task not in user_tasks():
            raise ConfigError("loss.task", task, "one of " + ", ".join(user_tasks()))
        keys = tuple(sorted(k for k in section if k not in ("name", "_target_", "task")))
        for k in keys:
            if isinstance(section[k], bool) or not isinstance(section[k], (int, float)):
                raise ConfigError(f"loss.{k}", section[k], "a number (parameters of a custom loss are numbers)")
        return _wrap(target, task, keys)

    @classmethod
    def normalize(cls, section, group):
        resolved = cls.resolve(dict(section))
        if resolved.name != "custom":  # a Loss class: its own schema
            out = resolved.normalize({k: v for k, v in section.items() if k not in ("_target_", "task")}, group)
            return {**out, "name": "custom", "_target_": section["_target_"], "task": section.get("task", cls.defaults()["task"])}
        out = {"name": "custom", "_target_": section["_target_"], "task": section.get("task", cls.defaults()["task"])}
        out.update({k: float(section[k]) for k in resolved.stacked})
        probe(out["_target_"], out["task"], tuple((k, out[k]) for k in resolved.stacked))
        return out


LOSSES = [Custom]
