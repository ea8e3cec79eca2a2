"""The engine: `train(specs) -> [RunResult]` trains a stack of runs as one batched program.

A stack is laid out as U data groups x K runs per group (groups share training data, seed and
minibatch order; a group with fewer than K runs is padded with copies whose results are
dropped). Every parameter carries the [U, K] axes; per-run numbers (learning rate,
regularization weights, loss parameters) are [U, K] tensors. One step:

    out  = model(params, X)                      [U, K, n, o]
    loss = loss_fn(out, y, loss_params)          [U, K]   mean data loss per run
    obj  = loss + l1 * |W|_1 + l2 * |W|_2^2      [U, K]
    grad = d(sum of obj over live runs)/d params   (each run's own gradient: runs share nothing)
    params <- optimizer step, for live runs only

Curves: train/loss every log_every steps; train/objective, train/grad_norm, test/* and
param_error every eval_every steps (and all of them at the last step).

A run whose objective turns NaN/inf, or exceeds divergence_factor x max(initial loss, 1), stops:
its parameters freeze, it is recorded as diverged with its curve up to that point (NaN after
it) and NaN final metrics, and its neighbours go on. Curves are kept on the device and copied out once, at the end, so a GPU
never waits on the host inside the loop. A single run is a stack of one: same code path.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from harness import metrics as M
from harness.metrics import FAMILIES
from harness.data import Prepared, load
from harness.data.base import rng
from harness.losses import Batch, loss_class
from harness.models import MODELS
from harness.optim import OPTIMIZERS
from harness.spec import RunSpec, resolve_device

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RunResult:
    spec: RunSpec
    status: str                                   # "converged" | "diverged"
    diverged_step: int | None
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (steps, values)
    final: dict[str, float]
    seconds: float                                # this run's share of the stack's training time
    device: str
    data: Prepared | None = field(default=None, repr=False)
    params: dict[str, np.ndarray] | None = field(default=None, repr=False)  # final, when asked for


@dataclass
class Layout:
    """Which run sits in which (group, slot); padding slots repeat the group's first run."""

    groups: list[list[int]]   # run indices per group
    U: int
    K: int
    run_at: np.ndarray        # [U, K] run index in each slot
    real: np.ndarray          # [U, K] bool, False for padding

    @classmethod
    def of(cls, specs: Sequence[RunSpec]) -> "Layout":
        by_key: dict[tuple, list[int]] = defaultdict(list)
        for i, s in enumerate(specs):
            by_key[s.group_key()].append(i)
        groups = list(by_key.values())
        # At least two slots per group: BLAS multiplies by a single column along another path
        # (GEMV) than by several (GEMM), with other rounding; from two columns on, each run's
        # products are bit-identical whatever its neighbours (tested), so a run alone and the
        # same run in a stack follow the same trajectory even where the loss is chaotic (MAE's
        # sign-gradient oscillation amplified one-ulp differences to 5e-3 before this).
        U, K = len(groups), max(2, max(len(g) for g in groups))
        run_at = np.array([g + [g[0]] * (K - len(g)) for g in groups])
        real = np.array([[k < len(g) for k in range(K)] for g in groups])
        return cls(groups, U, K, run_at, real)


def out_dim(spec: RunSpec, data: Prepared) -> int:
    head = loss_class(spec.loss).head_for(spec.task)
    fixed = {"value": 1, "logit": 1, "density": 2, "embedding": spec.model.get("embed_dim", 1)}
    return fixed.get(head) or (data.n_classes or 1)


def _per_run(specs, layout, fn, device, dtype) -> torch.Tensor:
    vals = np.array([[fn(specs[i]) for i in row] for row in layout.run_at], dtype=np.float64)
    return torch.tensor(vals, dtype=dtype, device=device)


def _loss_param(specs, layout, key: str, floats_ok: bool, device, dtype):
    """A loss parameter: one float when every run of the stack shares it (and the loss takes
    floats), else [U, K, 1]."""
    values = {specs[i].loss[key] for i in layout.run_at.ravel()}
    if floats_ok and len(values) == 1:
        return float(values.pop())
    return _per_run(specs, layout, lambda s: s.loss[key], device, dtype)[..., None]


