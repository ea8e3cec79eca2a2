"""The data contract.

A dataset builder turns its config section and a data seed into a `Table` (NumPy, original
units). `prepare()` (prepare.py) then makes the held-out split when the table has none, puts
outliers into the training split only, and fits the scaling on the training split.

Tasks, and what `y` holds for each:

    regression    float [n]
    binary        int {0, 1} [n]
    multiclass    int {0, ..., C-1} [n]
    distribution  float [n, C], rows are class distributions (soft targets); `extra["y_hard"]`
                  holds labels sampled from them
    density       float [n, 1] samples of a 1-D density; `extra["mixture"]` gives its parameters
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from harness.component import Component, require

TASKS = ("regression", "binary", "multiclass", "distribution", "density")


@dataclass
class Table:
    X: np.ndarray
    y: np.ndarray
    task: str
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    n_classes: int | None = None
    w_true: np.ndarray | None = None   # known weights of a synthetic linear model (original units)
    b_true: float | None = None
    source: str = ""                   # where it came from, for MLflow's dataset record
    extra: dict[str, Any] = field(default_factory=dict)
    extra_test: dict[str, Any] = field(default_factory=dict)


class Dataset(Component):
    """A registered data set. `task` is fixed by the data, except for bring-your-own sources
    (file, openml), which read it from `dataset.task`."""

    task: ClassVar[str | None] = None
    # keys every dataset takes; subclasses extend with `schema = {**Dataset.schema, ...}`
    schema: ClassVar[dict[str, Any]] = {"standardize": True, "test_size": 0.25, "seed": None}
    card: ClassVar[str] = ""   # the dataset card in datasets/, relative to the repo root
    synthetic: ClassVar[bool] = False   # True: validation need not build it (synthetic.Synthetic)

    @classmethod
    def task_of(cls, section: dict[str, Any]) -> str:
        return section.get("task") or cls.task  # type: ignore[return-value]

    @classmethod
    def check(cls, s, group):
        require(0.0 < s["test_size"] < 1.0, f"{group}.test_size", s["test_size"], "a fraction in (0, 1)")
        if s["seed"] is not None:
            require(isinstance(s["seed"], int) and s["seed"] >= 0, f"{group}.seed", s["seed"], "null or an integer >= 0")

    @classmethod
    def build(cls, section: dict[str, Any], seed: int) -> Table:
        raise NotImplementedError


def rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, purpose), so that adding a use of randomness in one
    place never shifts the numbers drawn in another."""
    streams = {"data": 0, "split": 1, "outliers": 2, "init": 3, "batches": 4, "extra": 5}
    return np.random.default_rng(np.random.SeedSequence([int(seed), streams[stream]]))
