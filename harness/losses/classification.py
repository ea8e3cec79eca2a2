"""Classification losses.

Binary: the model outputs one logit f per example; y in {0, 1}, s = 2y - 1 in {-1, +1}.

    bce            -[y log sigma(f) + (1 - y) log(1 - sigma(f))]       (F.binary_cross_entropy_with_logits)
    hinge          max(0, 1 - s f)                                      (the SVM loss)
    squared_hinge  max(0, 1 - s f)^2
    focal          -alpha_t (1 - p_t)^gamma log p_t, p_t = sigma(s f)   (Lin et al. 2017)

Multi-class: logits z [C] per example, y in {0..C-1}, p = softmax(z).

    cross_entropy  -sum_c q_c log p_c, q = (1 - eps) onehot(y) + eps / C   (F.cross_entropy, label_smoothing=eps)
    multi_hinge    sum_{c != y} max(0, margin - z_y + z_c) / C              (F.multi_margin_loss)
    mae_prob       |p - onehot(y)|_1 = 2 (1 - p_y)     bounded: robust to label noise (Ghosh et al. 2017)
    gce            (1 - p_y^q) / q, q in (0, 1]         generalized CE (Zhang & Sabuncu 2018): -> CE as q -> 0, MAE/2 at q = 1

Cross-entropy also fits the `distribution` task, where it trains on labels sampled from the soft
targets (the comparison for KL divergence, which uses the soft targets themselves).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.component import require
from harness.losses.base import Loss, expand, param

BINARY = frozenset({"binary"})
MULTI = frozenset({"multiclass"})


def _flat(out: torch.Tensor, target: torch.Tensor):
    """[U,K,n,C] logits and [U,1,n] labels -> [U*K*n, C] and [U*K*n] for F.* losses."""
    C = out.shape[-1]
    return out.reshape(-1, C), target.expand(out.shape[:-1]).reshape(-1)


class BCE(Loss):
    """Binary cross-entropy on logits (`F.binary_cross_entropy_with_logits`)."""

    name, tasks, head = "bce", BINARY, "logit"
    formula = "-[y log sigma(f) + (1-y) log(1 - sigma(f))]"
    optimum = "smooth"

    def per_example(self, out, target):
        return F.binary_cross_entropy_with_logits(out, expand(target, out), reduction="none")


class Hinge(Loss):
    """Hinge loss max(0, 1 - s f), s = 2y - 1: zero once an example is on the right side with
    margin 1; a subgradient at the kink."""

    name, tasks, head = "hinge", BINARY, "logit"
    differentiable = False
    formula = "max(0, 1 - s f), s = 2y - 1"

    def per_example(self, out, target):
        return F.relu(1.0 - (2.0 * target - 1.0) * out)


class SquaredHinge(Loss):
    """Squared hinge max(0, 1 - s f)^2: differentiable, penalizes violations quadratically."""

    name, tasks, head = "squared_hinge", BINARY, "logit"
    formula = "max(0, 1 - s f)^2"
    optimum = "smooth"

    def per_example(self, out, target):
        return F.relu(1.0 - (2.0 * target - 1.0) * out) ** 2


class Focal(Loss):
    """Focal loss (Lin et al. 2017): -alpha_t (1 - p_t)^gamma log p_t with p_t = sigma(s f),
    alpha_t = alpha for positives and 1 - alpha for negatives (alpha < 0: no class weights).
    gamma = 0, alpha < 0 is BCE. Down-weights easy, confident examples."""

    name, tasks, head = "focal", BINARY, "logit"
    schema = {"gamma": float, "alpha": float}
    stacked = ("gamma", "alpha")
    formula = "-alpha_t (1 - p_t)^gamma log p_t"

    @classmethod
    def check(cls, s, group):
        require(s["gamma"] >= 0, f"{group}.gamma", s["gamma"], "a number >= 0")
        require(s["alpha"] < 1, f"{group}.alpha", s["alpha"], "a number in [0, 1), or < 0 for no weighting")

    def per_example(self, out, target, gamma, alpha):
        y = expand(target, out)
        ce = F.binary_cross_entropy_with_logits(out, y, reduction="none")  # -log p_t
        p_t = torch.exp(-ce)
        a = param(alpha, out)
        if isinstance(a, float):
            a_t = 1.0 if a < 0 else a * y + (1 - a) * (1 - y)
        else:
            a_t = torch.where(a < 0, torch.ones_like(ce), a * y + (1 - a) * (1 - y))
        return a_t * (1 - p_t) ** param(gamma, out) * ce


class CrossEntropy(Loss):
    """Multi-class cross-entropy with optional label smoothing (`F.cross_entropy`)."""

    name, tasks, head = "cross_entropy", MULTI | {"distribution"}, "logits"
    schema = {"label_smoothing": float}
    formula = "-sum_c q_c log softmax(z)_c, q = smoothed one-hot"

    @classmethod
    def check(cls, s, group):
        require(0 <= s["label_smoothing"] < 1, f"{group}.label_smoothing", s["label_smoothing"], "a number in [0, 1)")

    def per_example(self, out, target):
        z, y = _flat(out, target)
        return F.cross_entropy(z, y, label_smoothing=self.options["label_smoothing"], reduction="none").reshape(out.shape[:-1])


class MultiHinge(Loss):
    """Crammer-Singer style multi-class hinge as PyTorch defines it (`F.multi_margin_loss`):
    sum over wrong classes c of max(0, margin - z_y + z_c), divided by C."""

    name, tasks, head = "multi_hinge", MULTI, "logits"
    schema = {"margin": float}
    differentiable = False
    formula = "sum_{c!=y} max(0, margin - z_y + z_c) / C"

    @classmethod
    def check(cls, s, group):
        require(s["margin"] > 0, f"{group}.margin", s["margin"], "a number > 0")

    def per_example(self, out, target):
        z, y = _flat(out, target)
        return F.multi_margin_loss(z, y, margin=self.options["margin"], reduction="none").reshape(out.shape[:-1])


def _logp_true(out, target):
    """log softmax probability of the labelled class, [U, K, n]. Losses take powers of p_y as
    exp(q log p_y): p_y ** q has an infinite derivative where p_y underflows to 0 (a confidently
    mislabelled example), which made GCE's gradient NaN."""
    logp = F.log_softmax(out, dim=-1)
    return logp.gather(-1, target.expand(out.shape[:-1]).unsqueeze(-1)).squeeze(-1)


