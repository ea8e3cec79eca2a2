"""How a stack's runs sit on the device: the [U, K] layout of data groups and slots, the
per-run numbers as [U, K] tensors, and the per-group data (training split, test split, the
minibatch order and the random numbers a loss draws), all built before the training loop so
that nothing inside it copies from the host.

    Layout       run index per (group u, slot k); groups share training data, seed and minibatch order
    per_run      a number of each run (its lr, a penalty weight) as a [U, K] tensor
    loss_param   a loss parameter: one float when the whole stack shares it, else [U, K, 1]
    batches      minibatch row indices [U, steps + 1, b] (None: full batch)
    DeviceData   X [U, n, d], training targets [U, 1, n(, C)], the test split, per-group constants
    Draws        the loss's per-step random numbers (harness/heads.py: Head.draw)
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from harness import metrics as M
from harness.data.base import rng
from harness.losses import Batch
from harness.spec import RunSpec


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
        # A stack of one run gets a second slot: a per-run reduction (a loss's mean over
        # examples) with a single output is summed along another path by torch (the whole
        # tensor at once), with other rounding; with two outputs or more, each row is reduced
        # alone and a run's numbers do not depend on its neighbours (tests/test_reproducibility.py).
        U, K = len(groups), max(len(g) for g in groups)
        K = max(K, 2) if U == 1 else K
        run_at = np.array([g + [g[0]] * (K - len(g)) for g in groups])
        real = np.array([[k < len(g) for k in range(K)] for g in groups])
        return cls(groups, U, K, run_at, real)

    def firsts(self, specs: Sequence[RunSpec]) -> list[RunSpec]:
        """Each group's first spec (what the group shares: data, seed)."""
        return [specs[g[0]] for g in self.groups]


def per_run(specs, layout: Layout, fn: Callable[[RunSpec], float], device, dtype) -> torch.Tensor:
    vals = np.array([[fn(specs[i]) for i in row] for row in layout.run_at], dtype=np.float64)
    return torch.tensor(vals, dtype=dtype, device=device)


def loss_param(specs, layout: Layout, key: str, floats_ok: bool, device, dtype):
    """A loss parameter: one float when every run of the stack shares it (and the loss takes
    floats), else [U, K, 1]."""
    values = {specs[i].loss[key] for i in layout.run_at.ravel()}
    if floats_ok and len(values) == 1:
        return float(values.pop())
    return per_run(specs, layout, lambda s: s.loss[key], device, dtype)[..., None]


def batches(layout: Layout, specs, n: int, steps: int, batch_size: int | None) -> torch.Tensor | None:
    """Minibatch row indices [U, steps + 1, b] (the last one for the loss at the final
    parameters, so every point of a minibatch train/loss curve is a minibatch loss): shuffled
    epochs from each group's seed; None = full batch."""
    if batch_size is None or batch_size >= n:
        return None
    per_epoch = n // batch_size
    out = []
    for s in layout.firsts(specs):
        r = rng(s.seed, "batches")
        rows = [r.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
                for _ in range(-(-(steps + 1) // per_epoch))]
        out.append(np.concatenate(rows)[:steps + 1])
    return torch.from_numpy(np.stack(out))


@dataclass
class DeviceData:
    """A stack's data on the device, one slice per group: X [U, n, d], training targets
    y [U, 1, n(, C)], the test split as metrics.EvalData, and per-group constants."""

    X: torch.Tensor
    y: torch.Tensor
    ev: M.EvalData
    test_batch: Batch
    const: dict[str, Any]
    train_ev: M.EvalData          # the training split for the metrics (train.eval_train)

    @classmethod
    def of(cls, datas: list, task, loss_cls, device, dtype) -> "DeviceData":
        """`task` (harness/tasks/) puts its targets on the device."""
        def stack(arrays, integer: bool = False) -> torch.Tensor:
            return torch.as_tensor(np.stack(arrays), device=device, dtype=torch.long if integer else dtype)

        X, Xte = stack([d.X_train for d in datas]), stack([d.X_test for d in datas])
        t = task.targets(datas, loss_cls, stack)
        center, scale = stack([[[d.y_center]] for d in datas]), stack([[[d.y_scale]] for d in datas])
        ev = M.EvalData(Xte, t.test[:, None], center, scale, dict(t.const))
        train_ev = M.EvalData(X, (t.train if t.train_eval is None else t.train_eval)[:, None], center, scale, dict(t.const))
        return cls(X, t.train[:, None], ev, Batch(t.test_loss[:, None], dict(t.const)), t.const, train_ev)

    def batch(self, idx: torch.Tensor | None, draws: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Batch]:
        """The full training split (idx None) or the rows idx [U, b] of each group."""
        if idx is None:
            return self.X, Batch(self.y, {**self.const, **draws})
        ar = torch.arange(self.X.shape[0], device=self.X.device)[:, None]
        return self.X[ar, idx], Batch(self.y[:, 0][ar, idx][:, None], {**self.const, **draws})


class Draws:
    """Random numbers a loss needs at each step (the head's `draw`), drawn per data group from
    the group's seed (so a run draws the same alone or in any stack): uniforms for triplet
    mining, normals for reverse-KL samples. All steps are drawn up front and moved to the device
    once: no host-to-device copy (a synchronization on CUDA) inside the training loop."""

    def __init__(self, layout: Layout, specs, head, rows: list[int], device, dtype):
        self.draw = head.draw
        self.steps: list[torch.Tensor] = []
        if self.draw is None:
            return
        gens = [rng(s.seed, "extra") for s in layout.firsts(specs)]
        per_step = [np.stack([self.draw.sample(g, r) for g in gens])[:, None] for r in rows]   # [U, 1, rows(, 2)] each
        by_rows: dict[int, list[np.ndarray]] = defaultdict(list)
        for r, a in zip(rows, per_step):
            by_rows[r].append(a)
        moved = {r: iter(torch.as_tensor(np.stack(a), device=device, dtype=dtype).unbind(0)) for r, a in by_rows.items()}
        self.steps = [next(moved[r]) for r in rows]

    def at(self, step: int) -> dict[str, torch.Tensor]:
        return {self.draw.key: self.steps[step]} if self.draw else {}
