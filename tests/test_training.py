"""What training itself records, for the studies of how it behaves: the stability edge lr* of
full-batch GD on MSE, step-size schedules, the distance to a convex problem's exact optimum,
metrics on the training split, and a linear model's final weights."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import spec
from harness.data import load
from harness.engine import train
from harness.optim import SCHEDULES, schedule_factor

SMALL = ("dataset=linear", "dataset.n_train=300", "dataset.n_test=100", "dataset.d=5", "train.dtype=float64")


def test_lr_edge_is_two_over_the_largest_eigenvalue_of_the_mse_hessian():
    """lr* = 2 / lambda_max((2/n) A'A), A = [1, X], on the training rows as trained."""
    for extra in (SMALL, (*SMALL, "dataset.correlation=0.8"), ("dataset=diabetes",)):
        s = spec(*extra, "train.steps=1")
        (r,) = train([s])
        d = load(s.dataset, s.seed, s.outlier_tuple())
        A = np.column_stack([np.ones(len(d.X_train)), d.X_train])
        lam = np.linalg.eigvalsh(2 / len(A) * A.T @ A).max()
        assert r.final["data/lr_edge"] == pytest.approx(2 / lam, rel=1e-12)


def test_gd_on_mse_diverges_just_above_the_edge_and_not_below():
    s = spec(*SMALL, "train.steps=1")
    (r,) = train([s])
    edge = r.final["data/lr_edge"]
    runs = train([spec(*SMALL, "train.steps=1500", f"optimizer.lr={f * edge}") for f in (0.9, 0.99, 1.01, 1.05)])
    assert [x.status for x in runs] == ["converged", "converged", "diverged", "diverged"]


@pytest.mark.parametrize("kind", SCHEDULES)
def test_schedules_against_their_formulas(kind):
    T, tau, rate = 200, 20, 0.3
    want = {"constant": lambda t: 1.0, "inverse_sqrt": lambda t: 1 / math.sqrt(1 + t / tau),
            "cosine": lambda t: (1 + math.cos(math.pi * t / T)) / 2, "step": lambda t: rate ** (t // tau)}[kind]
    for t in (0, 1, 19, 20, 21, 100, 199):
        assert schedule_factor(kind, t, T, tau, rate) == pytest.approx(want(t), rel=1e-15)


def test_a_scheduled_run_alone_equals_it_in_a_stack_and_follows_the_schedule():
    """SGD on MSE with a step schedule: the same numbers alone or beside runs of other schedules,
    and the update at step t is lr * f(t) times the gradient (checked against a hand-written loop)."""
    base = (*SMALL, "optimizer=sgd", "optimizer.lr=0.05", "train.steps=60", "train.log_every=1")
    specs = [spec(*base, f"optimizer.schedule={k}", "optimizer.decay_steps=10", "optimizer.decay_rate=0.5")
             for k in SCHEDULES] + [spec(*base, "optimizer.schedule=step", "optimizer.decay_steps=7")]
    stacked = train(specs, keep_params=True)
    for s, r in zip(specs, stacked):
        (alone,) = train([s], keep_params=True)
        # to rounding: a 5-run group multiplies along another BLAS path than a run alone on
        # some CPUs (the guarantee of bit-identity is the reliability issue's)
        np.testing.assert_allclose(alone.params["W"], r.params["W"], rtol=1e-12, atol=1e-14)
    d = load(specs[0].dataset, specs[0].seed, specs[0].outlier_tuple())
    X, y, n = d.X_train, d.y_train, len(d.y_train)
    for s, r in zip(specs, stacked):
        o = s.optimizer
        w, b = np.zeros(X.shape[1]), 0.0
        for t in range(60):
            res = X @ w + b - y
            lr = 0.05 * schedule_factor(o["schedule"], t, 60, o["decay_steps"], o["decay_rate"])
            w, b = w - lr * 2 * X.T @ res / n, b - lr * 2 * res.mean()
        np.testing.assert_allclose(r.params["W"][:, 0], w, rtol=1e-10, atol=1e-12)


def test_lad_optimum_matches_statsmodels_quantreg():
    """The harness's own least-absolute-deviations solution (a linear program, HiGHS) against
    statsmodels' QuantReg(q=0.5) on the same rows: never worse, and the same objective to 1e-7
    relative (QuantReg's iteratively reweighted least squares stops a few 1e-9 above the LP's
    exact vertex)."""
    import statsmodels.api as sm

    from harness import optimum
    from harness.losses import LOSSES

    s = spec(*SMALL, "loss=mae", "outliers.kind=shift", "outliers.ratio=0.1", "train.steps=1")
    d = load(s.dataset, s.seed, s.outlier_tuple())
    X, y = d.X_train, d.y_train
    mae = LOSSES.get("mae")
    theta = optimum.solve(mae, mae(), X, y, {}, 0.0, 0.0)
    fit = sm.QuantReg(y, sm.add_constant(X)).fit(q=0.5, max_iter=5000, p_tol=1e-12)
    lad = lambda w, b: np.mean(np.abs(y - X @ w - b))
    ours, theirs = lad(theta[:-1], theta[-1]), lad(fit.params[1:], fit.params[0])
    assert ours <= theirs * (1 + 1e-12)
    assert abs(ours - theirs) / theirs <= 1e-7


@pytest.mark.parametrize("loss, extra", [("mse", ("regularization.kind=l2", "regularization.weight=0.01")),
                                         ("huber", ("loss.delta=0.5",)), ("mae", ()),
                                         ("quantile", ("loss.tau=0.3",))])
def test_distance_to_the_optimum(loss, extra):
    """opt/distance and opt/gap: tiny for a smooth loss GD has converged on, >= 0 always; for
    the non-differentiable MAE and quantile losses at a constant step, clearly above 0."""
    s = spec(*SMALL, f"loss={loss}", *extra, "optimizer=gd", "optimizer.lr=0.2", "train.steps=3000",
             "train.optimum=true", "outliers.kind=shift", "outliers.ratio=0.1")
    (r,) = train([s])
    assert r.final["opt/gap"] >= -1e-12 and r.final["opt/distance"] >= 0
    if loss in ("mse", "huber"):
        assert r.final["opt/distance"] < 1e-6 and r.final["opt/gap"] < 1e-10
    else:
        assert r.final["opt/distance"] > 1e-4


def test_optimum_refused_where_there_is_none():
    from harness.errors import ConfigError

    for bad in ((*SMALL, "loss=mse", "regularization.kind=l1", "regularization.weight=0.1"), (*SMALL, "model=mlp"),
                ("loss=cross_entropy", "dataset=iris")):
        with pytest.raises(ConfigError) as e:
            spec(*bad, "train.optimum=true")
        assert e.value.key == "train.optimum"


def test_metrics_on_the_training_split():
    s = spec(*SMALL, "train.steps=50", "train.eval_train=true")
    (r,) = train([s], keep_params=True)
    d = load(s.dataset, s.seed, s.outlier_tuple())
    pred = (d.X_train @ r.params["W"][:, 0] + r.params["b"][0]) * d.y_scale + d.y_center
    y = d.y_train * d.y_scale + d.y_center
    assert r.final["train/rmse"] == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)), rel=1e-10)
    assert len(r.curves["train/rmse"][0]) == len(r.curves["test/rmse"][0])