class MAEProb(Loss):
    """MAE between softmax probabilities and the one-hot label: |p - e_y|_1 = 2 (1 - p_y).
    Bounded, so a mislabelled example cannot dominate (Ghosh et al. 2017); slow to train."""

    name, tasks, head = "mae_prob", MULTI, "logits"
    robust = True
    formula = "|softmax(z) - onehot(y)|_1 = 2 (1 - p_y)"

    def per_example(self, out, target):
        return 2.0 * (1.0 - _logp_true(out, target).exp())


class GCE(Loss):
    """Generalized cross-entropy (Zhang & Sabuncu 2018): (1 - p_y^q) / q, q in (0, 1].
    Interpolates between CE (q -> 0) and MAE (q = 1); q = 0.7 is the paper's choice."""

    name, tasks, head = "gce", MULTI, "logits"
    schema = {"q": float}
    stacked = ("q",)
    robust = True
    formula = "(1 - p_y^q) / q"

    @classmethod
    def check(cls, s, group):
        require(0 < s["q"] <= 1, f"{group}.q", s["q"], "a number in (0, 1]")

    def per_example(self, out, target, q):
        qq = param(q, out)
        return (1.0 - torch.exp(qq * _logp_true(out, target))) / qq


LOSSES = [BCE, Hinge, SquaredHinge, Focal, CrossEntropy, MultiHinge, MAEProb, GCE]
