"""The exact optimum of a convex training problem, for `train.optimum=true`: how far each run
ended from it (opt/distance, in the parameters it trains) and how much objective it left
(opt/gap). Only for a linear model with one output, whose objective

    J(w, b) = mean_i loss(x_i . w + b, y_i) + l1 |w|_1 + l2 |w|_2^2       (b unpenalized)

is convex; each loss says how its optimum is found (`Loss.optimum`):

    least_squares   MSE: the ridge normal equations, w = (Xc'Xc/n + l2 I)^-1 Xc'yc/n, b = ybar - xbar w
                    (no l1)
    linear_program  MAE, quantile (pinball losses, `Loss.lp_weights`): min (1/n) sum (a u_i + c v_i)
                    + l1 sum (p_j + q_j) s.t. X (p - q) + b + u - v = y, u, v, p, q >= 0, by
                    scipy.optimize.linprog (HiGHS); the exact LAD solution for MAE (no l2)
    smooth          Huber, Poisson, BCE, ...: L-BFGS (scipy) on J, the gradient by autograd of the
                    run's own loss, to a gradient norm of 1e-10 (no l1)

The optimum is solved once per data group and distinct (loss parameters, l1, l2), in float64.
"""
from __future__ import annotations

import numpy as np

from harness.errors import ConfigError

KINDS = ("least_squares", "linear_program", "smooth")


def check(loss_cls, model_cls, reg: dict) -> None:
    """ConfigError unless this loss, model and penalty have an optimum we can solve for."""
    kind = getattr(loss_cls, "optimum", None)
    if kind not in KINDS:
        raise ConfigError("train.optimum", True, f"false: loss={loss_cls.name} has no exact optimum here "
                                                 "(losses with one: mse, mae, quantile, huber, log_cosh, bce, poisson, ...)")
    if not getattr(model_cls, "linear", False):
        raise ConfigError("train.optimum", True, f"false: model={model_cls.name} is not a linear model")
    bad = {"least_squares": "l1", "linear_program": "l2", "smooth": "l1"}[kind]
    if reg["kind"] == bad and reg["weight"] > 0:
        raise ConfigError("train.optimum", True, f"false, or regularization.kind other than {bad}: no exact "
                                                 f"optimum of loss={loss_cls.name} with an {bad} penalty here")


def solve(loss_cls, loss_fn, X: np.ndarray, y: np.ndarray, params: dict[str, float], l1: float, l2: float) -> np.ndarray:
    """theta* = (w*, b*) minimizing J (module doc)."""
    n, d = X.shape
    if loss_cls.optimum == "least_squares":
        xm, ym = X.mean(0), y.mean()
        Xc, yc = X - xm, y - ym
        w = np.linalg.solve(Xc.T @ Xc / n + l2 * np.eye(d), Xc.T @ yc / n)
        return np.r_[w, ym - xm @ w]
    if loss_cls.optimum == "linear_program":
        from scipy.optimize import linprog
        from scipy.sparse import eye, hstack, csr_matrix

        a, c = loss_cls.lp_weights(params)
        # variables: p [d], q [d], b [1], u [n], v [n]
        cost = np.r_[np.full(2 * d, l1), 0.0, np.full(n, a / n), np.full(n, c / n)]
        Xs = csr_matrix(X)
        A = hstack([Xs, -Xs, csr_matrix(np.ones((n, 1))), eye(n), -eye(n)], format="csr")
        bounds = [(0, None)] * (2 * d) + [(None, None)] + [(0, None)] * (2 * n)
        res = linprog(cost, A_eq=A, b_eq=y, bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"linprog: {res.message}")
        return np.r_[res.x[:d] - res.x[d:2 * d], res.x[2 * d]]
    return _smooth(loss_fn, X, y, params, l2)


def _smooth(loss_fn, X, y, params, l2) -> np.ndarray:
    import torch
    from scipy.optimize import minimize

    from harness.losses import Batch

    Xt, yt = torch.tensor(X), torch.tensor(y)[None, None]

    def fun(theta: np.ndarray):
        t = torch.tensor(theta, requires_grad=True)
        out = (Xt @ t[:-1] + t[-1])[None, None]
        j = loss_fn(out, Batch(yt), params).sum() + l2 * (t[:-1] ** 2).sum()
        (g,) = torch.autograd.grad(j, t)
        return float(j.detach()), g.numpy()

    res = minimize(fun, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 20_000})
    return res.x


def objective(loss_fn, X: np.ndarray, y: np.ndarray, theta: np.ndarray, params: dict, l1: float, l2: float) -> float:
    """J(theta), with the run's own loss."""
    import torch

    from harness.losses import Batch

    t = torch.tensor(theta)
    out = (torch.tensor(X) @ t[:-1] + t[-1])[None, None]
    return float(loss_fn(out, Batch(torch.tensor(y)[None, None]), params).sum()
                 + l1 * t[:-1].abs().sum() + l2 * (t[:-1] ** 2).sum())
