"""KL divergence, for learning distributions.

    KL(p || q) = sum_c p_c log(p_c / q_c)

Two uses:

* `distribution` task (soft targets): a student's softmax q fits a teacher's class distribution
  p per example. direction=forward minimizes KL(p || q) (`F.kl_div(log q, p)`, the knowledge-
  distillation loss); direction=reverse minimizes KL(q || p).
* `density` task: a Gaussian q = N(mu, sigma^2) (model=gaussian) fits a known 1-D mixture p.
  forward, KL(p || q) = E_p[log p(x) - log q(x)], is estimated on the data samples x ~ p: it is
  maximum likelihood, and covers every mode. reverse, KL(q || p) = E_q[log q(z) - log p(z)], is
  estimated with reparameterized samples z = mu + sigma eps, eps ~ N(0, 1) drawn per step: it
  is mode-seeking, and settles on one mode. Both per-example values are unbiased estimates of
  the divergence itself (log p is known), so the loss curve reads as KL.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.component import require
from harness.losses.base import Batch, Loss

LOG_2PI = math.log(2 * math.pi)


def gaussian_logpdf(x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mu) / log_sigma.exp()) ** 2 - log_sigma - 0.5 * LOG_2PI


def mixture_logpdf(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, sds: torch.Tensor) -> torch.Tensor:
    """log sum_j w_j N(x; m_j, s_j^2); x [...], mixture parameters [..., J] broadcastable."""
    comp = torch.log(weights) + gaussian_logpdf(x.unsqueeze(-1), means, torch.log(sds))
    return torch.logsumexp(comp, dim=-1)


class KL(Loss):
    name, tasks, head = "kl", frozenset({"distribution", "density"}), "logits"
    heads_by_task = {"density": "density"}     # a density fits (mu, log sigma), not class logits
    schema = {"direction": str}
    soft_targets = True
    formula = "KL(p || q) = sum p log(p / q)  (direction=reverse: KL(q || p))"

    @classmethod
    def check(cls, s, group):
        require(s["direction"] in ("forward", "reverse"), f"{group}.direction", s["direction"], "forward or reverse")

    def per_example(self, out, target):
        """Soft targets: out [U,K,n,C] logits, target [U,1,n,C] probabilities -> [U,K,n]."""
        logq = F.log_softmax(out, dim=-1)
        p = target.expand_as(logq)
        if self.options["direction"] == "forward":
            return F.kl_div(logq, p, reduction="none").sum(-1)
        return F.kl_div(torch.log(p), logq, reduction="none", log_target=True).sum(-1)

    def __call__(self, out, batch: Batch, params):
        if "mixture" not in batch.extra:
            return self.per_example(out, batch.y).mean(-1)
        return self.density(out, batch).mean(-1)

    def density(self, out, batch: Batch) -> torch.Tensor:
        """out [U,K,n,2] = (mu, log sigma) per run; batch.y [U,1,n] samples of p."""
        mu, log_sigma = out[..., :1, 0], out[..., :1, 1]            # [U,K,1]
        w, m, s = batch.extra["mixture"]                            # each [U,1,1,J]
        if self.options["direction"] == "forward":
            x = batch.y
            return mixture_logpdf(x, w, m, s) - gaussian_logpdf(x, mu, log_sigma)
        z = mu + log_sigma.exp() * batch.extra["eps"]               # eps [U,1,m]: reparameterized
        return gaussian_logpdf(z, mu, log_sigma) - mixture_logpdf(z, w, m, s)


LOSSES = [KL]
