"""Regression losses: pred and y are real numbers, r = pred - y.

    mse        r^2                                     large errors dominate the gradient (2r)
    mae        |r|                                     gradient sign(r): an outlier pulls no harder than any point
    huber      r^2/2 if |r| <= delta else delta (|r| - delta/2)      quadratic near 0, linear in the tails
    log_cosh   log cosh r                              smooth, ~ r^2/2 near 0 and ~ |r| - log 2 far out
    quantile   max(tau (y - pred), (tau - 1)(y - pred))  pinball loss; tau = 0.5 is MAE / 2
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.component import require
from harness.losses.base import Loss, expand, param

REGRESSION = frozenset({"regression"})


class MSE(Loss):
    """Mean squared error, loss(pred, y) = (pred - y)^2 (`F.mse_loss`)."""

    name, tasks, head = "mse", REGRESSION, "value"
    formula = "(pred - y)^2"
    optimum = "least_squares"

    def per_example(self, out, target):
        return F.mse_loss(out, expand(target, out), reduction="none")


class MAE(Loss):
    """Mean absolute error, loss(pred, y) = |pred - y| (`F.l1_loss`).

    Not differentiable at r = 0; autograd uses the subgradient 0 there (sign(0) = 0)."""

    name, tasks, head = "mae", REGRESSION, "value"
    robust, differentiable = True, False
    formula = "|pred - y|"
    optimum = "linear_program"

    @staticmethod
    def lp_weights(params):
        """|e| = 1 * e+ + 1 * e-: the least-absolute-deviations linear program."""
        return 1.0, 1.0

    def per_example(self, out, target):
        return F.l1_loss(out, expand(target, out), reduction="none")


class Huber(Loss):
    """Huber loss with threshold delta > 0:

        loss(r) = r^2 / 2                  if |r| <= delta
                  delta (|r| - delta / 2)  otherwise

    `F.huber_loss` takes one delta for the whole call. When the runs of a stack have their own
    deltas (a tensor), we use huber_delta(r) = delta^2 huber_1(r / delta), which is exact.
    """

    name, tasks, head = "huber", REGRESSION, "value"
    schema = {"delta": float}
    stacked = ("delta",)
    robust = True
    formula = "r^2/2 if |r| <= delta else delta (|r| - delta/2)"
    optimum = "smooth"

    @classmethod
    def check(cls, s, group):
        require(s["delta"] > 0, f"{group}.delta", s["delta"], "a number > 0")

    def per_example(self, out, target, delta):
        if isinstance(delta, float):
            return F.huber_loss(out, expand(target, out), reduction="none", delta=delta)
        d = delta.to(out.dtype)
        return d * d * F.huber_loss(out / d, expand(target, out) / d, reduction="none", delta=1.0)


class LogCosh(Loss):
    """log(cosh(r)), computed stably as |r| + softplus(-2|r|) - log 2."""

    name, tasks, head = "log_cosh", REGRESSION, "value"
    robust = True
    optimum = "smooth"
    formula = "log cosh(pred - y)"

    def per_example(self, out, target):
        a = (out - target).abs()
        return a + F.softplus(-2.0 * a) - math.log(2.0)


class Quantile(Loss):
    """Pinball loss for quantile tau in (0, 1), with e = y - pred:
    loss = max(tau e, (tau - 1) e). Its minimizer is the tau-quantile of y given x."""

    name, tasks, head = "quantile", REGRESSION, "value"
    schema = {"tau": float}
    stacked = ("tau",)
    robust, differentiable = True, False
    formula = "max(tau (y - pred), (tau - 1)(y - pred))"
    optimum = "linear_program"

    @staticmethod
    def lp_weights(params):
        """max(tau e, (tau - 1) e) = tau e+ + (1 - tau) e-, e = y - pred."""
        return params["tau"], 1.0 - params["tau"]

    @classmethod
    def check(cls, s, group):
        require(0 < s["tau"] < 1, f"{group}.tau", s["tau"], "a number in (0, 1)")

    def per_example(self, out, target, tau):
        e = target - out
        t = param(tau, out)
        return torch.maximum(t * e, (t - 1.0) * e)


LOSSES = [MSE, MAE, Huber, LogCosh, Quantile]
