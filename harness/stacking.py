"""Grouping a sweep's runs into stacks that fit a memory budget.

Runs with the same `stack_key` can share one batched program (engine.py). A stack's memory is
estimated from its data groups (each holds its own train and test arrays) and its runs (each
holds parameters, gradients, optimizer state and the activations of one forward/backward
pass); a stack over the budget is split, along data-group boundaries where possible, into
stacks under it. Splitting changes no number: a run computes the same alone or in any stack.
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Sequence

from harness.spec import RunSpec

DEFAULT_CPU_BUDGET_MB = 2048


def default_budget_mb(device: str) -> int:
    """CPU: a quarter of physical memory, at most 2 GiB; CUDA: half the free device memory."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return max(256, int(free / 2**20 / 2))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        return int(min(DEFAULT_CPU_BUDGET_MB, total / 4))
    except (ValueError, OSError, AttributeError):
        return DEFAULT_CPU_BUDGET_MB


def estimate(spec: RunSpec) -> tuple[int, int]:
    """(bytes per data group, bytes per run) for runs like `spec`."""
    from harness.data import load
    from harness.engine import out_dim
    from harness.models import MODELS

    data = load(spec.dataset, spec.seed, spec.outlier_tuple())
    width = 8 if spec.train["dtype"] == "float64" else 4
    n_tr, d = data.X_train.shape
    n_te = len(data.X_test)
    y_width = 1 if data.y_train.ndim == 1 else data.y_train.shape[1]
    group = (n_tr + n_te) * (d + y_width) * width
    from harness.losses import loss_class

    model = MODELS.get(spec.model["name"])(spec.model, d, out_dim(spec, data), loss_class(spec.loss).head_for(spec.task))
    n_params = sum(_prod(s) for s in model.shapes().values())
    b = spec.train["batch_size"] or n_tr
    rows = max(b, n_te)  # evaluation runs the test split through too
    per_run = (6 * n_params + 3 * model.n_activations(rows)) * width
    if spec.eval_family == "embedding":
        per_run += 4 * rows * rows * width  # pairwise distances for mining / retrieval
    return group, per_run


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def plan(specs: Sequence[RunSpec], budget_mb: float | None = None) -> list[list[int]]:
    """Indices of `specs`, grouped into stacks: one list per stack, each under the budget."""
    by_stack: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(specs):
        by_stack[s.stack_key()].append(i)
    stacks: list[list[int]] = []
    for idx in by_stack.values():
        first = specs[idx[0]]
        budget = (budget_mb or default_budget_mb(_device(first))) * 2**20
        per_group, per_run = estimate(first)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in idx:
            groups[specs[i].group_key()].append(i)
        current: list[int] = []
        cost = 0
        for members in groups.values():
            for j in range(0, len(members), max(1, int((budget - per_group) // per_run))):
                part = members[j:j + max(1, int((budget - per_group) // per_run))]
                extra = per_group + per_run * len(part)
                if current and cost + extra > budget:
                    stacks.append(current)
                    current, cost = [], 0
                current.extend(part)
                cost += extra
        if current:
            stacks.append(current)
    return stacks


def _device(spec: RunSpec) -> str:
    from harness.spec import resolve_device

    return resolve_device(spec.device)
