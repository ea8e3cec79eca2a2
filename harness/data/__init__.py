"""All datasets, one registry, and `load()`: the prepared arrays of one run, cached per
(dataset config, data seed, outliers) so the runs of a sweep share them."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from harness.data.base import Dataset, Shape, Table
from harness.data.prepare import Prepared, prepare
from harness.registry import Registry

DATASETS: Registry[type[Dataset]] = Registry("dataset")

from harness.data import counts, files, openml, public, synthetic  # noqa: E402

for _m in (synthetic, public, counts, files, openml):
    for _cls in _m.DATASETS:
        DATASETS.add(_cls.name, _cls)


@lru_cache(maxsize=64)
def _table(name: str, section_json: str, seed: int) -> Table:
    return DATASETS.get(name).build(json.loads(section_json), seed)


@lru_cache(maxsize=512)
def _prepared(name: str, section_json: str, seed: int, outliers: tuple) -> Prepared:
    from harness.timing import phase

    with phase("data"):
        section = json.loads(section_json)
        return prepare(_table(name, section_json, seed), name=name, section=section, seed=seed, outliers=outliers)


def load(section: dict[str, Any], seed: int, outliers: tuple[str, float, float | None]) -> Prepared:
    """The prepared data for a normalized dataset section; `dataset.seed`, when set, overrides
    the run's seed for the data (draw and split), so that runs can share one data set."""
    data_seed = section["seed"] if section.get("seed") is not None else seed
    return _prepared(section["name"], json.dumps(section, sort_keys=True), int(data_seed), tuple(outliers))


__all__ = ["DATASETS", "Dataset", "Shape", "Table", "Prepared", "load"]
