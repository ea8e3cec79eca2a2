"""Heads: what a model outputs per example for a loss to read, and what that implies.

A loss names its head (losses/base.py: `Loss.head`, or `head_for(task)`); a model lists the
heads it can produce (models.py: `Model.heads`). Everything the engine, the planner and the
metrics need to know about an output is a field here, never guessed from the head's name:

    out_dim(n_classes, model)  outputs per example
    squeeze      one output per example: the model's [U, K, n, 1] becomes [U, K, n]
    test_loss    the loss has a meaning on the test split (not for in-batch pairs, nor for a
                 density fitted by sampling it)
    zero_start   a linear model may start at zero (an embedding may not: every point would sit
                 at the origin, where distance losses have no direction)
    draw         random numbers the loss needs at each step, drawn per data group from the
                 group's seed: (key in the batch's extras, numbers per row, the generator call)
    family       a metric family the head imposes whatever the task (embedding: retrieval)
    represents   the output itself is the representation that retrieval metrics score (else the
                 model's hidden features are, where it has them)
    pairwise     the loss and its metrics compare every pair of rows (memory grows as rows^2)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.registry import Registry


@dataclass(frozen=True)
class Draw:
    key: str                 # the name the loss reads in Batch.extra
    per_row: tuple[int, ...]  # shape of the numbers for each row: () one, (2,) two
    kind: str                # "uniform" [0, 1) or "normal" N(0, 1)

    def sample(self, g: np.random.Generator, rows: int) -> np.ndarray:
        shape = (rows, *self.per_row)
        return g.random(shape) if self.kind == "uniform" else g.standard_normal(shape)


@dataclass(frozen=True)
class Head:
    name: str
    width: Callable[[int | None, dict], int]   # (n_classes, model section) -> outputs per example
    squeeze: bool = False
    test_loss: bool = True
    zero_start: bool = True
    draw: Draw | None = None
    family: str | None = None
    represents: bool = False
    pairwise: bool = False

    def out_dim(self, n_classes: int | None, model: dict) -> int:
        return self.width(n_classes, model)


HEADS: Registry[Head] = Registry("head")
for _head in (
    Head("value", lambda c, m: 1, squeeze=True),                      # a real number: regression
    Head("logit", lambda c, m: 1, squeeze=True),                      # one logit: binary
    Head("logits", lambda c, m: c or 1),                              # a logit per class
    Head("embedding", lambda c, m: m["embed_dim"], test_loss=False, zero_start=False,
         draw=Draw("u", (2,), "uniform"), family="embedding", represents=True, pairwise=True),
    Head("density", lambda c, m: 2, test_loss=False, draw=Draw("eps", (), "normal")),   # (mu, log sigma)
):
    HEADS.add(_head.name, _head)
