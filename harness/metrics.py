"""Evaluation metrics, per metric family (harness/metric_table.py lists each family's metrics,
their labels and directions; this module computes the shared families, and a task with a
family of its own brings its code, `Task.metrics`). A metric is not a loss: it need not
be differentiable, and it is what a run is judged by. Names carry their split (`test/rmse`).

Each family has two calls:
  curve(out, ev)        cheap metrics of every run at once, [U, K] tensors, at each eval point
  final(out, ev)        the rest, once per run after training: {name: [U, K] numpy}, with
                        scikit-learn where it has the metric

`out` is the model output on the test split: [U, K, n] (value / logit heads), [U, K, n, C]
(logits), [U, K, n, e] (embeddings) or [U, K, n, 2] (Gaussian mu, log sigma). Retrieval metrics
score a *representation* of the inputs (`ev.rep`): an embedding head's output, or an MLP's
hidden layer for a classifier (the engine computes it where the family declares retrieval
metrics and the model has one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.metric_table import FAMILIES, FamilyMetrics
from harness.products import pairwise_distance
from harness.registry import Registry


@dataclass
class Representation:
    """Embeddings of the test split [U, K, n, e] and of the training split [U, K, m, e], with the
    training labels [U, 1, m] (as trained on, noisy ones included)."""

    test: torch.Tensor
    train: torch.Tensor
    train_labels: torch.Tensor


@dataclass
class EvalData:
    """The test split on the device. y [U, 1, n] (labels or targets; soft targets [U, 1, n, C]),
    y_center / y_scale [U, 1, 1] undo target scaling; extra holds per-group constants (a target
    density); rep the representation retrieval metrics score, where there is one."""

    X: torch.Tensor
    y: torch.Tensor
    y_center: torch.Tensor
    y_scale: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)
    rep: Representation | None = None


FAMILY_METRICS: Registry[FamilyMetrics] = Registry("metric family")


# -- regression ---------------------------------------------------------------------------
class Regression(FamilyMetrics):
    """RMSE, MAE and R^2 = 1 - SSE / SST, in the target's original units (formulas checked
    against sklearn.metrics in the tests; written in torch to run for every run at every eval)."""

    name = "regression"

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


class Classification(FamilyMetrics):
    """Accuracy, precision, recall, F1 (binary: of class 1; multi-class: the macro mean over the
    classes present in the labels or the predictions, as scikit-learn's average="macro"), log loss
    and the expected calibration error, for every run at every eval point, in torch; ROC AUC
    (binary) once at the end, by scikit-learn. All checked against scikit-learn in the tests."""

    def __init__(self, name: str, binary: bool):
        self.name, self.binary = name, binary

    def curve(self, out, ev):
        y = ev.y.long()                                      # [U,1,n]
        prob = probabilities(out)                            # [U,K,n,C]
        C = prob.shape[-1]
        pred = (out > 0).long() if self.binary else out.argmax(-1)
        hit = (pred == y).to(out.dtype)
        onehot = lambda a: F.one_hot(a.expand(pred.shape), C).to(out.dtype)   # [U,K,n,C]
        P, T = onehot(pred), onehot(y)
        tp, n_pred, n_true = (P * T).sum(-2), P.sum(-2), T.sum(-2)           # [U,K,C]
        precision = torch.where(n_pred > 0, tp / n_pred.clamp(min=1), 0.0)
        recall = torch.where(n_true > 0, tp / n_true.clamp(min=1), 0.0)
        f1 = torch.where(n_pred + n_true > 0, 2 * tp / (n_pred + n_true).clamp(min=1), 0.0)
        if self.binary:
            precision, recall, f1 = precision[..., 1], recall[..., 1], f1[..., 1]
        else:
            present = (n_pred + n_true > 0).to(out.dtype)
            mean = lambda v: (v * present).sum(-1) / present.sum(-1)
            precision, recall, f1 = mean(precision), mean(recall), mean(f1)
        p64 = prob.double()
        p_y = p64.gather(-1, y.expand(pred.shape).unsqueeze(-1)).squeeze(-1)
        eps = torch.finfo(torch.float64).eps
        log_loss = -torch.log(p_y.clamp(eps, 1 - eps)).mean(-1)
        return {"test/accuracy": hit.mean(-1), "test/precision": precision, "test/recall": recall, "test/f1": f1,
                "test/log_loss": log_loss.to(out.dtype), "test/ece": calibration_error(p64, pred, y).to(out.dtype)}

    def final(self, out, ev):
        res: dict[str, np.ndarray] = {}
        if self.binary:
            from sklearn import metrics as skm

            prob = torch.sigmoid(out).detach().cpu().double().numpy()
            ys = ev.y.long().cpu().numpy()[:, 0]
            auc = np.full(prob.shape[:2], np.nan)
            for u in range(prob.shape[0]):
                for k in range(prob.shape[1]):
                    if np.isfinite(prob[u, k]).all():
                        auc[u, k] = skm.roc_auc_score(ys[u], prob[u, k])
            res["test/roc_auc"] = auc
        if ev.rep is not None:
            res.update(retrieval(ev.rep, ev.y))
        return res


def calibration_error(prob: torch.Tensor, pred: torch.Tensor, y: torch.Tensor, bins: int = 15) -> torch.Tensor:
    """ECE with equal-width bins on the top-label confidence, for every run at once:
    sum_b (n_b / n) |accuracy_b - confidence_b| = (1/n) sum_b |sum_{i in b} (correct_i - conf_i)|
    (Guo et al. 2017); a confidence on a bin's upper edge falls in that bin (np.digitize, right=True)."""
    conf = prob.max(-1).values                                              # [U,K,n]
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=conf.dtype, device=conf.device)[1:-1]
    which = torch.bucketize(conf, edges).clamp(0, bins - 1)
    gap = (pred == y).to(conf.dtype) - conf
    per_bin = torch.zeros(*conf.shape[:-1], bins, dtype=conf.dtype, device=conf.device).scatter_add_(-1, which, gap)
    return per_bin.abs().sum(-1) / conf.shape[-1]