def test_logged_weights_and_support_f1():
    s = spec(*SMALL, "train.steps=400", "train.log_weights=true")
    (r,) = train([s], keep_params=True)
    d = load(s.dataset, s.seed, s.outlier_tuple())
    w = r.params["W"][:, 0] * d.y_scale / d.x_scale
    assert [r.final[f"weights/w{j}"] for j in range(5)] == pytest.approx(w.tolist(), rel=1e-12)
    assert r.final["support_f1"] == 1.0          # dense true weights: every one found
    from harness.extras import support_f1

    est = np.array([[[1.0, 0.05, 0.0, -2.0]]])
    assert support_f1(est, np.array([[[1.0, 0.0, 0.0, 0.0]]]))[0, 0] == pytest.approx(2 / 3)


def test_lr_in_units_of_the_edge():
    """optimizer.lr_unit=edge: lr=f means f * lr* of the run's own data; the same numbers as
    lr = f * lr* given absolutely, on synthetic and public data."""
    for data in (SMALL, ("dataset=diabetes", "train.dtype=float64")):
        (probe,) = train([spec(*data, "train.steps=1")])
        edge = probe.final["data/lr_edge"]
        rel = train([spec(*data, "train.steps=1500", "optimizer.lr_unit=edge", f"optimizer.lr={f}") for f in (0.5, 0.99, 1.01)])
        ab = train([spec(*data, "train.steps=1500", f"optimizer.lr={f * edge}") for f in (0.5, 0.99, 1.01)])
        assert [r.status for r in rel] == ["converged", "converged", "diverged"]
        for a, b in zip(rel, ab):
            np.testing.assert_allclose(a.curves["train/loss"][1], b.curves["train/loss"][1], rtol=1e-9, equal_nan=True)


def test_a_validation_split_is_carved_from_the_training_rows_and_the_test_split_is_never_read():
    """dataset.val_size: the run trains on the rest of the training rows and is judged on the
    held-out ones (metrics val/...); poisoning every test target changes nothing in it."""
    from harness.data import DATASETS

    s = spec(*SMALL, "dataset.val_size=0.2", "train.steps=50")
    d = load(s.dataset, s.seed, s.outlier_tuple())
    full = load(spec(*SMALL, "train.steps=50").dataset, 0, ("none", 0.0, None))
    assert d.evaluated_on == "val" and len(d.X_train) == 240 and len(d.X_test) == 60   # 20% of 300 training rows
    (r,) = train([s])
    assert "val/rmse" in r.final and not any(k.startswith("test/") for k in r.final)
    cls = DATASETS.get("linear")
    build = cls.build

    def poisoned(section, seed):
        t = build(section, seed)
        t.y_test = t.y_test * 0 + 1e9
        return t

    import harness.data as D

    try:
        cls.build = classmethod(lambda c, section, seed: poisoned(section, seed))
        D._prepared.cache_clear(), D._table.cache_clear()
        (again,) = train([s])
    finally:
        cls.build = build
        D._prepared.cache_clear(), D._table.cache_clear()
    assert again.final == r.final
    assert full.evaluated_on == "test"
