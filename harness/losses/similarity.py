"""Similarity learning: the model maps inputs to embeddings; examples with the same label
should be close, others far (faces, recommendation). Pairs and triplets are formed inside each
(mini)batch from its labels; d is the Euclidean distance.

    triplet      max(0, d(a, p) - d(a, n) + margin) for anchor a, positive p (same label),
                 negative n (another label) -- Schroff et al. 2015, `F.triplet_margin_loss`
    contrastive  y d^2 + (1 - y) max(0, margin - d)^2 over pairs, y = 1 for the same label
                 -- Hadsell, Chopra & LeCun 2006

Triplet mining (loss.mining), per anchor:
    random     a random positive and a random negative of the batch
    semi_hard  a random positive; the closest negative farther than it (FaceNet's semi-hard),
               or the hardest negative when there is none
    hard       the farthest positive and the closest negative (batch-hard, Hermans et al. 2017)
Anchors without a positive in the batch are left out of the mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.component import require
from harness.losses.base import Batch, Loss, param
from harness.products import gram, pairwise_distance

EMBED = frozenset({"multiclass", "binary"})
MININGS = ("random", "semi_hard", "hard")


def triplet(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """max(0, |a - p| - |a - n| + margin) per triplet, with the eps PyTorch's
    F.triplet_margin_loss uses inside its distances; embeddings [..., e] -> [...]."""
    return F.relu(F.pairwise_distance(a, p) - F.pairwise_distance(a, n) + margin)


def _pick(mask: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index of a uniformly drawn True in each row of mask [..., b, b], u in [0, 1) [..., b]."""
    count = mask.sum(-1)
    r = (u * count).floor().clamp(max=(count - 1).clamp(min=0))
    return (mask.cumsum(-1) > r.unsqueeze(-1)).float().argmax(-1)


class Triplet(Loss):
    name, tasks, head = "triplet", EMBED, "embedding"
    schema = {"margin": float, "mining": str}
    stacked = ("margin",)
    formula = "max(0, d(a,p) - d(a,n) + margin)"

    @classmethod
    def check(cls, s, group):
        require(s["margin"] > 0, f"{group}.margin", s["margin"], "a number > 0")
        require(s["mining"] in MININGS, f"{group}.mining", s["mining"], "one of " + ", ".join(MININGS))

    def __call__(self, out, batch: Batch, params):
        """out [U,K,b,e] embeddings; batch.y [U,1,b] labels; batch.extra['u'] [U,1,b,2] uniforms."""
        y = batch.y
        same = (y.unsqueeze(-1) == y.unsqueeze(-2))                     # [U,1,b,b]
        eye = torch.eye(same.shape[-1], dtype=torch.bool, device=out.device)
        pos_mask, neg_mask = same & ~eye, ~same
        valid = pos_mask.any(-1) & neg_mask.any(-1)                     # [U,1,b]
        with torch.no_grad():
            d = pairwise_distance(out)                                  # [U,K,b,b] (products.py: any stack alike)
            u = batch.extra["u"]
            mining = self.options["mining"]
            if mining == "hard":
                pos = torch.where(pos_mask, d, -1.0).argmax(-1)
                neg = torch.where(neg_mask, d, float("inf")).argmin(-1)
            else:
                pos = _pick(pos_mask.expand_as(d), u[..., 0].expand(d.shape[:-1]))
                if mining == "random":
                    neg = _pick(neg_mask.expand_as(d), u[..., 1].expand(d.shape[:-1]))
                else:
                    d_ap = d.gather(-1, pos.unsqueeze(-1))
                    harder = neg_mask & (d > d_ap)
                    semi = torch.where(harder, d, float("inf")).argmin(-1)
                    hardest = torch.where(neg_mask, d, float("inf")).argmin(-1)
                    neg = torch.where(harder.any(-1), semi, hardest)
        take = lambda idx: out.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, out.shape[-1]))
        values = triplet(out, take(pos), take(neg), param(params["margin"], out))     # [U,K,b]
        w = valid.to(out.dtype).expand_as(values)
        return (values * w).sum(-1) / w.sum(-1).clamp(min=1.0)


class Contrastive(Loss):
    name, tasks, head = "contrastive", EMBED, "embedding"
    schema = {"margin": float}
    stacked = ("margin",)
    formula = "y d^2 + (1 - y) max(0, margin - d)^2"

    @classmethod
    def check(cls, s, group):
        require(s["margin"] > 0, f"{group}.margin", s["margin"], "a number > 0")

    def per_pair(self, out, y, margin):
        """[U,K,b,e], [U,1,b] -> [U,K,b,b] pair losses (the diagonal is zero and left out)."""
        sq = out.pow(2).sum(-1)
        d2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * gram(out)).clamp(min=0)  # [U,K,b,b]
        same = (y.unsqueeze(-1) == y.unsqueeze(-2)).to(out.dtype)
        d = torch.sqrt(d2 + 1e-12)
        m = param(margin, out)
        m = m if isinstance(m, float) else m.unsqueeze(-1)
        return same * d2 + (1 - same) * F.relu(m - d) ** 2

    def __call__(self, out, batch: Batch, params):
        b = out.shape[-2]
        pairs = self.per_pair(out, batch.y, params["margin"])
        off = ~torch.eye(b, dtype=torch.bool, device=out.device)
        return (pairs * off).sum((-1, -2)) / (b * (b - 1))


LOSSES = [Triplet, Contrastive]
