"""Bring your own data: CSV or Parquet with a header row, or .npz with arrays X, y
(optionally X_test, y_test). Every feature must be numeric and finite."""
from __future__ import annotations

import os

import numpy as np

from harness.component import require
from harness.data.base import Dataset, Table
from harness.errors import ConfigError
from harness.tasks import TASKS, check_numeric, user_tasks


class File(Dataset):
    """A user's file. `dataset.path`: .csv, .parquet or .npz; `dataset.target`: the target column
    (CSV/Parquet); `dataset.task`: a task that takes your own data (regression, binary,
multiclass, ...: harness/tasks/, `user_data`)."""

    name, card = "file", "datasets/file.md"
    user_data = True
    schema = {**Dataset.schema, "path": None, "target": None, "task": str}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        require(s["task"] in user_tasks(), f"{group}.task", s["task"], "one of " + ", ".join(user_tasks()))
        path = s["path"]
        require(isinstance(path, str) and path != "", f"{group}.path", path, "the path of a .csv, .parquet or .npz file")
        require(os.path.isfile(path), f"{group}.path", path, "an existing file (not found)")
        ext = os.path.splitext(path)[1].lower()
        require(ext in (".csv", ".parquet", ".pq", ".npz"), f"{group}.path", path, "a .csv, .parquet or .npz file")
        if ext != ".npz":
            require(isinstance(s["target"], str), f"{group}.target", s["target"], "the name of the target column")

    @classmethod
    def build(cls, s, seed):
        path, task = s["path"], s["task"]
        ext = os.path.splitext(path)[1].lower()
        key = "dataset.path"
        if ext == ".npz":
            with np.load(path) as z:
                for a in ("X", "y"):
                    if a not in z:
                        raise ConfigError(key, path, f"a .npz with arrays 'X' and 'y' (has {sorted(z.files)})")
                arrays = {k: z[k] for k in ("X", "y", "X_test", "y_test") if k in z}
            X = check_numeric(key, path, "X", arrays["X"])
            Xt = check_numeric(key, path, "X_test", arrays["X_test"]) if "X_test" in arrays else None
            y, yt = arrays["y"], arrays.get("y_test")
            if X.ndim != 2 or len(X) != len(y):
                raise ConfigError(key, path, f"X must be 2-D with one row per y (X {X.shape}, y {y.shape})")
            if (Xt is None) != (yt is None):
                raise ConfigError(key, path, "X_test and y_test must come together")
        else:
            import pandas as pd

            df = pd.read_csv(path) if ext == ".csv" else pd.read_parquet(path)
            target = s["target"]
            if target not in df.columns:
                raise ConfigError("dataset.target", target, "a column of " + path + ": " + ", ".join(map(str, df.columns)))
            feats = df.drop(columns=[target])
            bad = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
            if bad:
                raise ConfigError(key, path, f"numeric feature columns; column {bad[0]!r} is {feats[bad[0]].dtype}")
            nan = [c for c in df.columns if df[c].isna().any()]
            if nan:
                raise ConfigError(key, path, f"no missing values; column {nan[0]!r} has {int(df[nan[0]].isna().sum())} NaN")
            X = check_numeric(key, path, "features", feats.to_numpy())
            y, Xt, yt = df[target].to_numpy(), None, None
        y, yt, n_classes = TASKS.get(task).read_targets("dataset.target", s["target"] or "y", y, yt)
        return Table(X=X, y=y, X_test=Xt, y_test=yt, task=task, n_classes=n_classes, source=os.path.abspath(path))


DATASETS = [File]
