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
    """(bytes per data group, bytes per run) for runs like `spec`, from its fields alone (no
    data is loaded, no model built)."""
    from harness.heads import HEADS
    from harness.models import MODELS
    from harness.tasks import TASKS

    width = 8 if spec.train["dtype"] == "float64" else 4
    n_tr, n_te, d = spec.rows, spec.test_rows, spec.n_features
    group = (n_tr + n_te) * (d + TASKS.get(spec.task).target_width(spec.n_classes)) * width
    b = spec.train["batch_size"] or n_tr
    rows = max(b, n_te)  # evaluation runs the test split through too
    n_params, n_act = MODELS.get(spec.model["name"]).size(spec.model, d, spec.out_dim, rows)
    per_run = (6 * n_params + 3 * n_act) * width
    if HEADS.get(spec.head).pairwise:
        per_run += 4 * rows * rows * width  # pairwise distances for mining / retrieval
    return group, per_run


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
