"""An OpenML data set by id, downloaded once and then read from a local cache.

    python -m harness dataset=openml dataset.id=531 dataset.task=regression

First use: sklearn.datasets.fetch_openml(data_id=id, as_frame=True) (its raw download goes to a
temporary folder), then the usable columns (OpenML's ignored and row-id attributes dropped,
the default target kept) are written to `<cache_dir>/<id>.parquet`, and what is known about
them to `<cache_dir>/<id>.json`:

    {"id": 531, "name": ..., "version": ..., "default_target": "MEDV" | null,
     "url": "https://www.openml.org/d/531", "licence": ..., "citation": ..., "fetched": ISO date}

Every later use reads only the cache, so runs work offline once it is filled.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.component import require
from harness.data.base import Dataset, Table
from harness.errors import ConfigError
from harness.tasks import TASKS, check_numeric, user_tasks

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "datasets" / "cache" / "openml"   # git-ignored


def cache_dir(section: dict[str, Any]) -> Path:
    return Path(section["cache_dir"]) if section.get("cache_dir") else DEFAULT_CACHE


def cache_paths(directory: Path, data_id: int) -> tuple[Path, Path]:
    return directory / f"{data_id}.parquet", directory / f"{data_id}.json"


def download(data_id: int):
    """(frame, sidecar dict) from openml.org; raises whatever the download raises."""
    import warnings

    from sklearn.datasets import fetch_openml

    with tempfile.TemporaryDirectory(prefix="lossbench-openml-") as home, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A network error occurred")   # the error says it
        b = fetch_openml(data_id=data_id, as_frame=True, data_home=home, n_retries=1, delay=0.5)
    details = b.details or {}
    meta = {
        "id": data_id, "name": details.get("name"), "version": details.get("version"),
        "default_target": ",".join(b.target_names) if b.target_names else None,
        "url": f"https://www.openml.org/d/{data_id}", "licence": details.get("licence"),
        "citation": details.get("citation"), "fetched": _dt.date.today().isoformat(),
    }
    return b.frame, meta


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix + ".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)    # mkstemp makes it private; the cache is shared like the repo
        os.replace(tmp, path)   # parallel runs never read a half-written file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(data_id: int, directory: Path):
    """(frame, sidecar) from the cache, downloading into it on first use."""
    import pandas as pd

    data, side = cache_paths(directory, data_id)
    if data.is_file() and side.is_file():
        return pd.read_parquet(data), json.loads(side.read_text())
    try:
        frame, meta = download(data_id)
    except Exception as e:  # noqa: BLE001 - any failure means "no data": say why, on one line
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise ConfigError("dataset.id", data_id,
                          f"a cached OpenML data set (none at {data}, and the download failed: {reason})") from None
    directory.mkdir(parents=True, exist_ok=True)
    frame.columns = [str(c) for c in frame.columns]
    _write_atomic(data, lambda p: frame.to_parquet(p, index=False))
    _write_atomic(side, lambda p: Path(p).write_text(json.dumps(meta, indent=2) + "\n"))
    return frame, meta


def _columns(df, most: int = 20) -> str:
    names = [str(c) for c in df.columns]
    return ", ".join(names[:most]) + (f", ... ({len(names)} columns)" if len(names) > most else "")


class OpenML(Dataset):
    """An OpenML data set: `dataset.id` (required), `dataset.task` (required: OpenML does not
    say whether a target is a regression or a class label), `dataset.target` (null: the data
    set's default target). Categorical feature columns are one-hot encoded (one 0/1 column
    per level, pandas.get_dummies); a missing value anywhere is an error naming its column."""

    name, card = "openml", "datasets/openml.md"
    user_data = True
    schema = {**Dataset.schema, "id": None, "target": None, "task": None, "cache_dir": None}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        i = s["id"]
        require(isinstance(i, int) and not isinstance(i, bool) and i >= 1, f"{group}.id", i,
                "the integer id of an OpenML data set (https://www.openml.org/d/<id>), e.g. dataset.id=531")
        require(s["task"] in user_tasks(), f"{group}.task", s["task"],
                "one of " + ", ".join(user_tasks()) + " (OpenML does not record it; say which)")
        require(s["target"] is None or (isinstance(s["target"], str) and s["target"] != ""), f"{group}.target",
                s["target"], "null (the data set's default target) or a column name")
        require(s["cache_dir"] is None or (isinstance(s["cache_dir"], str) and s["cache_dir"] != ""),
                f"{group}.cache_dir", s["cache_dir"], "null (datasets/cache/openml) or a folder path")

    @classmethod
    def build(cls, s, seed):
        import pandas as pd

        data_id, task = s["id"], s["task"]
        df, meta = fetch(data_id, cache_dir(s))
        target = s["target"] or meta.get("default_target")
        if not target or "," in target:
            have = "no default target" if not target else f"several default targets ({target})"
            raise ConfigError("dataset.target", s["target"], f"a column of OpenML data set {data_id}, which has {have}: "
                              + _columns(df))
        if target not in df.columns:
            raise ConfigError("dataset.target", target, f"a column of OpenML data set {data_id}: " + _columns(df))
        nan = [c for c in df.columns if df[c].isna().any()]
        if nan:
            raise ConfigError("dataset.id", data_id, f"a data set without missing values; column {nan[0]!r} has "
                              f"{int(df[nan[0]].isna().sum())} NaN (clean it and use dataset=file)")
        feats = df.drop(columns=[target])
        cats = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
        if cats:
            feats = pd.get_dummies(feats, columns=cats, dtype=np.float64)
        X = check_numeric("dataset.id", data_id, "features", feats.to_numpy())
        y = df[target]
        numeric = pd.api.types.is_numeric_dtype(y)
        try:
            y, _, n_classes = TASKS.get(task).read_targets("dataset.target", target,
                                                           y.to_numpy() if numeric else y.astype(str).to_numpy(), None)
        except ConfigError:
            if numeric:
                raise
            raise ConfigError("dataset.task", task, f"a task with class labels: target {target!r} is {y.dtype}, "
                                                    "not a number") from None
        url = meta.get("url") or f"https://www.openml.org/d/{data_id}"
        return Table(X=X, y=y, task=task, n_classes=n_classes, source=url)


DATASETS = [OpenML]
