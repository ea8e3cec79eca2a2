"""Bring your own data: CSV or Parquet with a header row, or .npz with arrays X, y
(optionally X_test, y_test). Every feature must be numeric and finite, and there must be rows
enough for a training and a test split of at least one row each (`min_rows`).

A file that cannot be read is a ConfigError naming dataset.path and why: empty, no data rows,
not parseable, or an .npz array of Python objects (never unpickled: allow_pickle=False, as
loading one could run code)."""
from __future__ import annotations

import math
import os
import zipfile

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
        require(not os.path.isdir(path), f"{group}.path", path, "a file (this is a directory)")
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
            arrays = _npz(key, path)
            X = check_numeric(key, path, "X", arrays["X"])
            Xt = check_numeric(key, path, "X_test", arrays["X_test"]) if "X_test" in arrays else None
            y, yt = arrays["y"], arrays.get("y_test")
            if X.ndim != 2 or len(X) != len(y):
                raise ConfigError(key, path, f"X must be 2-D with one row per y (X {X.shape}, y {y.shape})")
            if (Xt is None) != (yt is None):
                raise ConfigError(key, path, "X_test and y_test must come together")
            if Xt is not None and (Xt.ndim != 2 or Xt.shape[1] != X.shape[1] or len(Xt) != len(yt)):
                raise ConfigError(key, path, f"X_test 2-D with X's {X.shape[1]} columns and one row per y_test "
                                             f"(X_test {Xt.shape}, y_test {yt.shape})")
        else:
            import pandas as pd

            df = _table(key, path, ext)
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
        _enough_rows(key, path, len(X), None if Xt is None else len(Xt), s["test_size"], s["val_size"])
        y, yt, n_classes = TASKS.get(task).read_targets("dataset.target", s["target"] or "y", y, yt)
        return Table(X=X, y=y, X_test=Xt, y_test=yt, task=task, n_classes=n_classes, source=os.path.abspath(path))


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + " ".join(str(e).split())[:200]


def _npz(key: str, path: str) -> dict[str, np.ndarray]:
    """The arrays X, y (and X_test, y_test when there) of an .npz, read without unpickling."""
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if "pickle" in str(e):   # not an archive: numpy took it for a pickle, which it never loads here
            raise ConfigError(key, path, "an .npz written by numpy.savez (this is not one: not a zip archive)") from None
        raise ConfigError(key, path, f"an .npz written by numpy.savez (it cannot be read: {_one_line(e)})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):   # a bare .npy under an .npz name
        raise ConfigError(key, path, "an .npz written by numpy.savez with arrays 'X' and 'y' (this holds one bare array)")
    with z:
        for a in ("X", "y"):
            if a not in z:
                raise ConfigError(key, path, f"a .npz with arrays 'X' and 'y' (has {sorted(z.files)})")
        arrays = {}
        for k in ("X", "y", "X_test", "y_test"):
            if k not in z:
                continue
            try:
                arrays[k] = z[k]
            except ValueError as e:
                if "allow_pickle" in str(e):
                    raise ConfigError(key, path, f"numeric arrays; array {k!r} holds Python objects (dtype=object), "
                                                 "which are not unpickled (that could run code): save it as numbers") from None
                raise ConfigError(key, path, f"an .npz written by numpy.savez (array {k!r}: {_one_line(e)})") from None
    return arrays


def _table(key: str, path: str, ext: str):
    """The CSV or Parquet file as a DataFrame with at least one data row."""
    import pandas as pd

    try:
        df = pd.read_csv(path) if ext == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(key, path, "a CSV with a header row and data rows (the file is empty)") from None
    except Exception as e:   # a parser's or pyarrow's error: a malformed, binary or truncated file
        kind = "CSV" if ext == ".csv" else "Parquet file"
        raise ConfigError(key, path, f"a {kind} with a header row and numeric data rows (it cannot be read: {_one_line(e)})") from None
    if len(df) == 0:
        raise ConfigError(key, path, f"data rows below the header (it has none; columns {', '.join(map(str, df.columns))})")
    return df


def min_rows(test_size: float, val_size: float, has_test: bool) -> int:
    """The fewest rows that leave at least one row in every split: the held-out test split
    (ceil(test_size n) rows, as scikit-learn's train_test_split draws it) unless the file has
    its own, the validation split of a tuned study (ceil(val_size m) of the m training rows),
    and the training rows left."""
    def train_left(n: int) -> int:
        m = n if has_test else n - math.ceil(test_size * n)
        return m - math.ceil(val_size * m) if val_size else m

    return next(n for n in range(1, 10_000) if train_left(n) >= 1)


def _enough_rows(key: str, path: str, n: int, n_test: int | None, test_size: float, val_size: float) -> None:
    need = min_rows(test_size, val_size, n_test is not None)
    if n < need:
        split = "" if n_test is not None else f", test (dataset.test_size={test_size:g})"
        split += f", validation (dataset.val_size={val_size:g})" if val_size else ""
        raise ConfigError(key, path, f"at least {need} data rows, to leave one or more in each split (training{split}); it has {n}")
    if n_test == 0:
        raise ConfigError(key, path, "X_test and y_test with at least one row (they are empty)")


DATASETS = [File]
