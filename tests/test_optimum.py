"""Convex problems must reach their known optimum: ridge's closed form, the Huber and MAE
(least absolute deviations) optima from SciPy / statsmodels, and the Poisson GLM's from
statsmodels, on the same data and objective."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from conftest import spec
from harness.data import load
from harness.engine import train

SMALL = ("dataset=linear", "dataset.n_train=200", "dataset.n_test=50", "dataset.d=5", "dataset.noise=0.5",
         "dataset.standardize=false", "train.dtype=float64", "train.eval_every=100")


def _fit(*overrides):
    s = spec(*SMALL, *overrides)
    (r,) = train([s], keep_params=True)
    data = load(s.dataset, s.seed, s.outlier_tuple())
    return r, data


def test_gd_on_mse_plus_l2_reaches_ridge_closed_form():
    lam = 0.05
    r, d = _fit("loss=mse", "optimizer=gd", "optimizer.lr=0.2", "train.steps=3000",
                "regularization.kind=l2", f"regularization.weight={lam}")
    X, y = d.X_train, d.y_train
    n = len(y)
    # minimize (1/n)|y - Xw - b|^2 + lam |w|^2  (b unpenalized): centre, then solve
    xm, ym = X.mean(0), y.mean()
    Xc, yc = X - xm, y - ym
    w = np.linalg.solve(Xc.T @ Xc / n + lam * np.eye(X.shape[1]), Xc.T @ yc / n)
    b = ym - xm @ w
    got_w, got_b = r.params["W"][:, 0], r.params["b"][0]
    assert r.status == "converged"
    assert np.linalg.norm(got_w - w) / np.linalg.norm(w) <= 1e-4
    assert abs(got_b - b) / max(abs(b), 1.0) <= 1e-4


def test_gd_on_huber_reaches_scipy_optimum():
    delta = 0.7
    r, d = _fit("loss=huber", f"loss.delta={delta}", "optimizer=gd", "optimizer.lr=0.5", "train.steps=4000",
                "outliers.kind=shift", "outliers.ratio=0.1")
    X, y = d.X_train, d.y_train

    def objective(theta):
        res = X @ theta[:-1] + theta[-1] - y
        a = np.abs(res)
        return np.mean(np.where(a <= delta, 0.5 * res**2, delta * (a - 0.5 * delta)))

    opt = scipy.optimize.minimize(objective, np.zeros(X.shape[1] + 1), method="BFGS", options={"gtol": 1e-12})
    got = np.concatenate([r.params["W"][:, 0], r.params["b"]])
    assert abs(objective(got) - opt.fun) <= 1e-8 * max(1.0, opt.fun)
    assert np.linalg.norm(got - opt.x) / np.linalg.norm(opt.x) <= 1e-4


def test_mae_reaches_least_absolute_deviation_optimum():
    """Subgradient descent on MAE with a constant step ends within O(lr) of the LAD solution;
    the objective must match statsmodels' QuantReg (q = 0.5) to 1e-4 relative."""
    import statsmodels.api as sm

    r, d = _fit("loss=mae", "optimizer=adam", "optimizer.lr=0.001", "train.steps=6000",
                "outliers.kind=shift", "outliers.ratio=0.1")
    X, y = d.X_train, d.y_train
    fit = sm.QuantReg(y, sm.add_constant(X)).fit(q=0.5, max_iter=5000, p_tol=1e-10)
    lad = lambda b, w: np.mean(np.abs(y - X @ w - b))
    best = lad(fit.params[0], fit.params[1:])
    got = lad(r.params["b"][0], r.params["W"][:, 0])
    assert got >= best - 1e-9          # the LP optimum is a true lower bound
    assert (got - best) / best <= 1e-4
    assert np.linalg.norm(r.params["W"][:, 0] - fit.params[1:]) / np.linalg.norm(fit.params[1:]) <= 1e-2


@pytest.mark.parametrize("opt, kw", [("sgd", {}), ("momentum", {"momentum": 0.9}), ("adam", {})])
def test_stacked_optimizers_match_torch_optim(opt, kw):
    """A stack of one with each optimizer follows torch.optim step for step (MSE, linear model)."""
    import torch

    lr = {"sgd": 0.1, "momentum": 0.05, "adam": 0.01}[opt]
    r, d = _fit("loss=mse", f"optimizer={opt}", f"optimizer.lr={lr}", "train.steps=50")
    X = torch.tensor(d.X_train)
    y = torch.tensor(d.y_train)
    w = torch.zeros(X.shape[1], 1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    o = {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD, "adam": torch.optim.Adam}[opt]([w, b], lr=lr, **kw)
    for _ in range(50):
        o.zero_grad()
        loss = ((X @ w)[:, 0] + b - y).pow(2).mean()
        loss.backward()
        o.step()
    np.testing.assert_allclose(r.params["W"][:, 0], w.detach().numpy()[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.params["b"], b.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_gd_on_poisson_reaches_the_statsmodels_glm_optimum():
    """Full-batch GD on the Poisson loss (log link) of the synthetic counts minimizes
    mean_i [exp(x_i w + b) - y_i (x_i w + b)]: the negative log-likelihood of the Poisson GLM
    up to sum log y_i!. statsmodels' GLM(family=Poisson()) maximizes the same likelihood (IRLS);
    the objectives agree to 1e-5 relative, and param_error (against the true weights) is small."""
    import statsmodels.api as sm

    s = spec("loss=poisson", "dataset=counts", "dataset.n_train=1000", "dataset.n_test=200", "optimizer=gd",
             "optimizer.lr=0.1", "train.steps=2000", "train.dtype=float64", "train.eval_every=500")
    (r,) = train([s], keep_params=True)
    d = load(s.dataset, s.seed, s.outlier_tuple())          # the exact arrays the run trained on
    X, y = d.X_train, d.y_train
    fit = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson()).fit(tol=1e-12)
    nll = lambda b, w: np.mean(np.exp(X @ w + b) - y * (X @ w + b))
    best = nll(fit.params[0], fit.params[1:])
    got = nll(r.params["b"][0], r.params["W"][:, 0])
    assert r.status == "converged" and got >= best - 1e-12
    assert (got - best) / abs(best) <= 1e-5
    np.testing.assert_allclose(r.params["W"][:, 0], fit.params[1:], rtol=1e-3, atol=1e-5)
    assert r.final["param_error"] < 0.1
