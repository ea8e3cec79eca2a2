"""Every metric lossbench logs, and the metric families that group them: one table, read by the
metrics code (which computes them) and by the report (which labels, bounds and ranks them).
Nothing here imports torch or scikit-learn.

A metric:  name (with its split: `test/rmse`), label (how it reads on an axis, with its unit),
           higher_is_better (None: no direction, e.g. a fitted mean), bounds (lowest, highest;
           None where unbounded), curve (logged at every eval point, else final-only).
A family:  the metrics that judge one kind of run (the run's `lossbench.eval` tag): the task's,
           or `embedding` for losses that train an embedding whatever the task.
           primary   the metric runs of the family are ranked by
           members   what the family's code computes from the model's test outputs
           extras    what the engine adds where the run offers it: param_error where the data's
                     true weights are known and the model is linear; retrieval metrics of the
                     model's representation (an MLP's hidden layer) where it has one
           extras_are  what the extras are of, in words, for a report's series name
"""
from __future__ import annotations

from dataclasses import dataclass

FRACTION = (0.0, 1.0)
POSITIVE = (0.0, None)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool | None = None
    bounds: tuple[float | None, float | None] = (None, None)
    curve: bool = False

    def axis_label(self) -> str:
        """The label with its direction: `test RMSE (target units), lower is better`."""
        better = {True: "higher is better", False: "lower is better"}.get(self.higher_is_better)
        return f"{self.label}, {better}" if better else self.label


@dataclass(frozen=True)
class Family:
    name: str
    primary: str
    members: tuple[str, ...]
    extras: tuple[str, ...] = ()
    extras_are: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every final metric a run of the family may log, in the report's column order."""
        return self.members + self.extras

    @property
    def curves(self) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if METRICS[m].curve)

    @property
    def scores_representation(self) -> bool:
        """Its metrics include retrieval metrics, which score a representation of the inputs."""
        return any(m in RETRIEVAL for m in self.metrics)


_METRICS = [
    # training curves (every family)
    Metric("train/loss", "training loss (the run's own loss)", False, curve=True),
    Metric("train/objective", "training objective (loss + penalty)", False, curve=True),
    Metric("train/grad_norm", "gradient norm", False, curve=True),
    Metric("test/loss", "test loss (the run's own loss)", False, curve=True),
    # regression
    Metric("test/rmse", "test RMSE (target units)", False, POSITIVE, curve=True),
    Metric("test/mae", "test MAE (target units)", False, POSITIVE, curve=True),
    Metric("test/r2", "test R²", True, (None, 1.0), curve=True),
    Metric("param_error", "‖ŵ − w*‖₂ (weight error)", False, POSITIVE, curve=True),
    # beside the families (harness/extras.py)
    Metric("data/lr_edge", "stability edge lr* = 2/λmax of GD on MSE (linear model)", None, POSITIVE),
    Metric("data/outlier_share", "share of training rows with a first-fit residual beyond 3 robust sd", None, FRACTION),
    Metric("data/minority_share", "the rarest class's share of the training labels", None, FRACTION),
    Metric("data/label_noise", "share of training labels a cross-validated logistic regression predicts otherwise",
           None, FRACTION),
    Metric("support_f1", "support F1 of ŵ against w* (|ŵⱼ| > 0.1 max|ŵ|)", True, FRACTION),
    Metric("opt/distance", "‖θ − θ*‖₂, distance to the exact optimum", False, POSITIVE),
    Metric("opt/gap", "J(θ) − J(θ*), objective gap to the exact optimum", False, POSITIVE),
    # counts
    Metric("test/poisson_deviance", "test mean Poisson deviance", False, POSITIVE, curve=True),
    # classification
    Metric("test/accuracy", "test accuracy (fraction)", True, FRACTION, curve=True),
    Metric("test/precision", "test precision (fraction)", True, FRACTION, curve=True),
    Metric("test/recall", "test recall (fraction)", True, FRACTION, curve=True),
    Metric("test/f1", "test F1", True, FRACTION, curve=True),
    Metric("test/roc_auc", "test ROC AUC", True, FRACTION),
    Metric("test/log_loss", "test log loss (nats)", False, POSITIVE, curve=True),
    Metric("test/ece", "test expected calibration error (fraction)", False, FRACTION, curve=True),
    # distributions and densities
    Metric("test/kl", "test KL(p‖q) (nats)", False, POSITIVE, curve=True),
    Metric("test/reverse_kl", "test KL(q‖p) (nats)", False, POSITIVE, curve=True),
    Metric("test/nll", "held-out −log q(x) per sample (nats)", False, curve=True),
    Metric("fit/mu", "fitted mean μ", curve=True),
    Metric("fit/sigma", "fitted standard deviation σ", None, POSITIVE, curve=True),
    # embeddings (retrieval)
    Metric("test/recall_at_1", "test recall@1 (fraction)", True, FRACTION),
    Metric("test/recall_at_5", "test recall@5 (fraction)", True, FRACTION),
    Metric("test/knn_accuracy", "test 5-NN accuracy (fraction)", True, FRACTION),
]
METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}

RETRIEVAL = ("test/recall_at_1", "test/recall_at_5", "test/knn_accuracy")
_CLASSES = ("test/accuracy", "test/precision", "test/recall", "test/f1")

_FAMILIES = [
    Family("regression", "test/rmse", ("test/rmse", "test/mae", "test/r2"), ("param_error",)),
    Family("count", "test/poisson_deviance", ("test/poisson_deviance", "test/rmse", "test/mae"), ("param_error",)),
    Family("binary", "test/accuracy", _CLASSES + ("test/roc_auc", "test/log_loss", "test/ece")),
    Family("multiclass", "test/accuracy", _CLASSES + ("test/log_loss", "test/ece"), RETRIEVAL, "hidden layer"),
    Family("distribution", "test/kl", ("test/kl", "test/accuracy")),
    Family("density", "test/kl", ("test/kl", "test/reverse_kl", "test/nll", "fit/mu", "fit/sigma")),
    Family("embedding", "test/recall_at_1", RETRIEVAL),
]
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}


class FamilyMetrics:
    """The code that computes a family's metrics (harness/metrics.py has the shared ones; a task
    with a family of its own may bring it, harness/tasks/). torch-free here: only the contract.

        curve(out, ev) -> {name: [U, K] tensor}   cheap metrics of every run, at each eval point
        final(out, ev) -> {name: [U, K] array}    the rest, once after training"""

    name = ""

    def curve(self, out, ev) -> dict:
        return {}

    def final(self, out, ev) -> dict:
        return {}


SPLITS = {"train": "training", "val": "validation"}   # a test metric on another split: train/rmse, val/rmse


def metric(name: str) -> Metric:
    """The metric of that name: a known one, a test metric on the training split
    (`train/rmse`, train.eval_train: as `test/rmse`, on the training rows), or a bare entry for
    an unknown one (a user's custom metric)."""
    if name in METRICS:
        return METRICS[name]
    split, _, rest = name.partition("/")
    test = METRICS.get(f"test/{rest}") if split in SPLITS else None
    if test is not None:
        return Metric(name, test.label.replace("test ", SPLITS[split] + " ", 1), test.higher_is_better, test.bounds, test.curve)
    return Metric(name, name)


def higher_is_better(name: str) -> bool | None:
    return metric(name).higher_is_better


def is_metric(name: str) -> bool:
    """A known metric, or any split-prefixed name (`test/...`, `train/...`)."""
    return name in METRICS or "/" in name
