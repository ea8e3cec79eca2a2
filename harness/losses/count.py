"""Count losses: the model outputs f = log mu, the log of a Poisson rate; y >= 0 is a count.

    poisson    mu - y log mu = exp(f) - y f      the Poisson negative log-likelihood, up to log y!
                                                 (F.poisson_nll_loss, log_input=True): its minimizer
                                                 is the maximum-likelihood Poisson GLM with log link
"""
from __future__ import annotations

import torch.nn.functional as F

from harness.losses.base import Loss, expand


class Poisson(Loss):
    """Poisson negative log-likelihood with the log link (`F.poisson_nll_loss`, log_input=True,
    full=False): loss(f, y) = exp(f) - y f. Convex in f; its gradient exp(f) - y grows with the
    rate, so large counts weigh in as much as MSE's large residuals do."""

    name, tasks, head = "poisson", frozenset({"count"}), "value"
    formula = "exp(f) - y f, f = log mu"
    optimum = "smooth"

    def per_example(self, out, target):
        return F.poisson_nll_loss(out, expand(target, out), log_input=True, full=False, reduction="none")


LOSSES = [Poisson]
