"""Counts: non-negative integer targets (visits, claims, events), modelled through the log of a
Poisson rate. The model's output f is log mu, so mu = exp(f) > 0 whatever f; the target is never
scaled (a count divided by its spread is no count)."""
from __future__ import annotations

from harness.component import require
from harness.metric_table import FamilyMetrics
from harness.tasks.base import Task, check_numeric


class CountMetrics(FamilyMetrics):
    """Mean Poisson deviance of mu = exp(out) (as sklearn.metrics.mean_poisson_deviance; checked
    against it in the tests)

        D = (2 / n) sum_i [ y_i log(y_i / mu_i) - (y_i - mu_i) ],   y log y = 0 at y = 0,

    and the RMSE and MAE of mu against y, in counts."""

    name = "count"

    def curve(self, out, ev):
        import torch

        mu = out.exp()
        y = ev.y.expand_as(mu)
        r = mu - y
        dev = 2 * (torch.xlogy(y, y) - torch.xlogy(y, mu) - (y - mu)).mean(-1)
        return {"test/poisson_deviance": dev, "test/rmse": (r * r).mean(-1).sqrt(), "test/mae": r.abs().mean(-1)}


class Count(Task):
    """y float [n] of counts >= 0. Outliers: shifted counts (a few rows far above the rest) or
    bad leverage points. Metrics: mean Poisson deviance, RMSE, MAE (+ param_error where the true
    log-linear weights are known)."""

    name = family = "count"
    head = "value"              # one real number per example: log mu
    outliers = ("shift", "leverage")
    user_data = True
    metrics = CountMetrics()

    def read_targets(self, key, value, y, y_test):
        y = check_numeric(key, value, "y", y)
        y_test = None if y_test is None else check_numeric(key, "y_test", "y_test", y_test)
        for a in (y, y_test):
            require(a is None or bool((a >= 0).all()), key, value, "counts >= 0 for dataset.task=count")
        return y, y_test, None


TASKS = [Count]
