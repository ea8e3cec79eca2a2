"""The task contract: what a data set's targets are, how they reach the device, how a run on
them is judged, and how a report talks about them.

A task is a small class; everything generic code needs to know about it is a class attribute
or a method here, so that the engine, the metrics, the data preparation and the report never
ask a task for its name:

    family         the metric family that judges its runs (harness/metric_table.py); a loss whose
                   head imposes another family (an embedding) overrides it
    head           what the model outputs for a user's own loss (loss=custom loss.task=...)
    integer_targets  targets go onto the device as int64 (class indices), else in the run's dtype
    outliers       the corruptions that apply (harness/data/outliers.py); the first is the default
    stratify       held-out splits are stratified by label
    scale_target   prepare() scales the target robustly (metrics report it in original units)
    noise_axis     how a report names outliers.ratio for this task
    figures        extra report figures (harness/report/figures.py: FIGURES) beyond every family's
    user_data      bring-your-own data (dataset=file, dataset=openml) may have this task
    metrics        the code of the task's own metric family, when no shared one fits
                   (metric_table.FamilyMetrics; None: its family is computed in harness/metrics.py)

`targets(datas, loss, stack)` puts the targets of a stack's data groups on the device
(`Targets`); `read_targets(...)` turns a user's raw target column into the task's form.

Nothing here imports torch at module level: the report reads these facts without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from harness.errors import ConfigError

OUTLIER_RATIO = "outlier ratio (fraction of training rows corrupted)"
LABEL_NOISE = "label-noise ratio (fraction of training labels changed)"


@dataclass
class Targets:
    """A stack's targets on the device, one slice per data group (U groups):

    train      [U, n(, C)]  what the loss trains on
    test       [U, m(, C)]  what the test metrics compare with
    test_loss  [U, m(, C)]  what the loss is evaluated on, for test/loss
    const      per-group constants the loss and the metrics both need (a target density)
    train_eval [U, n(, C)]  the training split as the metrics compare with (train.eval_train);
               None: `train`"""

    train: Any
    test: Any
    test_loss: Any
    const: dict[str, Any] = field(default_factory=dict)
    train_eval: Any = None


Stack = Callable[..., Any]   # stack(list of arrays, integer=False) -> one tensor [U, ...] on the device


class Task:
    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    head: ClassVar[str] = "value"
    integer_targets: ClassVar[bool] = False
    outliers: ClassVar[tuple[str, ...]] = ()
    stratify: ClassVar[bool] = False
    scale_target: ClassVar[bool] = False
    noise_axis: ClassVar[str] = OUTLIER_RATIO
    figures: ClassVar[tuple[str, ...]] = ()
    user_data: ClassVar[bool] = False
    metrics: ClassVar[Any] = None

    def targets(self, datas: list, loss: type, stack: Stack) -> Targets:
        """The default: y_train and y_test as they are."""
        y = stack([d.y_train for d in datas], integer=self.integer_targets)
        yte = stack([d.y_test for d in datas], integer=self.integer_targets)
        return Targets(y, yte, yte)

    def target_width(self, n_classes: int | None) -> int:
        """Numbers per example in y (for the memory estimate): 1, or C for class distributions."""
        return 1

    def artifacts(self, data) -> dict[str, str]:
        """Text files recorded with each run (name -> content): what the report needs of the data
        beyond params and metrics (a density's target p)."""
        return {}

    def facts(self, data) -> dict[str, float]:
        """Facts of a run's training data that explain which loss suits it (train.facts=true:
        logged as data/<name>, the advise study's report quotes them); {} by default."""
        return {}

    def read_targets(self, key: str, value: Any, y: np.ndarray, y_test: np.ndarray | None):
        """A user's target column(s) -> (y, y_test, n_classes), or ConfigError(key, value, why)."""
        raise ConfigError(key, value, f"a task that takes your own data (task {self.name} does not)")


def check_numeric(key: str, value: Any, name: str, a: np.ndarray) -> np.ndarray:
    """`a` as finite float64, or ConfigError naming the array."""
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(key, value, f"array {name!r} must be numeric") from None
    if not np.isfinite(a).all():
        raise ConfigError(key, value, f"array {name!r} has NaN or infinite values; clean or drop them first")
    return a
