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
from pathlib import Path
from typing import Sequence

from harness.spec import RunSpec

DEFAULT_CPU_BUDGET_MB = 2048
# On a CPU a stack far larger than the last-level cache streams every step's temporaries (the
# [groups, rows, slots] predictions, residuals, gradients) from memory, and each one over glibc's
# 32 MB mmap threshold is page-faulted afresh (the system time grows 5x): measured with 30-step
# stacks of MSE runs, one 18,000-run stack took 1.7 s a step, 19x a 1,800-run stack's 0.09 s. A
# budget of a couple of caches keeps each temporary under that threshold and the rate flat.
CACHE_FACTOR = 2
FALLBACK_CACHE_MB = 32


def default_budget_mb(device: str) -> int:
    """CPU: the least of a quarter of physical memory, 2 GiB and CACHE_FACTOR x the last-level
    cache; CUDA: half the free device memory."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return max(256, int(free / 2**20 / 2))
    cap = max(64, CACHE_FACTOR * last_level_cache_mb())
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        return int(min(DEFAULT_CPU_BUDGET_MB, total / 4, cap))
    except (ValueError, OSError, AttributeError):
        return int(min(DEFAULT_CPU_BUDGET_MB, cap))


def last_level_cache_mb() -> float:
    """The largest CPU cache of cpu0 (Linux sysfs), in MiB; FALLBACK_CACHE_MB where unknown."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}.get(text[-1:].upper())
        if unit is not None and text[:-1].isdigit():
            sizes.append(int(text[:-1]) * unit)
    return max(sizes) if sizes else FALLBACK_CACHE_MB


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
