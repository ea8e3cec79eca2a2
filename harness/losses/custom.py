"""Your own loss, swept like a built-in:

    python -m harness -m loss=custom loss._target_=mylosses.cauchy +loss.c=0.5,1,2

`loss._target_` names an importable function `fn(pred, target, **params) -> per-example losses`
(elementwise, torch ops, so autograd gives its gradient), or a subclass of harness.losses.Loss
(which then declares its own tasks, head, schema and `defaults()`). Extra numeric keys under `loss` (added
with `+loss.NAME=...`) are the function's parameters: they arrive as [U, K, 1] tensors and may
differ run to run inside a stack, like Huber's delta. `loss.task` says which task it fits.
"""
from __future__ import annotations

import importlib
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
    except (ImportError, AttributeError) as e:
        raise ConfigError("loss._target_", target, f"an importable function or Loss class ({type(e).__name__}: {e})") from None


@lru_cache(maxsize=None)
def _wrap(target: str, task: str, keys: tuple[str, ...]) -> type[Loss]:
    obj = _import(target)
    if isinstance(obj, type) and issubclass(obj, Loss):
        return obj
    if not callable(obj):
        raise ConfigError("loss._target_", target, "a callable fn(pred, target, **params)")

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
        return out


LOSSES = [Custom]
