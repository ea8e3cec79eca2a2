"""Outliers go into the training split only; the test split stays clean.

Exactly round(ratio * n) training rows are corrupted, chosen at random from the seed.
Which kinds apply to which data is the task's fact (harness/tasks/: `Task.outliers`, the first
being outliers.kind=default). `scale` means, per kind (its default when `outliers.scale` is null):

    shift       y += scale * sd(y): vertical outliers, all shifted the same way                [10]
    heavy_tail  y += scale * sd(y) * Cauchy noise (Student t, 1 dof)                            [3]
    leverage    x += scale * sd(x) * s, s a random sign per feature, y kept:
                bad high-leverage points, far out in x and off the true line                 [10]
    flip        (two classes) y -> 1 - y                                                     [-]
    symmetric   (classes) y -> a uniformly drawn *other* class                                [-]
    pairwise    (classes) y -> (y + 1) mod C, the class next to it                            [-]
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.registry import Registry


class OutlierKind:
    def __init__(self, name: str, default_scale: float | None,
                 apply: Callable[[np.ndarray, np.ndarray, np.ndarray, float, np.random.Generator, int | None],
                                 tuple[np.ndarray, np.ndarray]]):
        self.name, self.default_scale, self.apply = name, default_scale, apply


OUTLIERS: Registry[OutlierKind] = Registry("outliers.kind")


def _shift(X, y, idx, scale, rng, n_classes):
    y = y.copy()
    y[idx] += scale * y.std()
    return X, y


def _heavy_tail(X, y, idx, scale, rng, n_classes):
    y = y.copy()
    y[idx] += scale * y.std() * rng.standard_t(1.0, size=len(idx))
    return X, y


def _leverage(X, y, idx, scale, rng, n_classes):
    X = X.copy()
    signs = rng.choice([-1.0, 1.0], size=X.shape[1])
    X[idx] += scale * X.std(axis=0) * signs
    return X, y


def _flip(X, y, idx, scale, rng, n_classes):
    y = y.copy()
    y[idx] = 1 - y[idx]
    return X, y


def _symmetric(X, y, idx, scale, rng, n_classes):
    y = y.copy()
    y[idx] = (y[idx] + rng.integers(1, n_classes, size=len(idx))) % n_classes
    return X, y


def _pairwise(X, y, idx, scale, rng, n_classes):
    y = y.copy()
    y[idx] = (y[idx] + 1) % n_classes
    return X, y


for _kind in (
    OutlierKind("shift", 10.0, _shift),
    OutlierKind("heavy_tail", 3.0, _heavy_tail),
    OutlierKind("leverage", 10.0, _leverage),
    OutlierKind("flip", None, _flip),
    OutlierKind("symmetric", None, _symmetric),
    OutlierKind("pairwise", None, _pairwise),
):
    OUTLIERS.add(_kind.name, _kind)


def inject(X: np.ndarray, y: np.ndarray, kind: str, ratio: float, scale: float | None,
           rng: np.random.Generator, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (X, y, mask) with round(ratio * n) rows corrupted; mask marks them."""
    n = len(y)
    m = int(round(ratio * n))
    mask = np.zeros(n, dtype=bool)
    if m == 0:
        return X, y, mask
    idx = rng.choice(n, size=m, replace=False)
    mask[idx] = True
    X, y = OUTLIERS.get(kind).apply(X, y, idx, scale, rng, n_classes)
    return X, y, mask
