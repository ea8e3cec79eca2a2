"""RunSpec: everything that defines one run, validated, normalized, frozen and hashable.

`build_spec(cfg)` is the one place user input is checked (every check raises a one-line
ConfigError) and the one place the run's components are resolved: its task, the head its loss
needs, the metric family that judges it, the data's shape and the model's output size are
fields of the spec, so that code after it trusts its inputs and never asks a component its
name. Its hash identifies the run (the MLflow tag `lossbench.config_hash`), and two keys say
which runs can train together:

    stack_key  what must match to share one batched program: data set and shapes, model
               architecture, loss code path and options, optimizer kind, steps, batch size, ...
    group_key  what must match to share training data inside a stack: also the data seed,
               the outlier draw and the seed (which fixes initialization and minibatch order)

Runs in a stack may differ in every number: learning rate, regularization, loss parameters
such as Huber's delta, outlier ratio and kind, seed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.component import Section, coerce, require
from harness.errors import ConfigError

SECTIONS = ("loss", "dataset", "model", "optimizer", "regularization", "outliers", "train", "tracking")
TOP = SECTIONS + ("seed", "device", "study", "phase")
PHASES = (None, "tune", "final", "search")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")


class Regularization(Section):
    """objective = mean data loss + weight * penalty;  l1: sum |W|,  l2: sum W^2 (biases are
    not penalized)."""

    name = "regularization"
    schema = {"kind": str, "weight": float}

    @classmethod
    def check(cls, s, group):
        require(s["kind"] in ("none", "l1", "l2"), f"{group}.kind", s["kind"], "one of none, l1, l2")
        require(s["weight"] >= 0 and s["weight"] != float("inf"), f"{group}.weight", s["weight"], "a number >= 0")


class Outliers(Section):
    name = "outliers"
    schema = {"kind": str, "ratio": float, "scale": None}

    @classmethod
    def check(cls, s, group):
        r = s["ratio"]
        require(isinstance(r, (int, float)) and not isinstance(r, bool) and 0.0 <= r <= 0.5,
                f"{group}.ratio", r, "a fraction in [0, 0.5]")
        s["ratio"] = float(r)
        if s["scale"] is not None:
            require(isinstance(s["scale"], (int, float)) and s["scale"] > 0, f"{group}.scale", s["scale"], "null or a number > 0")
            s["scale"] = float(s["scale"])


class Train(Section):
    name = "train"
    schema = {"steps": int, "batch_size": None, "eval_every": int, "log_every": int,
              "dtype": str, "divergence_factor": float, "eval_train": bool, "optimum": bool, "log_weights": bool,
              "facts": bool, "prune": str, "prune_every": int, "prune_eta": float, "prune_keep": None, "prune_tie": float, "prune_race": str, "prune_metric": str,
              "prune_compact": bool}

    @classmethod
    def check(cls, s, group):
        require(s["steps"] >= 1, f"{group}.steps", s["steps"], "an integer >= 1")
        b = s["batch_size"]
        if b is not None:
            require(isinstance(b, int) and not isinstance(b, bool) and b >= 1, f"{group}.batch_size", b, "null (full batch) or an integer >= 1")
        require(s["eval_every"] >= 1, f"{group}.eval_every", s["eval_every"], "an integer >= 1")
        require(s["log_every"] >= 1, f"{group}.log_every", s["log_every"], "an integer >= 1")
        require(s["dtype"] in DTYPES, f"{group}.dtype", s["dtype"], "one of " + ", ".join(DTYPES))
        require(s["divergence_factor"] > 1, f"{group}.divergence_factor", s["divergence_factor"], "a number > 1")
        from harness import prune

        prune.check_options(s, group)   # train.prune=halving and its options


class Tracking(Section):
    name = "tracking"
    schema = {"uri": str, "experiment": str, "curves": str}

    @classmethod
    def check(cls, s, group):
        require(isinstance(s["uri"], str) and s["uri"] != "", f"{group}.uri", s["uri"], "an MLflow tracking URI such as sqlite:///mlflow.db")
        require(s["curves"] in ("metrics", "parquet"), f"{group}.curves", s["curves"], "metrics or parquet")
        require(isinstance(s["experiment"], str) and s["experiment"] != "", f"{group}.experiment", s["experiment"], "an experiment name")


def freeze(x: Any) -> Any:
    if isinstance(x, Mapping):
        return tuple((k, freeze(v)) for k, v in sorted(x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(freeze(v) for v in x)
    return x


@dataclass(frozen=True)
class RunSpec:
    loss: dict = field(hash=False)
    dataset: dict = field(hash=False)
    model: dict = field(hash=False)
    optimizer: dict = field(hash=False)
    regularization: dict = field(hash=False)
    outliers: dict = field(hash=False)
    train: dict = field(hash=False)
    seed: int = 0
    device: str = "auto"
    task: str = "regression"
    tracking: dict = field(default_factory=dict, hash=False, compare=False)
    study: Any = field(default=None, hash=False, compare=False)
    overrides: tuple[str, ...] = field(default=(), hash=False, compare=False)
    config_hash: str = ""
    phase: str | None = field(default=None, compare=False)   # of a tuned protocol: tune | final
    # resolved by build_spec, from the components (not part of the identity: they follow from it)
    head: str = field(default="value", compare=False)       # harness/heads.py
    family: str = field(default="regression", compare=False)  # harness/metric_table.py
    n_features: int = field(default=0, compare=False)
    rows: int = field(default=0, compare=False)              # training rows
    test_rows: int = field(default=0, compare=False)
    n_classes: int | None = field(default=None, compare=False)
    out_dim: int = field(default=1, compare=False)           # model outputs per example
    stack: tuple = field(default=(), compare=False, repr=False)
    group: tuple = field(default=(), compare=False, repr=False)

    # -- identity -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The normalized config: what is logged as params and as config.yaml."""
        out = {k: getattr(self, k) for k in ("loss", "dataset", "model", "optimizer", "regularization",
                                             "outliers", "train")}
        out.update(seed=self.seed, device=self.device, tracking=self.tracking)
        if self.phase is not None:
            out["phase"] = self.phase
        if self.study is not None:
            out["study"] = self.study
        return out

    @property
    def eval_family(self) -> str:
        """The metric family that judges this run (the `lossbench.eval` tag)."""
        return self.family

    @property
    def data_seed(self) -> int:
        s = self.dataset.get("seed")
        return self.seed if s is None else s

    def outlier_tuple(self) -> tuple[str, float, float | None]:
        o = self.outliers
        return (o["kind"], o["ratio"], o["scale"])

    def stack_key(self) -> tuple:
        return self.stack

    def group_key(self) -> tuple:
        return self.group

    def __hash__(self) -> int:
        return hash(self.config_hash)

    def __eq__(self, other) -> bool:
        return isinstance(other, RunSpec) and self.config_hash == other.config_hash


