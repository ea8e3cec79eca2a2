"""Classification: integer labels 0..C-1; binary (C = 2, one logit) and multi-class (C logits)."""
from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.tasks.base import LABEL_NOISE, Task


def encode_labels(key: str, value, y: np.ndarray, y_test: np.ndarray | None, name: str, at_least: int,
                  exactly: int | None = None):
    """Maps class labels to 0..C-1 (sorted): (y, y_test, C); too few classes -> ConfigError."""
    y = np.asarray(y)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ConfigError(key, value, "labels without NaN")
    classes = np.unique(y if y_test is None else np.concatenate([y, y_test]))
    if exactly is not None and len(classes) != exactly:
        raise ConfigError(key, value, f"dataset.task={name} needs a target with {exactly} distinct values, found {len(classes)}")
    if len(classes) < at_least:
        raise ConfigError(key, value, f"dataset.task={name} needs at least {at_least} classes")
    code = lambda a: np.searchsorted(classes, a).astype(np.int64)
    return code(y), (None if y_test is None else code(y_test)), len(classes)


def class_facts(data) -> dict[str, float]:
    """data/minority_share: the rarest class's share of the training labels; data/label_noise:
    the share of training labels that a 5-fold cross-validated logistic regression predicts
    otherwise (an upper bound on the label-noise rate: it counts the model's own errors too)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    y = np.asarray(data.y_train)
    counts = np.bincount(y)
    folds = int(min(5, counts[counts > 0].min()))
    out = {"data/minority_share": float(counts[counts > 0].min() / len(y))}
    if folds >= 2:
        pred = cross_val_predict(LogisticRegression(max_iter=2000), data.X_train, y, cv=folds)
        out["data/label_noise"] = float(np.mean(pred != y))
    return out


class Binary(Task):
    """y int {0, 1} [n]; one logit per example (its losses compare it with y as a float). Label
    noise: flips."""

    name = family = "binary"
    head = "logit"
    outliers = ("flip",)
    stratify = True
    noise_axis = LABEL_NOISE
    user_data = True

    def facts(self, data):
        return class_facts(data)

    def read_targets(self, key, value, y, y_test):
        return encode_labels(key, value, y, y_test, self.name, 2, exactly=2)


class Multiclass(Task):
    """y int {0, ..., C-1} [n], int64 on the device; C logits per example. Label noise:
    symmetric or pairwise."""

    name = family = "multiclass"
    head = "logits"
    integer_targets = True
    outliers = ("symmetric", "pairwise")
    stratify = True
    noise_axis = LABEL_NOISE
    user_data = True

    def facts(self, data):
        return class_facts(data)

    def read_targets(self, key, value, y, y_test):
        return encode_labels(key, value, y, y_test, self.name, 2)


TASKS = [Binary, Multiclass]
