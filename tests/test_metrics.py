"""The metric families against scikit-learn / SciPy on the same numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.neighbors import KNeighborsClassifier

from harness import metrics as M

g = torch.Generator().manual_seed(0)


def test_regression_metrics_match_sklearn():
    U, K, n = 2, 3, 50
    pred = torch.randn(U, K, n, generator=g, dtype=torch.float64)
    y = torch.randn(U, 1, n, generator=g, dtype=torch.float64)
    center, scale = torch.tensor([[[3.0]], [[-1.0]]], dtype=torch.float64), torch.tensor([[[2.0]], [[0.5]]], dtype=torch.float64)
    got = M.FAMILY_METRICS.get("regression").curve(pred, M.EvalData(None, y, center, scale))
    for u in range(U):
        for k in range(K):
            p = (pred[u, k] * scale[u] + center[u]).numpy().ravel()
            t = (y[u, 0] * scale[u] + center[u]).numpy().ravel()
            assert np.isclose(got["test/rmse"][u, k], np.sqrt(skm.mean_squared_error(t, p)))
            assert np.isclose(got["test/mae"][u, k], skm.mean_absolute_error(t, p))
            assert np.isclose(got["test/r2"][u, k], skm.r2_score(t, p))


def _ece(prob: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """The written-out ECE (Guo et al. 2017): equal-width bins on the top-label confidence,
    sum_b (n_b / n) |accuracy_b - confidence_b|."""
    conf, pred = prob.max(-1), prob.argmax(-1)
    which = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    return float(sum((which == b).mean() * abs((pred[which == b] == y[which == b]).mean() - conf[which == b].mean())
                     for b in range(bins) if (which == b).any()))


def test_expected_calibration_error_by_hand():
    prob = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1])
    # bins of width 1/15 on top-label confidence: 0.9 | 0.8 | 0.7 | 0.55, one example each
    want = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.55)) / 4
    p = torch.tensor(prob)[None, None]
    got = M.calibration_error(p, p.argmax(-1), torch.tensor(y)[None, None])
    assert np.isclose(_ece(prob, y), want) and np.isclose(float(got), want)


@pytest.mark.parametrize("binary, dtype", [(True, torch.float64), (False, torch.float64), (False, torch.float32)])
def test_classification_metrics(binary, dtype):
    """Every curve metric of a stack of runs against scikit-learn run by run, including a class
    that no label and no prediction has (macro averages skip it, as scikit-learn does)."""
    U, K, n, C = 2, 3, 60, (2 if binary else 5)
    out = torch.randn((U, K, n) if binary else (U, K, n, C), generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, C - (0 if binary else 1), (U, 1, n), generator=g)     # class C-1: no label
    if not binary:
        out[..., C - 1] = -50.0                                                   # ... and no prediction
    out = out.to(dtype)
    ev = M.EvalData(None, y.to(dtype) if binary else y, None, None)
    fam = M.FAMILY_METRICS.get("binary" if binary else "multiclass")
    cur, fin = fam.curve(out, ev), fam.final(out, ev)
    prob = M.probabilities(out).double().numpy()
    tol = dict(rtol=1e-5, atol=1e-6 if dtype == torch.float64 else 1e-5)
    for u in range(U):
        for k in range(K):
            p, t = prob[u, k], y[u, 0].numpy()
            pred = p.argmax(-1)
            avg = "binary" if binary else "macro"
            want = {"test/accuracy": skm.accuracy_score(t, pred),
                    "test/precision": skm.precision_score(t, pred, average=avg, zero_division=0),
                    "test/recall": skm.recall_score(t, pred, average=avg, zero_division=0),
                    "test/f1": skm.f1_score(t, pred, average=avg, zero_division=0),
                    "test/log_loss": skm.log_loss(t, p / p.sum(-1, keepdims=True), labels=list(range(C))),
                    "test/ece": _ece(p, t)}
            for name, w in want.items():
                assert np.isclose(float(cur[name][u, k]), w, **tol), (name, float(cur[name][u, k]), w)
            if binary:
                assert np.isclose(fin["test/roc_auc"][u, k], skm.roc_auc_score(t, p[:, 1]))


def test_retrieval_metrics():
    n, m, e = 40, 80, 3
    emb = torch.randn(1, 2, n, e, generator=g, dtype=torch.float64)
    tr = torch.randn(1, 2, m, e, generator=g, dtype=torch.float64)
    y, ytr = torch.randint(0, 3, (1, 1, n), generator=g), torch.randint(0, 3, (1, 1, m), generator=g)
    rep = M.Representation(emb, tr, ytr)
    got = M.FAMILY_METRICS.get("embedding").final(emb, M.EvalData(None, y, None, None, rep=rep))
    for k in range(2):
        E, lab = emb[0, k].numpy(), y[0, 0].numpy()
        knn = KNeighborsClassifier(5).fit(tr[0, k].numpy(), ytr[0, 0].numpy())
        assert np.isclose(got["test/knn_accuracy"][0, k], knn.score(E, lab))
        d = np.linalg.norm(E[:, None] - E[None], axis=-1) + np.eye(n) * 1e9
        nn = np.argsort(d, axis=1)
        assert np.isclose(got["test/recall_at_1"][0, k], np.mean(lab[nn[:, 0]] == lab))
        assert np.isclose(got["test/recall_at_5"][0, k], np.mean([(lab[nn[i, :5]] == lab[i]).any() for i in range(n)]))


def test_density_metrics_by_quadrature_and_likelihood():
    from scipy import integrate
    from scipy.stats import norm

    w, m, s = [0.4, 0.6], [-1.0, 2.0], [0.5, 0.7]
    mix = tuple(torch.tensor(v, dtype=torch.float64)[None, None, None, :] for v in (w, m, s))
    x = torch.linspace(-3, 4, 30, dtype=torch.float64)[None, None, :]
    out = torch.tensor([0.5, np.log(1.5)], dtype=torch.float64).expand(1, 1, 30, 2)
    got = M.FAMILY_METRICS.get("density").curve(out, M.EvalData(None, x, None, None, {"mixture": mix}))
    p = lambda t: sum(wi * norm.pdf(t, mi, si) for wi, mi, si in zip(w, m, s))
    q = lambda t: norm.pdf(t, 0.5, 1.5)
    fwd = integrate.quad(lambda t: p(t) * np.log(p(t) / q(t)), -12, 14, limit=200)[0]
    rev = integrate.quad(lambda t: q(t) * np.log(q(t) / p(t)), -12, 14, limit=200)[0]
    assert np.isclose(got["test/kl"][0, 0], fwd, rtol=1e-5)
    assert np.isclose(got["test/reverse_kl"][0, 0], rev, rtol=1e-5)
    assert np.isclose(got["test/nll"][0, 0], -norm.logpdf(x.numpy(), 0.5, 1.5).mean())


def test_count_metrics_match_sklearn():
    """Mean Poisson deviance of mu = exp(out) (the log link), and RMSE / MAE of mu, in counts."""
    U, K, n = 2, 3, 60
    out = torch.randn(U, K, n, generator=g, dtype=torch.float64)
    y = torch.poisson(torch.full((U, 1, n), 2.0, dtype=torch.float64), generator=g)
    got = M.FAMILY_METRICS.get("count").curve(out, M.EvalData(None, y, None, None))
    for u in range(U):
        for k in range(K):
            mu, t = out[u, k].exp().numpy(), y[u, 0].numpy()
            assert np.isclose(got["test/poisson_deviance"][u, k], skm.mean_poisson_deviance(t, mu))
            assert np.isclose(got["test/rmse"][u, k], np.sqrt(skm.mean_squared_error(t, mu)))
            assert np.isclose(got["test/mae"][u, k], skm.mean_absolute_error(t, mu))


# ------------------------------------------------- the metric table and what is computed

def _one_run(*overrides):
    from conftest import spec
    from harness.engine import train

    (r,) = train([spec(*overrides, "train.steps=3")])
    return r


# one run per family, with and without its extras (param_error: known weights and a linear
# model; retrieval metrics of the hidden layer: an MLP)
FAMILY_RUNS = {
    ("regression", True): ("dataset=linear",),
    ("regression", False): ("dataset=diabetes",),
    ("count", True): ("dataset=counts", "loss=poisson"),
    ("count", False): ("dataset=rwm1984", "loss=poisson"),
    ("binary", False): ("dataset=breast_cancer", "loss=bce"),
    ("multiclass", False): ("dataset=iris", "loss=cross_entropy"),
    ("multiclass", True): ("dataset=iris", "loss=cross_entropy", "model=mlp", "model.width=8"),
    ("distribution", False): ("dataset=soft_targets", "loss=kl", "dataset.n_train=100", "dataset.n_test=50"),
    ("density", False): ("dataset=mixture", "loss=kl", "model=gaussian", "dataset.n_train=100", "dataset.n_test=50"),
    ("embedding", False): ("dataset=iris", "loss=triplet"),
}


def test_every_family_is_run_here():
    from harness.metric_table import FAMILIES

    assert {f for f, _ in FAMILY_RUNS} == set(FAMILIES)


@pytest.mark.parametrize("family, extras", list(FAMILY_RUNS))
def test_each_family_computes_exactly_the_metrics_it_declares(family, extras):
    from harness.metric_table import FAMILIES, METRICS

    r = _one_run(*FAMILY_RUNS[(family, extras)])
    fam = FAMILIES[family]
    assert r.spec.family == family
    training = {"train/loss", "train/objective", "train/grad_norm", "train/steps_run", "data/lr_edge"} | ({"test/loss"} if "test/loss" in r.final else set())
    want = set(fam.members) | (set(fam.extras) if extras else set())
    assert set(r.final) - training == want
    assert set(r.final) - {"train/steps_run"} <= set(METRICS)   # the run's step count: a record, not a metric
    # curves are exactly the metrics the table marks as curves
    assert {k for k in r.curves if k not in training} == {m for m in want if METRICS[m].curve}