def _batches(layout: Layout, specs, n: int, steps: int, batch_size: int | None) -> torch.Tensor | None:
    """Minibatch row indices [U, steps + 1, b] (the last one for the loss at the final
    parameters, so every point of a minibatch train/loss curve is a minibatch loss): shuffled
    epochs from each group's seed; None = full batch."""
    if batch_size is None or batch_size >= n:
        return None
    per_epoch = n // batch_size
    out = []
    for g in layout.groups:
        r = rng(specs[g[0]].seed, "batches")
        rows = [r.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
                for _ in range(-(-(steps + 1) // per_epoch))]
        out.append(np.concatenate(rows)[:steps + 1])
    return torch.from_numpy(np.stack(out))


def train(specs: Sequence[RunSpec], keep_params: bool = False, sync_check: bool = False) -> list[RunResult]:
    """Trains runs that share a stack key as one batched program; returns one result per spec,
    in order (with each run's final parameters when `keep_params`). `sync_check` (CUDA, tests)
    makes any host-device synchronization inside the training loop an error."""
    specs = list(specs)
    first = specs[0]
    assert all(s.stack_key() == first.stack_key() for s in specs), "train() needs runs of one stack"
    device = torch.device(resolve_device(first.device))
    if device.type == "cpu":
        # Converged runs drive gradients into subnormal floats, which x86 CPUs handle ~30x slower
        # (seen: 1 s -> 30 s for 180 runs). Flushing them to zero changes nothing measurable.
        torch.set_flush_denormal(True)
    dtype = DTYPES[first.train["dtype"]]
    steps, eval_every, log_every = first.train["steps"], first.train["eval_every"], first.train["log_every"]
    layout = Layout.of(specs)
    U, K = layout.U, layout.K

    datas = [load(specs[g[0]].dataset, specs[g[0]].seed, specs[g[0]].outlier_tuple()) for g in layout.groups]
    loss_cls = loss_class(first.loss)
    loss_fn = loss_cls(loss_cls.options_of(first.loss))
    head = loss_cls.head_for(first.task)
    family = FAMILIES.get(first.eval_family)
    data = _Data.of(datas, first.task, loss_cls, device, dtype)
    X, n = data.X, data.X.shape[1]

    lparams = {k: _loss_param(specs, layout, k, loss_cls.floats_ok, device, dtype) for k in loss_cls.stacked}
    model = MODELS.get(first.model["name"])(first.model, X.shape[-1], out_dim(first, datas[0]), head)
    seeds = np.vectorize(lambda i: specs[i].seed)(layout.run_at)
    params = model.init(seeds, device, dtype, datas)
    opt = OPTIMIZERS.get(first.optimizer["name"])(first.optimizer)
    lr = _per_run(specs, layout, lambda s: s.optimizer["lr"], device, dtype)
    l1 = _per_run(specs, layout, lambda s: s.regularization["weight"] * (s.regularization["kind"] == "l1"), device, dtype)
    l2 = _per_run(specs, layout, lambda s: s.regularization["weight"] * (s.regularization["kind"] == "l2"), device, dtype)
    batches = _batches(layout, specs, n, steps, first.train["batch_size"])
    if batches is not None:
        batches = batches.to(device)
    rows = [n if batches is None else batches.shape[-1]] * (steps + 1)
    draws = _Draws(layout, specs, head, rows, device, dtype)
    # param_error needs known weights and a model whose weights are those of a linear fit
    w_true = None
    if model.name == "linear" and first.task == "regression" and all(d.w_true is not None for d in datas):
        w_true = _stack([d.w_true for d in datas], device, dtype)[:, None, :]                  # [U, 1, d]
        w_unscale = _stack([d.y_scale / d.x_scale for d in datas], device, dtype)[:, None, :]  # [U, 1, d]
    squeeze = head in ("value", "logit")
    test_loss = first.eval_family != "embedding" and head != "density"

    Xt, Xt_test = X.transpose(1, 2).contiguous(), data.ev.X.transpose(1, 2).contiguous()

    def forward(p, Xb, Xbt=None):
        out = model.forward(p, Xb, Xbt)
        return out.squeeze(-1) if squeeze else out

    def penalty(p):
        a = sum(p[k].abs().flatten(2).sum(-1) for k in model.penalized)
        b = sum((p[k] * p[k]).flatten(2).sum(-1) for k in model.penalized)
        return l1 * a + l2 * b

    log_steps = [s for s in range(steps + 1) if s % log_every == 0 or s == steps]
    eval_steps = [s for s in range(steps + 1) if s % eval_every == 0 or s == steps]
    log_pos = {s: i for i, s in enumerate(log_steps)}
    eval_pos = {s: i for i, s in enumerate(eval_steps)}
    zeros = lambda m: torch.full((m, U, K), float("nan"), device=device, dtype=dtype)
    curves = {"train/loss": zeros(len(log_steps))}
    evals: dict[str, torch.Tensor] = {}
    alive = torch.ones(U, K, dtype=torch.bool, device=device)
    died = torch.full((U, K), steps + 1, dtype=torch.long, device=device)
    threshold = None
    names = list(params)
    out_te = None

    t0 = time.perf_counter()
    if sync_check and device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    for s in range(steps + 1):
        Xb, batch = data.batch(None if batches is None else batches[:, s], draws.at(s))
        out = forward(params, Xb, Xt if batches is None else None)
        loss = loss_fn(out, batch, lparams)
        obj = loss + penalty(params)
        total = torch.where(alive, obj, torch.zeros_like(obj)).sum()
        grads = dict(zip(names, torch.autograd.grad(total, [params[k] for k in names])))
        with torch.no_grad():
            gnorm = torch.sqrt(sum((g * g).flatten(2).sum(-1) for g in grads.values()))
            if threshold is None:
                threshold = first.train["divergence_factor"] * torch.clamp(loss.abs(), min=1.0)
            ok = torch.isfinite(obj) & torch.isfinite(gnorm) & (loss <= threshold)
            died = torch.where(alive & ~ok, torch.full_like(died, s), died)
            alive = alive & ok
            if s in log_pos:
                curves["train/loss"][log_pos[s]] = loss
            if s in eval_pos:
                out_te = forward(params, data.ev.X, Xt_test)
                vals = {"train/objective": obj, "train/grad_norm": gnorm, **family.curve(out_te, data.ev)}
                if test_loss:
                    vals["test/loss"] = loss_fn(out_te, data.test_batch, lparams)
                if w_true is not None:
                    vals["param_error"] = (params["W"][..., 0] * w_unscale - w_true).norm(dim=-1)
                for k, v in vals.items():
                    evals.setdefault(k, zeros(len(eval_steps)))[eval_pos[s]] = v
        if s < steps:
            opt.step(params, grads, lr, alive, s + 1)
    if sync_check and device.type == "cuda":
        torch.cuda.set_sync_debug_mode("default")
    with torch.no_grad():
        if first.eval_family in ("embedding", "multiclass"):
            # retrieval metrics: of the embedding itself, or (the cross-entropy baseline) of the
            # representation before an MLP's output layer
            emb = (lambda Z: forward(params, Z)) if first.eval_family == "embedding" else (lambda Z: model.features(params, Z))
            feats = emb(data.ev.X)
            if feats is not None:
                data.ev.extra.update(features=feats, train_features=emb(X), train_labels=data.y)
        finals = family.final(feats if first.eval_family == "embedding" else out_te, data.ev)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    results = _results(specs, layout, datas, curves, evals, finals, log_steps, eval_steps, died, steps, seconds,
                       str(device))
    if keep_params:
        host = {k: v.detach().cpu().numpy() for k, v in params.items()}
        for u, g in enumerate(layout.groups):
            for k, i in enumerate(g):
                results[i].params = {name: a[u, k] for name, a in host.items()}
    return results


def _stack(arrays, device, dtype) -> torch.Tensor:
    return torch.as_tensor(np.stack(arrays), device=device, dtype=dtype)


@dataclass
class _Data:
    """A stack's data on the device, one slice per group: X [U, n, d], training targets
    y [U, 1, n(, C)], the test split as metrics.EvalData, and per-group constants."""

    X: torch.Tensor
    y: torch.Tensor
    ev: M.EvalData
    test_batch: Batch
    const: dict[str, Any]

    @classmethod
    def of(cls, datas: list[Prepared], task: str, loss_cls, device, dtype) -> "_Data":
        st = lambda a, dt=dtype: _stack(a, device, dt)
        X, Xte = st([d.X_train for d in datas]), st([d.X_test for d in datas])
        label = torch.long if task == "multiclass" else dtype
        y, yte = st([d.y_train for d in datas], label), st([d.y_test for d in datas], label)
        y_test_loss = yte
        const: dict[str, Any] = {}
        if task == "density":                       # samples [n, 1] -> [n]
            y, yte = y.reshape(len(datas), -1), yte.reshape(len(datas), -1)
            y_test_loss = yte
            mix = [d.extra["mixture"] for d in datas]
            const["mixture"] = tuple(st([np.asarray(m[k], dtype=float) for m in mix])[:, None, None, :]
                                     for k in ("weights", "means", "sds"))
        if task == "distribution" and not loss_cls.soft_targets:  # train on labels drawn from the soft targets
            y = st([d.extra["y_hard"] for d in datas], torch.long)
            y_test_loss = st([d.extra_test["y_hard"] for d in datas], torch.long)
        ev = M.EvalData(Xte, yte[:, None], st([[[d.y_center]] for d in datas]), st([[[d.y_scale]] for d in datas]),
                        dict(const))
        return cls(X, y[:, None], ev, Batch(y_test_loss[:, None], dict(const)), const)

    def batch(self, idx: torch.Tensor | None, draws: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Batch]:
        """The full training split (idx None) or the rows idx [U, b] of each group."""
        if idx is None:
            return self.X, Batch(self.y, {**self.const, **draws})
        ar = torch.arange(self.X.shape[0], device=self.X.device)[:, None]
        return self.X[ar, idx], Batch(self.y[:, 0][ar, idx][:, None], {**self.const, **draws})


class _Draws:
    """Random numbers a loss needs at each step, drawn per data group from the group's seed (so a
    run draws the same alone or in any stack): uniforms for triplet mining, normals for reverse-KL
    samples. All steps are drawn up front and moved to the device once: no host-to-device copy
    (a synchronization on CUDA) inside the training loop."""

    def __init__(self, layout: Layout, specs, head: str, rows: list[int], device, dtype):
        self.kind = {"embedding": "u", "density": "eps"}.get(head)
        self.steps: list[torch.Tensor] = []
        if self.kind is None:
            return
        gens = [rng(specs[g[0]].seed, "extra") for g in layout.groups]
        shape = (lambda r: (r, 2)) if self.kind == "u" else (lambda r: (r,))
        draw = (lambda g, r: g.random(shape(r))) if self.kind == "u" else (lambda g, r: g.standard_normal(shape(r)))
        per_step = [np.stack([draw(g, r) for g in gens])[:, None] for r in rows]   # [U, 1, rows(, 2)] each
        by_rows: dict[int, list[np.ndarray]] = defaultdict(list)
        for r, a in zip(rows, per_step):
            by_rows[r].append(a)
        moved = {r: iter(torch.as_tensor(np.stack(a), device=device, dtype=dtype).unbind(0)) for r, a in by_rows.items()}
        self.steps = [next(moved[r]) for r in rows]

    def at(self, step: int) -> dict[str, torch.Tensor]:
        return {self.kind: self.steps[step]} if self.kind else {}


def _results(specs, layout, datas, curves, evals, finals, log_steps, eval_steps, died, steps, seconds, device):
    died = died.cpu().numpy()
    host = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in {**curves, **evals}.items()}
    ls, es = np.array(log_steps), np.array(eval_steps)
    results: list[RunResult | None] = [None] * len(specs)
    per_run = seconds / len(specs)
    for u, g in enumerate(layout.groups):
        for k, i in enumerate(g):
            d = int(died[u, k])
            diverged = d <= steps
            run_curves, final = {}, {}
            for name, arr in host.items():
                st = ls if name in curves else es
                v = arr[:, u, k]
                # a diverged run has no value after it stopped: NaN there (and for any inf), so
                # its curves keep the sweep's length and say where the run ended
                run_curves[name] = (st, np.where(np.isfinite(v) & (st <= d), v, np.nan))
                final[name] = float("nan") if diverged else float(v[-1])
            for name, arr in finals.items():
                final[name] = float("nan") if diverged else float(arr[u, k])
            results[i] = RunResult(specs[i], "diverged" if diverged else "converged", d if diverged else None,
                                   run_curves, final, per_run, device, datas[u])
    return results  # type: ignore[return-value]
