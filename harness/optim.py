"""Stacked optimizers: one update for every run of a stack, each run with its own learning rate.

`torch.optim` takes one learning rate per parameter group, not one per slice of a tensor, so
the updates are written out here (and tested against `torch.optim` on a stack of one).
`lr` arrives as [U, K] and is broadcast over each parameter's own axes.

    gd, sgd    p <- p - lr g                              (gd: full batch; sgd: minibatches)
    momentum   v <- beta v + g;  p <- p - lr v            (torch.optim.SGD(momentum=beta))
    adam       m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
               p <- p - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (torch.optim.Adam)

Step-size schedules (`optimizer.schedule`, every optimizer): at step t = 0, 1, ..., T - 1
(T = train.steps) the update uses lr_t = lr * f(t), with

    constant      f(t) = 1
    inverse_sqrt  f(t) = 1 / sqrt(1 + t / decay_steps)
    cosine        f(t) = (1 + cos(pi t / T)) / 2                  (from 1 down to ~0 at the end)
    step          f(t) = decay_rate ^ floor(t / decay_steps)

Like lr, the schedule and its numbers may differ run to run inside a stack (`STACKED`): the
factors of every run and step are computed once, before the loop ([T, U, K] on the device).

`optimizer.lr_unit=edge` gives lr in units of the training data's stability edge lr* of
full-batch GD on MSE for a linear model (data/lr_edge, harness/data/prepare.py): lr=0.5 is half
of it, lr=1.05 just past it, whatever the data; `absolute` (the default) takes lr as it is.
"""
from __future__ import annotations

from typing import ClassVar

import math

import numpy as np
import torch

from harness.component import Component, require
from harness.registry import Registry

SCHEDULES = ("constant", "inverse_sqrt", "cosine", "step")
# The largest optimizer.lr taken, in either unit. On scaled data the stability edge lr* of GD
# is at most ~1 (0.01-1 on the catalogue's data sets), and a step 1e6 times past it multiplies
# the error by ~1e6 per step: float32 (max 3.4e38) overflows within ~6 steps, so a larger rate
# can only say "diverged" (and 1e308 is not even a float32: inf). Data whose stable steps are larger
# (standardize=false on tiny features) is reached with lr_unit=edge, lr in units of its lr*.
LR_MAX = 1e6
LR_UNITS = ("absolute", "edge")
STACKED = ("lr", "lr_unit", "schedule", "decay_steps", "decay_rate")   # per run inside a stack, not part of its key


def schedule_factor(kind: str, t: int, steps: int, decay_steps: int, decay_rate: float) -> float:
    """f(t) of the module docstring."""
    if kind == "inverse_sqrt":
        return 1.0 / math.sqrt(1.0 + t / decay_steps)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t / steps))
    if kind == "step":
        return decay_rate ** (t // decay_steps)
    return 1.0


def schedule_factors(sections: np.ndarray, steps: int) -> np.ndarray | None:
    """[T, U, K] factors for optimizer sections laid out [U, K]; None when every run is constant
    (then the loop multiplies by nothing, and constant runs stay bit-identical to before)."""
    if all(s["schedule"] == "constant" for s in sections.ravel()):
        return None
    cache: dict[tuple, np.ndarray] = {}

    def row(s) -> np.ndarray:
        key = (s["schedule"], s["decay_steps"], s["decay_rate"])
        if key not in cache:
            cache[key] = np.array([schedule_factor(*key[:1], t, steps, *key[1:]) for t in range(steps)])
        return cache[key]

    return np.stack([np.stack([row(s) for s in r], axis=-1) for r in sections], axis=1)   # [T, U, K]


def _b(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape + (1,) * (like.dim() - x.dim()))


class Optimizer(Component):
    group = "optimizer"
    # lr in conf/optimizer/<name>.yaml; the schedule keys, common to every optimizer, in conf/config.yaml
    schema: ClassVar[dict] = {"lr": float, "lr_unit": str, "schedule": str, "decay_steps": int, "decay_rate": float}
    full_batch: ClassVar[bool] = False  # refuses train.batch_size

    @classmethod
    def check(cls, s, group):
        lr = s["lr"]
        require(lr is not None and lr > 0, f"{group}.lr", lr, "a learning rate > 0")
        require(lr <= LR_MAX, f"{group}.lr", lr,
                f"a learning rate <= {LR_MAX:g}: on scaled data (stability edge <= ~1) a larger step overflows float32 "
                f"within a few steps; for data whose stable steps are larger, give lr in units of its edge (optimizer.lr_unit=edge)")
        require(s["lr_unit"] in LR_UNITS, f"{group}.lr_unit", s["lr_unit"], "one of " + ", ".join(LR_UNITS))
        require(s["schedule"] in SCHEDULES, f"{group}.schedule", s["schedule"], "one of " + ", ".join(SCHEDULES))
        require(s["decay_steps"] >= 1, f"{group}.decay_steps", s["decay_steps"], "an integer >= 1")
        require(0 < s["decay_rate"] <= 1, f"{group}.decay_rate", s["decay_rate"], "a number in (0, 1]")

    def __init__(self, section: dict):
        self.section = section
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
             lr: torch.Tensor, alive: torch.Tensor, t: int) -> None:
        """In-place update of the runs where `alive` [U, K] holds; `lr` is [U, K]; t counts from 1.
        A stopped run keeps its parameters exactly (a where, not lr = 0: 0 * NaN is NaN)."""
        with torch.no_grad():
            for name, p in params.items():
                g = torch.where(_b(alive, p), grads[name], 0.0)
                p.copy_(torch.where(_b(alive, p), p - self.direction(name, g, t) * _b(lr, p), p))

    def direction(self, name: str, g: torch.Tensor, t: int) -> torch.Tensor:
        return g


class GD(Optimizer):
    name, full_batch = "gd", True


class SGD(Optimizer):
    name = "sgd"


class Momentum(Optimizer):
    name = "momentum"
    schema = {**Optimizer.schema, "beta": float}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        require(0 <= s["beta"] < 1, f"{group}.beta", s["beta"], "a number in [0, 1)")

    def direction(self, name, g, t):
        st = self.state.setdefault(name, {})
        if "v" not in st:
            st["v"] = g.clone()
        else:
            st["v"].mul_(self.section["beta"]).add_(g)
        return st["v"]


class Adam(Optimizer):
    name = "adam"
    schema = {**Optimizer.schema, "beta1": float, "beta2": float, "eps": float}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        for k in ("beta1", "beta2"):
            require(0 <= s[k] < 1, f"{group}.{k}", s[k], "a number in [0, 1)")
        require(s["eps"] > 0, f"{group}.eps", s["eps"], "a number > 0")

    def direction(self, name, g, t):
        b1, b2, eps = self.section["beta1"], self.section["beta2"], self.section["eps"]
        st = self.state.setdefault(name, {})
        if "m" not in st:
            st["m"], st["v"] = torch.zeros_like(g), torch.zeros_like(g)
        st["m"].mul_(b1).add_(g, alpha=1 - b1)
        st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
        mhat = st["m"] / (1 - b1**t)
        vhat = st["v"] / (1 - b2**t)
        return mhat / (vhat.sqrt() + eps)


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")
for _cls in (GD, SGD, Momentum, Adam):
    OPTIMIZERS.add(_cls.name, _cls)
