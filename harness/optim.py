"""Stacked optimizers: one update for every run of a stack, each run with its own learning rate.

`torch.optim` takes one learning rate per parameter group, not one per slice of a tensor, so
the updates are written out here (and tested against `torch.optim` on a stack of one).
`lr` arrives as [U, K] and is broadcast over each parameter's own axes.

    gd, sgd    p <- p - lr g                              (gd: full batch; sgd: minibatches)
    momentum   v <- beta v + g;  p <- p - lr v            (torch.optim.SGD(momentum=beta))
    adam       m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
               p <- p - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (torch.optim.Adam)
"""
from __future__ import annotations

from typing import ClassVar

import torch

from harness.component import Component, require
from harness.registry import Registry


def _b(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape + (1,) * (like.dim() - x.dim()))


class Optimizer(Component):
    group = "optimizer"
    schema: ClassVar[dict] = {"lr": float}
    full_batch: ClassVar[bool] = False  # refuses train.batch_size

    @classmethod
    def check(cls, s, group):
        lr = s["lr"]
        require(lr is not None and lr > 0 and lr != float("inf"), f"{group}.lr", lr, "a learning rate > 0")

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
    schema = {"lr": float, "beta": float}

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
    schema = {"lr": float, "beta1": float, "beta2": float, "eps": float}

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
