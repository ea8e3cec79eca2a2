"""What the engine records beside the metric families, from a trained stack (engine._Stack):

    data/lr_edge   every run: its data's stability edge of full-batch GD on MSE for a linear
                   model, lr* = 2 / lambda_max((2/n) A'A), A = [1, X] (data/prepare.py); a fact
                   of the data, kept for diverged runs too
    data/...       train.facts: the task's facts of the training data (harness/tasks/: Task.facts,
                   e.g. data/outlier_share, data/label_noise), kept for diverged runs too
    weights/w<j>   train.log_weights, a linear model with one output: the final weights in the
                   features' original units (w_j y_scale / x_scale_j), for regularization paths
    support_f1     the same, where the true weights are known: F1 of the estimated support
                   {j : |w_j| > 0.1 max_i |w_i|} against {j : w*_j != 0}
    opt/distance   train.optimum: |theta - theta*|_2 over (w, b) as trained (scaled units), and
    opt/gap        J(theta) - J(theta*), J the full-batch training objective (harness/optimum.py)

Each function returns {name: [U, K] array}.
"""
from __future__ import annotations

import numpy as np

SUPPORT_THRESHOLD = 0.1


def facts(st) -> dict[str, np.ndarray]:
    """data/lr_edge always; the task's facts (train.facts=true) per data group; [U, K] each."""
    shape = (st.layout.U, st.layout.K)
    out = {"data/lr_edge": np.broadcast_to(np.array([d.lr_edge for d in st.datas])[:, None], shape)}
    if st.specs[0].train["facts"]:
        per = [st.task.facts(d) for d in st.datas]
        for name in per[0]:
            out[name] = np.broadcast_to(np.array([f.get(name, np.nan) for f in per])[:, None], shape)
    return out


def final(st) -> dict[str, np.ndarray]:
    t = st.specs[0].train
    out: dict[str, np.ndarray] = {}
    W = st.model.linear_weights(st.params)
    if t["log_weights"] and W is not None:
        unscale = np.stack([d.y_scale / d.x_scale for d in st.datas])[:, None, :]          # [U, 1, d]
        w = W.detach().cpu().double().numpy() * unscale                                   # [U, K, d]
        out.update({f"weights/w{j}": w[..., j] for j in range(w.shape[-1])})
        if all(d.w_true is not None for d in st.datas):
            out["support_f1"] = support_f1(w, np.stack([d.w_true for d in st.datas])[:, None, :])
    if t["optimum"]:
        out.update(_optimality(st))
    return out


def support_f1(w: np.ndarray, w_true: np.ndarray) -> np.ndarray:
    """F1 of the estimated support (|w_j| > SUPPORT_THRESHOLD max |w|) against w* != 0, [U, K]."""
    est = np.abs(w) > SUPPORT_THRESHOLD * np.abs(w).max(-1, keepdims=True)
    true = np.broadcast_to(w_true != 0, est.shape)
    tp = (est & true).sum(-1)
    fp, fn = (est & ~true).sum(-1), (~est & true).sum(-1)
    return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)


def _optimality(st) -> dict[str, np.ndarray]:
    from harness import optimum
    from harness.losses import loss_class

    loss_cls = loss_class(st.specs[0].loss)
    W = st.params["W"].detach().cpu().double().numpy()[..., 0]          # [U, K, d]
    b = st.params["b"].detach().cpu().double().numpy()[..., 0]          # [U, K]
    dist, gap = np.full(W.shape[:2], np.nan), np.full(W.shape[:2], np.nan)
    solved: dict[tuple, tuple] = {}
    for u, row in enumerate(st.layout.run_at):
        d = st.datas[u]
        X, y = d.X_train.astype(np.float64), np.asarray(d.y_train, dtype=np.float64)
        for k, i in enumerate(row):
            s = st.specs[i]
            params = {p: float(s.loss[p]) for p in loss_cls.stacked}
            reg = s.regularization
            l1, l2 = (reg["weight"] * (reg["kind"] == kind) for kind in ("l1", "l2"))
            key = (u, tuple(sorted(params.items())), l1, l2)
            if key not in solved:
                theta = optimum.solve(loss_cls, st.loss_fn, X, y, params, l1, l2)
                solved[key] = (theta, optimum.objective(st.loss_fn, X, y, theta, params, l1, l2))
            theta, best = solved[key]
            run = np.r_[W[u, k], b[u, k]]
            dist[u, k] = np.linalg.norm(run - theta)
            gap[u, k] = optimum.objective(st.loss_fn, X, y, run, params, l1, l2) - best
    return {"opt/distance": dist, "opt/gap": gap}