def config_hash(config: Mapping[str, Any]) -> str:
    """sha1 of the canonical JSON of the config, without where it is tracked and the study notes."""
    from harness.schema import NOT_PARAMS

    core = {k: v for k, v in config.items() if k not in NOT_PARAMS}
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _section(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    s = cfg.get(name)
    if s is None:
        return {}
    if not isinstance(s, Mapping):
        raise ConfigError(name, s, "a config section (key: value pairs)")
    return dict(s)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", device, "auto or cpu: no CUDA device is available here")
    return device


def build_spec(cfg: Mapping[str, Any], overrides: tuple[str, ...] = ()) -> RunSpec:
    """Validates a resolved config (a plain nested dict) and returns its RunSpec."""
    from harness.data import DATASETS
    from harness.heads import HEADS
    from harness.losses import LOSSES, loss_class
    from harness.models import MODELS
    from harness.optim import OPTIMIZERS
    from harness.tasks import TASKS

    for key in cfg:
        if key not in TOP and key != "hydra":
            raise ConfigError(key, cfg[key], "a known top-level key: " + ", ".join(TOP))

    def named(group: str, registry) -> tuple[type, dict]:
        s = _section(cfg, group)
        cls = registry.get(s.get("name"))
        return cls, cls.normalize(s, group)

    _, loss = named("loss", LOSSES)
    data_cls, dataset = named("dataset", DATASETS)
    model_cls, model = named("model", MODELS)
    opt_cls, optimizer = named("optimizer", OPTIMIZERS)
    reg, outl, train, tracking = (cls.normalize(_section(cfg, cls.name), cls.name)
                                  for cls in (Regularization, Outliers, Train, Tracking))
    for s in (reg, outl, train, tracking):
        s.pop("name")
    seed = coerce("seed", cfg.get("seed", 0), int)
    require(seed >= 0, "seed", seed, "an integer >= 0")
    device = cfg.get("device", "auto")
    require(device in DEVICES, "device", device, "one of " + ", ".join(DEVICES))
    resolve_device(device)

    task = TASKS.get(data_cls.task_of(dataset))
    loss_cls = loss_class(loss)
    if task.name not in loss_cls.tasks:
        fits = [n for n, c in LOSSES.items() if task.name in c.tasks and n != "custom"]
        raise ConfigError("loss", loss["name"], f"a loss for dataset={dataset['name']} (task {task.name}): " + ", ".join(fits))
    head = HEADS.get(loss_cls.head_for(task.name))
    if head.name not in model_cls.heads:
        fits = [n for n, c in MODELS.items() if head.name in c.heads]
        raise ConfigError("model", model["name"], f"a model with a {head.name} head for loss={loss['name']} on task {task.name}: " + ", ".join(fits))
    if opt_cls.full_batch and train["batch_size"] is not None:
        raise ConfigError("train.batch_size", train["batch_size"], f"null: optimizer={optimizer['name']} is full batch (use sgd, momentum or adam for minibatches)")
    _outliers(outl, task)
    from harness import prune

    prune.resolve(train, head.family or task.family, dataset.get("val_size") or 0.0)   # its score; dropped when none
    if train["optimum"]:
        from harness import optimum

        optimum.check(loss_cls, model_cls, reg)

    phase = cfg.get("phase")
    require(phase in PHASES, "phase", phase, "null, tune or final (set by a study's tuned protocol), or search (an adaptive search's trials)")
    spec_cfg = dict(loss=loss, dataset=dataset, model=model, optimizer=optimizer, regularization=reg,
                    outliers=outl, train=train, seed=seed, device=device, **({"phase": phase} if phase else {}))
    data_seed = seed if dataset.get("seed") is None else dataset["seed"]
    shape = data_cls.shape(dataset) or _loaded_shape(dataset, seed, data_seed, outl)   # file and data errors surface here
    b = train["batch_size"]
    if b is not None and b > shape.n_train:
        raise ConfigError("train.batch_size", b, f"at most the {shape.n_train} training rows of dataset={dataset['name']}")
    from harness.optim import STACKED

    opt = {k: v for k, v in optimizer.items() if k not in STACKED}
    stack = freeze((task.name, dataset, model, loss_cls.options_of(loss) | {"name": loss["name"]}, opt, train, device))
    outlier_tuple = (outl["kind"], outl["ratio"], outl["scale"])
    return RunSpec(loss=loss, dataset=dataset, model=model, optimizer=optimizer, regularization=reg,
                   outliers=outl, train=train, seed=seed, device=device, task=task.name, tracking=tracking,
                   study=cfg.get("study"), overrides=tuple(overrides), config_hash=config_hash(spec_cfg), phase=phase,
                   head=head.name, family=head.family or task.family, n_features=shape.n_features,
                   rows=shape.n_train, test_rows=shape.n_test, n_classes=shape.n_classes,
                   out_dim=head.out_dim(shape.n_classes, model), stack=stack,
                   group=(stack, data_seed, outlier_tuple, seed))


def _outliers(outl: dict, task) -> None:
    """Resolves outliers.kind=default (the task's first kind) and the kind's default scale; a
    kind the task does not take, or a ratio without a kind, is a ConfigError."""
    from harness.data.outliers import OUTLIERS

    allowed = sorted(task.outliers)
    if outl["kind"] == "default":
        outl["kind"] = task.outliers[0] if task.outliers else "none"
    if outl["kind"] == "none":
        if outl["ratio"] > 0:
            raise ConfigError("outliers.ratio", outl["ratio"], f"0 for task {task.name}, which takes no outliers" if not allowed
                              else f"0 with outliers.kind=none (kinds for task {task.name}: {', '.join(allowed)})")
    elif outl["kind"] not in allowed:
        raise ConfigError("outliers.kind", outl["kind"], f"an outlier kind for task {task.name}: " + ", ".join(allowed + ["none"]))
    elif outl["scale"] is None:
        outl["scale"] = OUTLIERS.get(outl["kind"]).default_scale


_shapes: dict[tuple, Any] = {}


def _loaded_shape(dataset: dict, seed: int, data_seed: int, outl: dict):
    """The shape of data that must be built to be known (public sets, files): built once per
    distinct (data set, data seed, outliers), which also surfaces its errors; only the shape is kept."""
    from harness.data import Shape, load

    outliers = (outl["kind"], outl["ratio"], outl["scale"])
    key = (freeze(dataset), data_seed, outliers)
    if key not in _shapes:
        d = load(dataset, seed, outliers)
        _shapes[key] = Shape(len(d.y_train), len(d.y_test), d.X_train.shape[1], d.n_classes)
    return _shapes[key]
