"""The data contract.

A dataset builder turns its config section and a data seed into a `Table` (NumPy, original
units). `prepare()` (prepare.py) then makes the held-out split when the table has none, puts
outliers into the training split only, and fits the scaling on the training split.

What `y` holds depends on the table's task (harness/tasks/: each task's docstring says), e.g.
float [n] for regression, int {0..C-1} [n] for classes, float [n, C] class distributions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from harness.component import Component, require


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


class Shape(NamedTuple):
    """What planning needs to know of a run's data: rows of each split, features, classes."""

    n_train: int
    n_test: int
    n_features: int
    n_classes: int | None = None


class Dataset(Component):
    """A registered data set. `task` is fixed by the data, except for bring-your-own sources
    (file, openml), which read it from `dataset.task`."""

    group = "dataset"
    task: ClassVar[str | None] = None
    # keys every dataset takes; subclasses extend with `schema = {**Dataset.schema, ...}`
    # (val_size, shared by every data set, is in conf/config.yaml's dataset section)
    schema: ClassVar[dict[str, Any]] = {"standardize": bool, "test_size": float, "seed": None, "val_size": float}
    card: ClassVar[str] = ""   # the dataset card in datasets/, relative to the repo root
    user_data: ClassVar[bool] = False   # the user brings the data (a file, an OpenML id): no defaults build it

    @classmethod
    def task_of(cls, section: dict[str, Any]) -> str:
        return section.get("task") or cls.task  # type: ignore[return-value]

    @classmethod
    def shape(cls, section: dict[str, Any]) -> Shape | None:
        """The data's shape when the config alone fixes it (synthetic data), else None: then it
        is built once to find out (and to surface its errors)."""
        return None

    @classmethod
    def public(cls, section: dict[str, Any]) -> bool:
        """True for real data someone published; False for data drawn by our own code."""
        return True

    @classmethod
    def examples(cls) -> list[dict[str, Any]]:
        """Sections (overrides of the defaults) the end-to-end tests sweep: one by default; more
        where an option turns the data into another kind (soft_targets on a public base)."""
        return [{}]

    @classmethod
    def check(cls, s, group):
        require(0.0 < s["test_size"] < 1.0, f"{group}.test_size", s["test_size"], "a fraction in (0, 1)")
        require(0.0 <= s["val_size"] < 1.0, f"{group}.val_size", s["val_size"],
                "a fraction in [0, 1): the share of the training rows held out for validation (0: none)")
        if s["seed"] is not None:
            require(isinstance(s["seed"], int) and s["seed"] >= 0, f"{group}.seed", s["seed"], "null or an integer >= 0")

    @classmethod
    def build(cls, section: dict[str, Any], seed: int) -> Table:
        raise NotImplementedError


def rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, purpose), so that adding a use of randomness in one
    place never shifts the numbers drawn in another."""
    streams = {"data": 0, "split": 1, "outliers": 2, "init": 3, "batches": 4, "extra": 5, "validation": 6}
    return np.random.default_rng(np.random.SeedSequence([int(seed), streams[stream]]))
