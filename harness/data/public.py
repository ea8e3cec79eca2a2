"""Public data sets that ship with installed packages (nothing is downloaded at run time)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from harness.data.base import Dataset, Table


@lru_cache(maxsize=None)
def _sklearn(loader: str):
    import sklearn.datasets

    b = getattr(sklearn.datasets, loader)()
    return np.asarray(b.data, dtype=np.float64), np.asarray(b.target)


class Diabetes(Dataset):
    """scikit-learn's bundled diabetes data: 442 patients, 10 baseline features, disease
    progression after one year (Efron et al. 2004)."""

    name, task, card = "diabetes", "regression", "datasets/diabetes.md"

    @classmethod
    def build(cls, s, seed):
        X, y = _sklearn("load_diabetes")
        return Table(X=X, y=y.astype(np.float64), task="regression", source="sklearn:load_diabetes")


DATASETS = [Diabetes]
