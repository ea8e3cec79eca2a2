"""Evaluation metrics, per metric family (the task, or `embedding` for losses that train an
embedding). A metric is not a loss: it need not be differentiable, and it is what a run is
judged by. Names carry their split (`test/rmse`); directions live in metric_info.py.

Each family has two calls:
  curve(out, ev)        cheap metrics of every run at once, [U, K] tensors, at each eval point
  final(out, ev)        the rest, once per run after training: {name: [U, K] numpy}, with
                        scikit-learn where it has the metric

`out` is the model output on the test split: [U, K, n] (value / logit heads), [U, K, n, C]
(logits), [U, K, n, e] (embeddings) or [U, K, n, 2] (Gaussian mu, log sigma).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.metric_info import HIGHER_IS_BETTER, PRIMARY  # noqa: F401  (facts live in metric_info)
from harness.registry import Registry


@dataclass
class EvalData:
    """The test split on the device. y [U, 1, n] (labels or targets; soft targets [U, 1, n, C]),
    y_center / y_scale [U, 1, 1] undo regression target scaling; extra holds per-family data
    (train features and labels for k-NN, the mixture for densities)."""

    X: torch.Tensor
    y: torch.Tensor
    y_center: torch.Tensor
    y_scale: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


class Family:
    def curve(self, out: torch.Tensor, ev: EvalData) -> dict[str, torch.Tensor]:
        return {}

    def final(self, out: torch.Tensor, ev: EvalData) -> dict[str, np.ndarray]:
        return {}


FAMILIES: Registry[Family] = Registry("metric family")


# -- regression ---------------------------------------------------------------------------
class Regression(Family):
    """RMSE, MAE and R^2 = 1 - SSE / SST, in the target's original units (formulas checked
    against sklearn.metrics in the tests; written in torch to run for every run at every eval)."""

    def curve(self, out, ev):
        p = out * ev.y_scale + ev.y_center
        y = ev.y * ev.y_scale + ev.y_center
        r = p - y
        sse = (r * r).sum(-1)
        sst = ((y - y.mean(-1, keepdim=True)) ** 2).sum(-1)
        return {"test/rmse": (sse / r.shape[-1]).sqrt(), "test/mae": r.abs().mean(-1), "test/r2": 1 - sse / sst}


# -- classification -----------------------------------------------------------------------
def probabilities(out: torch.Tensor) -> torch.Tensor:
    """[U,K,n] logits -> [U,K,n,2] (binary); [U,K,n,C] logits -> softmax."""
    if out.dim() == 3:
        p1 = torch.sigmoid(out)
        return torch.stack([1 - p1, p1], dim=-1)
    return F.softmax(out, dim=-1)


def expected_calibration_error(prob: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width bins on the top-label confidence:
    sum_b (n_b / n) |accuracy_b - confidence_b|  (Guo et al. 2017)."""
    conf, pred = prob.max(-1), prob.argmax(-1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(ece)


class Classification(Family):
    def __init__(self, binary: bool):
        self.binary = binary

    def curve(self, out, ev):
        pred = (out > 0).long() if self.binary else out.argmax(-1)
        return {"test/accuracy": (pred == ev.y.long()).float().mean(-1).to(out.dtype)}

    def final(self, out, ev):
        from sklearn import metrics as skm

        prob = probabilities(out).detach().cpu().double().numpy()
        ys = ev.y.long().cpu().numpy()[:, 0]
        U, K = prob.shape[:2]
        names = ["test/precision", "test/recall", "test/f1", "test/log_loss", "test/ece"] + (["test/roc_auc"] if self.binary else [])
        res = {k: np.full((U, K), np.nan) for k in names}
        labels = np.arange(prob.shape[-1])
        avg = "binary" if self.binary else "macro"
        for u in range(U):
            for k in range(K):
                p, y = prob[u, k], ys[u]
                if not np.isfinite(p).all():
                    continue
                pred = p.argmax(-1)
                res["test/precision"][u, k] = skm.precision_score(y, pred, average=avg, zero_division=0)
                res["test/recall"][u, k] = skm.recall_score(y, pred, average=avg, zero_division=0)
                res["test/f1"][u, k] = skm.f1_score(y, pred, average=avg, zero_division=0)
                res["test/log_loss"][u, k] = skm.log_loss(y, p / p.sum(-1, keepdims=True), labels=labels)
                res["test/ece"][u, k] = expected_calibration_error(p, y)
                if self.binary:
                    res["test/roc_auc"][u, k] = skm.roc_auc_score(y, p[:, 1])
        if not self.binary and "features" in ev.extra:
            res.update(Embedding().final(ev.extra["features"], ev))
        return res


# -- distributions ------------------------------------------------------------------------
class Distribution(Family):
    """test/kl: mean over test examples of KL(teacher || student); test/accuracy: how often the
    student's most likely class is the teacher's."""

    def curve(self, out, ev):
        p = ev.y                                   # [U,1,n,C]
        logq = F.log_softmax(out, dim=-1)
        kl = F.kl_div(logq, p.expand_as(logq), reduction="none").sum(-1).mean(-1)
        acc = (out.argmax(-1) == p.argmax(-1)).to(out.dtype).mean(-1)
        return {"test/kl": kl, "test/accuracy": acc}


class Density(Family):
    """Forward KL(p || q) and reverse KL(q || p) between the target mixture p and the fitted
    Gaussian q, by quadrature on a fine grid (exact to ~1e-6 for these smooth 1-D densities);
    test/nll, the mean negative log-likelihood -log q(x) of the held-out samples (the test
    metric that needs no known p); fit/mu and fit/sigma, q's parameters (the report draws the
    fits from them)."""

    def curve(self, out, ev):
        from harness.losses.distribution import gaussian_logpdf, mixture_logpdf

        mu, log_sigma = out[..., 0, 0:1], out[..., 0, 1:2]     # [U,K,1]
        w, m, s = ev.extra["mixture"]                            # [U,1,1,J]
        lo = torch.minimum((m - 8 * s).amin(-1), mu - 8 * log_sigma.exp())
        hi = torch.maximum((m + 8 * s).amax(-1), mu + 8 * log_sigma.exp())
        t = torch.linspace(0, 1, 4001, device=out.device, dtype=out.dtype)
        x = lo + (hi - lo) * t                                   # [U,K,G]
        logp, logq = mixture_logpdf(x, w, m, s), gaussian_logpdf(x, mu, log_sigma)
        dx = (hi - lo) / (len(t) - 1)
        integ = lambda f: torch.trapezoid(f, dx=1.0, dim=-1) * dx[..., 0]
        fwd = integ(logp.exp() * (logp - logq))
        rev = integ(logq.exp() * (logq - logp))
        nll = -gaussian_logpdf(ev.y, mu, log_sigma).mean(-1)
        return {"test/kl": fwd, "test/reverse_kl": rev, "test/nll": nll,
                "fit/mu": mu[..., 0], "fit/sigma": log_sigma.exp()[..., 0]}


# -- embeddings -----------------------------------------------------------------------------
class Embedding(Family):
    """Retrieval on the test split. recall@k: the share of test points with at least one of
    their k nearest other test points (Euclidean) of the same label. knn_accuracy: a 5-nearest-
    neighbour vote among the training points' embeddings (sklearn's KNeighborsClassifier rule,
    checked against it in the tests)."""

    K_NN = 5

    def final(self, emb, ev):
        y = ev.y.long()[:, :, None, :]                           # [U,1,1,n]
        d = torch.cdist(emb, emb)                                # [U,K,n,n]
        n = d.shape[-1]
        d = d + torch.eye(n, device=d.device, dtype=d.dtype) * torch.finfo(d.dtype).max
        nn = d.topk(5, dim=-1, largest=False).indices            # [U,K,n,5]
        lab = torch.gather(y.expand(*d.shape[:2], n, n), -1, nn)  # labels of the neighbours
        hit = lab == ev.y.long()[..., None]                      # [U,K,n,5]
        out = {"test/recall_at_1": hit[..., :1].any(-1).double().mean(-1),
               "test/recall_at_5": hit.any(-1).double().mean(-1)}
        tr_emb, tr_y = ev.extra["train_features"], ev.extra["train_labels"].long()   # [U,K,m,e], [U,1,m]
        dt = torch.cdist(emb, tr_emb)                            # [U,K,n,m]
        idx = dt.topk(self.K_NN, dim=-1, largest=False).indices
        votes = torch.gather(tr_y[:, :, None, :].expand(*dt.shape), -1, idx)
        C = int(max(tr_y.max(), ev.y.long().max())) + 1
        counts = F.one_hot(votes, C).sum(-2)                     # [U,K,n,C]
        pred = counts.argmax(-1)                                 # ties -> lowest label, as sklearn
        out["test/knn_accuracy"] = (pred == ev.y.long()).double().mean(-1)
        return {k: v.cpu().numpy() for k, v in out.items()}


for _name, _fam in (("regression", Regression()), ("binary", Classification(True)),
                    ("multiclass", Classification(False)), ("distribution", Distribution()),
                    ("density", Density()), ("embedding", Embedding())):
    FAMILIES.add(_name, _fam)
