"""From a dataset's `Table` to the arrays a run trains on.

1. split: a held-out test split (stratified for classes) when the table has none, from the seed;
2. outliers: into the training split only (outliers.py);
3. scaling, fitted on the (dirty) training split: features are centred by their median and
   divided by 1.4826 x their median absolute deviation (MAD, = the sd for Gaussian data, and
   unmoved by up to half the rows being outliers), so outliers in the training split neither
   squash the clean data nor shrink their own residuals; a regression target is scaled the same
   way and metrics are reported back in its original units. `dataset.standardize=false` turns
   it off.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from harness.data.base import Table, rng
from harness.data.outliers import inject
from harness.tasks import TASKS


@dataclass
class Prepared:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int | None
    x_scale: np.ndarray
    y_center: float = 0.0
    y_scale: float = 1.0
    w_true: np.ndarray | None = None
    b_true: float | None = None
    name: str = ""
    source: str = ""
    evaluated_on: str = "test"     # the split in X_test / y_test: "test", or "val" (dataset.val_size > 0)
    digest: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    extra_test: dict[str, Any] = field(default_factory=dict)
    # with a validation split (evaluated_on "val"): the test split beside it, scaled as X_test;
    # read only by an adaptive search's trials (phase=search), which report it, never tune on it
    X_hold: np.ndarray | None = field(default=None, repr=False)
    y_hold: np.ndarray | None = field(default=None, repr=False)
    extra_hold: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @cached_property
    def lr_edge(self) -> float:
        """The stability edge of full-batch gradient descent on MSE for a linear model of these
        training rows: lr* = 2 / lambda_max(H), H = (2/n) A'A the Hessian of mean (A theta - y)^2,
        A = [1, X] (the bias column and the features as trained). GD diverges above lr*."""
        A = np.column_stack([np.ones(len(self.X_train)), self.X_train])
        return float(2.0 / np.linalg.eigvalsh(2.0 / len(A) * (A.T @ A))[-1])


def robust_scale(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 MAD per column; falls back to the sd, then 1, where a column is flat
    (a binary or mostly-zero feature has MAD 0)."""
    center = np.median(a, axis=0)
    scale = 1.482602218505602 * np.median(np.abs(a - center), axis=0)  # = scipy's MAD, scale="normal"
    sd = a.std(axis=0)
    scale = np.where(scale > 1e-12, scale, np.where(sd > 1e-12, sd, 1.0))
    return center, scale


def holdout(X: np.ndarray, y: np.ndarray, extra: dict, size: float, seed: int, stream: str, stratify: bool):
    """(X, y, extra) of the kept rows and of the held-out ones: a seeded share `size` of the rows
    (random stream `stream`), stratified by label where the task says (a class too rare to
    stratify: a plain random split); per-row extras follow their rows."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    idx = np.arange(n)
    r = int(rng(seed, stream).integers(2**31 - 1))
    try:
        tr, te = train_test_split(idx, test_size=size, random_state=r, stratify=y if stratify else None)
    except ValueError:
        tr, te = train_test_split(idx, test_size=size, random_state=r)
    tr, te = np.sort(tr), np.sort(te)
    pick = lambda d, i: {k: (v[i] if isinstance(v, np.ndarray) and len(v) == n else v) for k, v in d.items()}
    return (X[tr], y[tr], pick(extra, tr)), (X[te], y[te], pick(extra, te))


def split(table: Table, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict, dict]:
    if table.X_test is not None:
        return table.X, table.y, table.X_test, table.y_test, table.extra, table.extra_test
    (X, y, e), (Xt, yt, et) = holdout(table.X, table.y, table.extra, test_size, seed, "split",
                                      TASKS.get(table.task).stratify)
    return X, y, Xt, yt, e, et


def prepare(table: Table, *, name: str, section: dict[str, Any], seed: int,
            outliers: tuple[str, float, float | None]) -> Prepared:
    X, y, Xt, yt, extra, extra_test = split(table, section["test_size"], seed)
    kind, ratio, scale = outliers
    X, y, _ = inject(X, y, kind, ratio, scale, rng(seed, "outliers"), table.n_classes)
    evaluated_on, hold = "test", None
    if section.get("val_size"):
        hold = (Xt, yt, extra_test)
        # tuning: the run is judged on a validation split carved from the (dirty) training rows,
        # as a user's own tuning would be; the test split is dropped here, never seen
        (X, y, extra), (Xt, yt, extra_test) = holdout(X, y, extra, section["val_size"], seed, "validation",
                                                      TASKS.get(table.task).stratify)
        evaluated_on = "val"
    d = X.shape[1]
    xc, xs = np.zeros(d), np.ones(d)
    yc, ys = 0.0, 1.0
    scale_target = TASKS.get(table.task).scale_target
    if section["standardize"]:
        xc, xs = robust_scale(X)
        if scale_target:
            c, s = robust_scale(y[:, None])
            yc, ys = float(c[0]), float(s[0])
    f = lambda a: ((a - xc) / xs).astype(np.float64)
    if scale_target:
        y, yt = (y - yc) / ys, (yt - yc) / ys
        if hold is not None:
            hold = (hold[0], (hold[1] - yc) / ys, hold[2])
    key = json.dumps([name, section, seed, list(outliers)], sort_keys=True, default=str)
    return Prepared(
        X_train=f(X), y_train=y, X_test=f(Xt), y_test=yt, task=table.task, n_classes=table.n_classes,
        x_scale=xs, y_center=yc, y_scale=ys, w_true=table.w_true, b_true=table.b_true,
        name=name, source=table.source, evaluated_on=evaluated_on,
        digest=hashlib.sha1(key.encode()).hexdigest()[:16], extra=extra, extra_test=extra_test,
        **({} if hold is None else dict(X_hold=f(hold[0]), y_hold=hold[1], extra_hold=hold[2])),
    )
