"""The engine: `train(specs) -> [RunResult]` trains a stack of runs as one batched program.

A stack is laid out as U data groups x K runs per group (layout.py: groups share training data,
seed and minibatch order; a group with fewer than K runs is padded with copies whose results
are dropped). Every parameter carries the [U, K] axes; per-run numbers (learning rate,
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
it) and NaN final metrics, and its neighbours go on. With train.prune=halving the worst runs of
each data group also stop at a few rungs (harness/prune.py): recorded as pruned, with their
curves up to the rung and their final metrics there, and the stack compacted to the runs that
go on. Every run records train/steps_run, the optimizer steps it took (its share of the
run-steps a sweep cost). Curves are kept on the device and copied
out once, at the end, so a GPU never waits on the host inside the loop. A single run is a stack
of one: same code path.

Nothing here asks a component its name: the spec carries the resolved head, metric family and
output size, the task puts its targets on the device, the model says what it offers.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from harness import extras, interrupt
from harness import prune as P
from harness import layout as L
from harness.data import Prepared, load
from harness.heads import HEADS
from harness.losses import loss_class
from harness.metrics import FAMILY_METRICS, Representation
from harness.metric_table import FAMILIES
from harness.models import MODELS, Rows
from harness.optim import OPTIMIZERS, schedule_factors
from harness.schema import CONVERGED, DIVERGED, PRUNED, STEPS_RUN
from harness.spec import RunSpec, resolve_device
from harness.tasks import TASKS

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RunResult:
    spec: RunSpec
    status: str                                   # schema.CONVERGED | schema.DIVERGED | schema.PRUNED
    diverged_step: int | None
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (steps, values)
    final: dict[str, float]
    seconds: float                                # this run's share of the stack's training time
    device: str
    data: Prepared | None = field(default=None, repr=False)
    params: dict[str, np.ndarray] | None = field(default=None, repr=False)  # final, when asked for
    artifacts: dict[str, str] = field(default_factory=dict, repr=False)     # text files the task records
    pruned_step: int | None = None                # the rung a pruned run stopped at


def train(specs: Sequence[RunSpec], keep_params: bool = False, sync_check: bool = False) -> list[RunResult]:
    """Trains runs that share a stack key as one batched program; returns one result per spec,
    in order (with each run's final parameters when `keep_params`). `sync_check` (CUDA, tests)
    makes any host-device synchronization inside the training loop an error."""
    st = _Stack(list(specs))
    t0 = time.perf_counter()
    with _no_sync(st.device, sync_check):
        for s in range(st.steps + 1):
            interrupt.check()   # SIGTERM / SIGINT during a sweep: drop this stack, keep the others
            loss, obj, grads, gnorm = st.step(s)
            st.evaluate(s, loss, obj, gnorm)
            if st.halving is not None and s in st.rung_steps:
                grads = st.halving.rung(st, s, loss, grads, keep_params)   # stops the race's losers, compacts
            if s < st.steps:
                st.opt.step(st.params, grads, st.lr_at(s), st.alive, s + 1)
    finals = st.finals()
    if st.device.type == "cuda":
        torch.cuda.synchronize()
    return st.collect(finals, time.perf_counter() - t0, keep_params)


def _val(name: str) -> str:
    """test/rmse -> val/rmse: the metric on the validation split."""
    return "val/" + name[len("test/"):] if name.startswith("test/") else name


@contextmanager
def _no_sync(device: torch.device, on: bool):
    if on and device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        if on and device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")


class _Stack:
    """One stack's state: setup here, then `step` / `evaluate` each step, `finals`, `collect`."""

    def __init__(self, specs: list[RunSpec]):
        self.specs, first = specs, specs[0]
        assert all(s.stack_key() == first.stack_key() for s in specs), "train() needs runs of one stack"
        self.device = device = torch.device(resolve_device(first.device))
        if device.type == "cpu":
            # Converged runs drive gradients into subnormal floats, which x86 CPUs handle ~30x slower
            # (seen: 1 s -> 30 s for 180 runs). Flushing them to zero changes nothing measurable.
            torch.set_flush_denormal(True)
        self.dtype = dtype = DTYPES[first.train["dtype"]]
        self.steps, t = first.train["steps"], first.train
        self.layout = lay = L.Layout.of(specs)
        self.datas = [load(s.dataset, s.seed, s.outlier_tuple()) for s in lay.firsts(specs)]
        self.task, self.head = TASKS.get(first.task), HEADS.get(first.head)
        self.family, self.metrics = FAMILIES[first.family], FAMILY_METRICS.get(first.family)
        loss_cls = loss_class(first.loss)
        self.loss_cls, self.loss_fn = loss_cls, loss_cls(loss_cls.options_of(first.loss))
        self.data = L.DeviceData.of(self.datas, self.task, loss_cls, device, dtype)
        self.lparams = {k: L.loss_param(specs, lay, k, loss_cls.floats_ok, device, dtype) for k in loss_cls.stacked}
        self.model = MODELS.get(first.model["name"])(first.model, first.n_features, first.out_dim, self.head.zero_start)
        self.params = self.model.init(np.vectorize(lambda i: specs[i].seed)(lay.run_at), device, dtype, self.datas)
        self.opt = OPTIMIZERS.get(first.optimizer["name"])(first.optimizer)
        edges = {u: d.lr_edge for u, d in enumerate(self.datas)}     # lr_unit=edge: lr in units of lr*
        unit = lambda u, s: edges[u] if s.optimizer["lr_unit"] == "edge" else 1.0
        self.lr = torch.tensor([[specs[i].optimizer["lr"] * unit(u, specs[i]) for i in row] for u, row in enumerate(lay.run_at)],
                               dtype=dtype, device=device)
        factors = schedule_factors(np.array([[specs[i].optimizer for i in row] for row in lay.run_at], dtype=object),
                                   self.steps)
        self.lr_factors = None if factors is None else torch.as_tensor(factors, device=device, dtype=dtype)
        reg = lambda kind: (lambda s: s.regularization["weight"] * (s.regularization["kind"] == kind))
        self.l1, self.l2 = (L.per_run(specs, lay, reg(k), device, dtype) for k in ("l1", "l2"))
        n = self.data.X.shape[1]
        self.batches = L.batches(lay, specs, n, self.steps, t["batch_size"])
        if self.batches is not None:
            self.batches = self.batches.to(device)
        self.draws = L.Draws(lay, specs, self.head, [n if self.batches is None else self.batches.shape[-1]] * (self.steps + 1),
                             device, dtype)
        # param_error: known true weights and a model whose weights are those of a linear fit
        self.w_true = None
        if self.model.linear_weights(self.params) is not None and all(d.w_true is not None for d in self.datas):
            self.w_true = self._stack([d.w_true for d in self.datas])[:, None, :]                     # [U, 1, d]
            self.w_unscale = self._stack([d.y_scale / d.x_scale for d in self.datas])[:, None, :]   # [U, 1, d]
        self.rows, self.rows_test = Rows.of(self.data.X), Rows.of(self.data.ev.X)   # made once (models.Rows)
        self.layout0, self.home = lay, None      # the layout as built, and each slot's place in the record
        self.halving = P.Halving.of(self)
        self.rung_steps = set(self.halving.rungs) if self.halving is not None else set()
        # a pruned run's curves end at its rung: rungs are logging and evaluation steps
        due = lambda s, every: s % every == 0 or s == self.steps or s in self.rung_steps
        self.log_steps = [s for s in range(self.steps + 1) if due(s, t["log_every"])]
        self.eval_steps = [s for s in range(self.steps + 1) if due(s, t["eval_every"])]
        self.log_pos = {s: i for i, s in enumerate(self.log_steps)}
        self.eval_pos = {s: i for i, s in enumerate(self.eval_steps)}
        self.curves = {"train/loss": self._nan(len(self.log_steps))}
        self.evals: dict[str, torch.Tensor] = {}
        self.alive = torch.ones(lay.U, lay.K, dtype=torch.bool, device=device)
        self.died = torch.full((lay.U, lay.K), self.steps + 1, dtype=torch.long, device=device)
        self.threshold = self.out_te = None
        self.names = list(self.params)
        # Pruning compacts the run axis (prune.py): the record (curves, stop steps) keeps the
        # layout's K slots plus a spare one for filler slots, and each slot writes at `home`.
        self.real_now = lay.real.copy()
        self.died_rec = self.died.clone() if self.halving is None else \
            torch.full((lay.U, lay.K + 1), self.steps + 1, dtype=torch.long, device=device)
        self.last: dict[str, torch.Tensor] = {}

    def lr_at(self, s: int) -> torch.Tensor:
        """Every run's learning rate at step s, [U, K] (harness/optim.py: schedules)."""
        return self.lr if self.lr_factors is None else self.lr * self.lr_factors[s]

    def _stack(self, arrays) -> torch.Tensor:
        return torch.as_tensor(np.stack(arrays), device=self.device, dtype=self.dtype)

    def _nan(self, m: int) -> torch.Tensor:
        K = self.layout0.K + (self.halving is not None)
        return torch.full((m, self.layout0.U, K), float("nan"), device=self.device, dtype=self.dtype)

    def _put(self, rec: torch.Tensor, v: torch.Tensor) -> None:
        """Writes [U, K'] values of the slots into the record [U, K (+1)] at their homes."""
        if self.home is None:
            rec[:, :self.layout.K] = v
        else:
            rec[self.home_u, self.home] = v

    def home_np(self) -> np.ndarray:
        """Each slot's place in the record, [U, K'] (host)."""
        if self.home is None:
            return np.broadcast_to(np.arange(self.layout.K), (self.layout.U, self.layout.K)).copy()
        return self.home.cpu().numpy()

    def set_home(self, home: np.ndarray) -> None:
        self.home = torch.as_tensor(home, device=self.device)
        self.home_u = torch.arange(home.shape[0], device=self.device)[:, None]

    def flush_died(self) -> None:
        self._put(self.died_rec, self.died)

    def forward(self, Xb: torch.Tensor, rows: Rows | None = None) -> torch.Tensor:
        out = self.model.forward(self.params, Xb, rows)
        return out.squeeze(-1) if self.head.squeeze else out

    def penalty(self) -> torch.Tensor:
        p = self.params
        a = sum(p[k].abs().flatten(2).sum(-1) for k in self.model.penalized)
        b = sum((p[k] * p[k]).flatten(2).sum(-1) for k in self.model.penalized)
        return self.l1 * a + self.l2 * b

    def step(self, s: int):
        """Loss, objective, gradients and gradient norm of every run at step s."""
        full = self.batches is None
        Xb, batch = self.data.batch(None if full else self.batches[:, s], self.draws.at(s))
        out = self.forward(Xb, self.rows if full else None)
        loss = self.loss_fn(out, batch, self.lparams)
        obj = loss + self.penalty()
        total = torch.where(self.alive, obj, torch.zeros_like(obj)).sum()
        grads = dict(zip(self.names, torch.autograd.grad(total, [self.params[k] for k in self.names])))
        with torch.no_grad():
            gnorm = torch.sqrt(sum((g * g).flatten(2).sum(-1) for g in grads.values()))
        return loss, obj, grads, gnorm

    def evaluate(self, s: int, loss, obj, gnorm) -> None:
        """Stops the runs that diverged at step s; records the curves due at s."""
        with torch.no_grad():
            if self.threshold is None:
                self.threshold = self.specs[0].train["divergence_factor"] * torch.clamp(loss.abs(), min=1.0)
            ok = torch.isfinite(obj) & torch.isfinite(gnorm) & (loss <= self.threshold)
            self.died = torch.where(self.alive & ~ok, torch.full_like(self.died, s), self.died)
            self.alive = self.alive & ok
            if s in self.log_pos:
                self._put(self.curves["train/loss"][self.log_pos[s]], loss)
            if s not in self.eval_pos:
                return
            ev = self.data.ev
            self.out_te = out = self.forward(ev.X, self.rows_test)
            vals = {"train/objective": obj, "train/grad_norm": gnorm, **self.metrics.curve(out, ev)}
            if self.head.test_loss:
                vals["test/loss"] = self.loss_fn(out, self.data.test_batch, self.lparams)
            if self.w_true is not None:
                vals["param_error"] = (self.model.linear_weights(self.params) * self.w_unscale - self.w_true).norm(dim=-1)
            if self.specs[0].train["eval_train"]:
                tr = self.metrics.curve(self.forward(self.data.X, self.rows), self.data.train_ev)
                vals.update({"train/" + k.split("/", 1)[1]: v for k, v in tr.items() if k.startswith("test/")})
            for k, v in vals.items():
                self._put(self.evals.setdefault(k, self._nan(len(self.eval_steps)))[self.eval_pos[s]], v)
            self.last = vals

    def finals(self) -> dict[str, np.ndarray]:
        """The family's final-only metrics at the last step, [U, K] each; retrieval metrics score
        the representation: the output of an embedding head, else the model's hidden features."""
        ev = self.data.ev
        with torch.no_grad():
            if self.family.scores_representation:
                rep = (lambda Z: self.forward(Z)) if self.head.represents else (lambda Z: self.model.features(self.params, Z))
                feats = rep(ev.X)
                if feats is not None:
                    ev.rep = Representation(feats, rep(self.data.X), self.data.y)
            out = self.metrics.final(self.out_te, ev)
        return {**out, **extras.final(self)}

    def held_out(self) -> dict[str, np.ndarray]:
        """An adaptive search's trials (phase=search) are judged on their validation split and
        report the test split beside it at the last step (test/..., [U, K] each), as a grid's
        runs do: never told to the search, there to compare its best with a grid's."""
        if self.specs[0].phase != "search" or any(d.X_hold is None for d in self.datas):
            return {}
        from dataclasses import replace

        held = [replace(d, X_test=d.X_hold, y_test=d.y_hold, extra_test=d.extra_hold) for d in self.datas]
        data = L.DeviceData.of(held, self.task, self.loss_cls, self.device, self.dtype)
        with torch.no_grad():
            out = self.forward(data.ev.X)
            vals = dict(self.metrics.curve(out, data.ev))
            if self.head.test_loss:
                vals["test/loss"] = self.loss_fn(out, data.test_batch, self.lparams)
            if not self.family.scores_representation:
                vals.update(self.metrics.final(out, data.ev))
        host = lambda v: (v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)).astype(np.float64)
        return {k: host(v) for k, v in vals.items() if k.startswith("test/")}

    def collect(self, finals: dict[str, np.ndarray], seconds: float, keep_params: bool) -> list[RunResult]:
        """One RunResult per spec, in order: curves (NaN after a run diverged, cut at the rung a
        pruned run stopped at), final values (NaN for a diverged run, a pruned run's at its rung)."""
        facts = extras.facts(self)            # data facts, per data group: recorded for diverged runs too
        self.flush_died()
        died = self.died_rec.cpu().numpy()
        home = self.home_np()
        lay, U = self.layout0, self.layout0.U
        K = lay.K + (self.halving is not None)
        ar = np.arange(U)[:, None]

        def full(a: np.ndarray) -> np.ndarray:   # [U, K', ...] of the slots -> [U, K, ...] of the record
            out = np.full((U, K) + a.shape[2:], np.nan, dtype=np.float64 if a.dtype.kind == "f" else a.dtype)
            out[ar, home] = a
            return out

        host = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in {**self.curves, **self.evals}.items()}
        finals = {k: full(np.asarray(v, dtype=np.float64)) for k, v in finals.items()}
        h = self.halving
        stopped = h.stopped_at if h is not None else {}
        at_stop = h.finals_at_stop if h is not None else {}
        if self.datas[0].evaluated_on == "val":   # judged on a validation split (dataset.val_size): say so
            host = {_val(k): v for k, v in host.items()}
            finals = {_val(k): v for k, v in finals.items()}
            finals.update({k: full(v) for k, v in self.held_out().items()})
            at_stop = {_val(k): v for k, v in at_stop.items()}
        ls, es = np.array(self.log_steps), np.array(self.eval_steps)
        out: list[Any] = [None] * len(self.specs)
        params = {k: full(v.detach().cpu().numpy()) for k, v in self.params.items()} if keep_params else None
        for u, g in enumerate(lay.groups):
            artifacts = self.task.artifacts(self.datas[u])
            for k, i in enumerate(g):
                d = int(died[u, k])
                pruned = (u, k) in stopped
                diverged = d <= self.steps and not pruned
                curves, final = {}, {}
                for name, arr in host.items():
                    st = ls if name == "train/loss" else es
                    v = arr[:, u, k]
                    if pruned:        # a pruned run's curves end where it stopped
                        curves[name] = (st[st <= d], v[st <= d])
                        final[name] = float(v[st <= d][-1])
                        continue
                    # a diverged run has no value after it stopped: NaN there (and for any inf), so
                    # its curves keep the sweep's length and say where the run ended
                    curves[name] = (st, np.where(np.isfinite(v) & (st <= d), v, np.nan))
                    final[name] = float("nan") if diverged else float(v[-1])
                for name, arr in finals.items():
                    if pruned:   # its values at the rung; the held-out test split (a search's trials),
                        # evaluated at the last step only, it never reached: NaN
                        final[name] = float(at_stop[name][u, k]) if name in at_stop else float("nan")
                    else:
                        final[name] = float("nan") if diverged else float(arr[u, k])
                final.update({name: float(arr[u, 0]) for name, arr in facts.items()})
                final[STEPS_RUN] = float(min(d, self.steps))
                p = None
                if params is not None:
                    p = h.params_at_stop[(u, k)] if pruned and (u, k) in h.params_at_stop else {n: a[u, k] for n, a in params.items()}
                out[i] = RunResult(self.specs[i], PRUNED if pruned else DIVERGED if diverged else CONVERGED,
                                   d if diverged else None, curves, final, seconds / len(self.specs), str(self.device),
                                   self.datas[u], p, artifacts, d if pruned else None)
        return out
