"""Synthetic data with known ground truth."""
from __future__ import annotations

import numpy as np

from harness.component import require
from harness.data.base import Dataset, Table, rng


class Linear(Dataset):
    """Linear regression with known weights.

        x ~ N(0, S),  S_ij = correlation^|i-j|   (Toeplitz: neighbouring features correlated)
        w* ~ N(0, I_d),  b* = 0
        y = x . w* + noise * e,  e ~ N(0, 1)

    A fresh draw per data seed; the test split (n_test rows) is drawn clean."""

    name, task, card = "linear", "regression", "datasets/linear.md"
    schema = {**Dataset.schema, "n_train": 2000, "n_test": 1000, "d": 20, "noise": 1.0, "correlation": 0.0}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        for k in ("n_train", "n_test", "d"):
            require(s[k] >= 1, f"{group}.{k}", s[k], "an integer >= 1")
        require(s["noise"] >= 0, f"{group}.noise", s["noise"], "a number >= 0")
        require(-1 < s["correlation"] < 1, f"{group}.correlation", s["correlation"], "a number in (-1, 1)")

    @classmethod
    def build(cls, s, seed):
        g = rng(seed, "data")
        d, n = s["d"], s["n_train"] + s["n_test"]
        i = np.arange(d)
        cov = s["correlation"] ** np.abs(i[:, None] - i[None, :])
        X = g.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
        w = g.standard_normal(d)
        y = X @ w + s["noise"] * g.standard_normal(n)
        k = s["n_train"]
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task="regression",
                     w_true=w, b_true=0.0, source="synthetic:linear")


class Friedman1(Dataset):
    """Friedman #1 (sklearn.datasets.make_friedman1), nonlinear regression:
    y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + noise * e, x ~ U[0, 1]^d (d >= 5)."""

    name, task, card = "friedman1", "regression", "datasets/friedman1.md"
    schema = {**Dataset.schema, "n_train": 2000, "n_test": 1000, "d": 10, "noise": 1.0}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        require(s["d"] >= 5, f"{group}.d", s["d"], "an integer >= 5")
        require(s["n_train"] >= 1 and s["n_test"] >= 1, f"{group}.n_train", s["n_train"], "n_train, n_test >= 1")

    @classmethod
    def build(cls, s, seed):
        from sklearn.datasets import make_friedman1

        k = s["n_train"]
        X, y = make_friedman1(n_samples=k + s["n_test"], n_features=s["d"], noise=s["noise"],
                              random_state=int(rng(seed, "data").integers(2**31 - 1)))
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task="regression", source="sklearn:make_friedman1")


DATASETS = [Linear, Friedman1]