# -- distributions ------------------------------------------------------------------------
class Distribution(FamilyMetrics):
    """test/kl: mean over test examples of KL(teacher || student); test/accuracy: how often the
    student's most likely class is the teacher's."""

    name = "distribution"

    def curve(self, out, ev):
        p = ev.y                                   # [U,1,n,C]
        logq = F.log_softmax(out, dim=-1)
        kl = F.kl_div(logq, p.expand_as(logq), reduction="none").sum(-1).mean(-1)
        acc = (out.argmax(-1) == p.argmax(-1)).to(out.dtype).mean(-1)
        return {"test/kl": kl, "test/accuracy": acc}


class Density(FamilyMetrics):
    """Forward KL(p || q) and reverse KL(q || p) between the target mixture p and the fitted
    Gaussian q, by quadrature on a fine grid (exact to ~1e-6 for these smooth 1-D densities);
    test/nll, the mean negative log-likelihood -log q(x) of the held-out samples (the test
    metric that needs no known p); fit/mu and fit/sigma, q's parameters (the report draws the
    fits from them)."""

    name = "density"

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
K_NN = 5


def retrieval(rep: Representation, y_test: torch.Tensor) -> dict[str, np.ndarray]:
    """Retrieval on the test split. recall@k: the share of test points with at least one of
    their k nearest other test points (Euclidean) of the same label. knn_accuracy: a 5-nearest-
    neighbour vote among the training points' embeddings (sklearn's KNeighborsClassifier rule,
    checked against it in the tests). y_test [U, 1, n] labels."""
    emb = rep.test
    y = y_test.long()[:, :, None, :]                         # [U,1,1,n]
    d = pairwise_distance(emb)                               # [U,K,n,n] (products.py: the same bits in any stack)
    n = d.shape[-1]
    d = d + torch.eye(n, device=d.device, dtype=d.dtype) * torch.finfo(d.dtype).max
    nn = d.topk(5, dim=-1, largest=False).indices            # [U,K,n,5]
    lab = torch.gather(y.expand(*d.shape[:2], n, n), -1, nn)  # labels of the neighbours
    hit = lab == y_test.long()[..., None]                    # [U,K,n,5]
    out = {"test/recall_at_1": hit[..., :1].any(-1).double().mean(-1),
           "test/recall_at_5": hit.any(-1).double().mean(-1)}
    tr_emb, tr_y = rep.train, rep.train_labels.long()        # [U,K,m,e], [U,1,m]
    dt = pairwise_distance(emb, tr_emb)                      # [U,K,n,m]
    idx = dt.topk(K_NN, dim=-1, largest=False).indices
    votes = torch.gather(tr_y[:, :, None, :].expand(*dt.shape), -1, idx)
    C = int(max(tr_y.max(), y_test.long().max())) + 1
    counts = F.one_hot(votes, C).sum(-2)                     # [U,K,n,C]
    pred = counts.argmax(-1)                                 # ties -> lowest label, as sklearn
    out["test/knn_accuracy"] = (pred == y_test.long()).double().mean(-1)
    return {k: v.cpu().numpy() for k, v in out.items()}


class Embedding(FamilyMetrics):
    """An embedding is judged by retrieval alone (see `retrieval`)."""

    name = "embedding"

    def final(self, out, ev):
        return retrieval(ev.rep, ev.y)


def _register() -> None:
    from harness.tasks import TASKS

    shared = (Regression(), Classification("binary", True), Classification("multiclass", False), Distribution(),
              Density(), Embedding())
    own = tuple(t.metrics for _, t in TASKS.items() if t.metrics is not None)   # a task's own family
    for fam in shared + own:
        FAMILY_METRICS.add(fam.name, fam)
    missing = set(FAMILIES) - set(FAMILY_METRICS)
    assert not missing, f"metric families without code: {sorted(missing)}"


_register()
