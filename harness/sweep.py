"""A sweep's context, and the one loop that trains stacks and records them.

    SweepContext   the sweep id, its MLflow parent run (None for a run outside a sweep), the
                   tracker that writes there, and the validated specs of its jobs (by their
                   overrides), handed by the sweeper to the launcher that runs them
    run_stacks     plan specs into stacks, train each, write each as soon as it has trained;
                   used by a single run (a stack of one), by the batched launcher, and by
                   anything else that runs stacks for a sweep

A job that Hydra runs through lossbench's task function (the basic launcher in this process;
joblib or submitit in other processes) learns its sweep from two environment variables that
the sweeper sets around the launch (`SweepContext.exported`, `SweepContext.for_job`).
"""
from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

PARENT_ENV, SWEEP_ENV = "LOSSBENCH_PARENT_RUN_ID", "LOSSBENCH_SWEEP_ID"


def new_sweep_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


_trackers: dict[tuple[str, str], Any] = {}


def tracker_for(spec):
    """One Tracker per (uri, experiment) per process (jobs of an in-process launcher share it)."""
    from harness.tracking import Tracker

    key = (spec.tracking["uri"], spec.tracking["experiment"])
    if key not in _trackers:
        _trackers[key] = Tracker(*key)
    return _trackers[key]


@dataclass
class SweepContext:
    sweep_id: str
    parent: str | None
    tracker: Any
    specs: dict[tuple[str, ...], Any] = field(default_factory=dict)

    @classmethod
    def for_job(cls, spec) -> "SweepContext":
        """The context of a job launched through the task function: its sweep's, from the
        environment, or a sweep of its own (no parent) for a single run."""
        return cls(os.environ.get(SWEEP_ENV) or new_sweep_id(), os.environ.get(PARENT_ENV) or None, tracker_for(spec))

    @contextmanager
    def exported(self):
        """PARENT_ENV and SWEEP_ENV set for the jobs launched inside (and removed after)."""
        os.environ[PARENT_ENV], os.environ[SWEEP_ENV] = self.parent or "", self.sweep_id
        try:
            yield self
        finally:
            os.environ.pop(PARENT_ENV, None), os.environ.pop(SWEEP_ENV, None)


@dataclass
class Written:
    """What a recorded run leaves for the caller (not its curves: a sweep may hold 50,000 runs)."""

    final: dict[str, float]
    status: str
    run_id: str

    def value(self) -> dict[str, Any]:
        return {**self.final, "status": self.status, "run_id": self.run_id}


def run_stacks(specs: Sequence, ctx: SweepContext, stacks: list[list[int]] | None = None,
               on_stack: Callable[[list], None] | None = None,
               executor=None) -> tuple[dict[int, Written], BaseException | None]:
    """Trains `specs` as `stacks` (lists of indices; default stacking.plan's) and writes each
    stack as soon as it has trained. Returns {index of a spec: Written} for the runs recorded,
    and the error that stopped the loop (None when all ran): what was trained and written before
    it is kept. `on_stack(results)` is called after each stack (a progress bar).

    `executor` (harness/executors: the default trains here) may train stacks elsewhere; their
    results come back to be written here, this process being the sweep's one MLflow writer. A
    remote stack that failed (its worker lost past its retries, or its training raised) leaves
    its jobs out while the other stacks go on; the error returned is then a StacksFailed naming
    each such job's error."""
    from contextlib import closing

    from harness import interrupt, timing
    from harness.executors import LOCAL, StacksFailed
    from harness.stacking import plan

    if stacks is None:
        with timing.phase("plan"):
            stacks = plan(specs)
    written: dict[int, Written] = {}
    failed: dict[int, BaseException] = {}
    try:
        interrupt.check()
        # closing: a stop in here (a signal, a failed write) cancels the executor's outstanding work
        with closing((executor or LOCAL).map(specs, stacks)) as outcomes:
            for stack, results in outcomes:
                if isinstance(results, BaseException):
                    failed.update(dict.fromkeys(stack, results))
                    continue
                with timing.phase("track"):
                    ids = ctx.tracker.write(results, ctx.parent, ctx.sweep_id)
                written.update({i: Written(r.final, r.status, rid) for i, r, rid in zip(stack, results, ids)})
                if on_stack is not None:
                    on_stack(results)
                del results
                interrupt.check()   # between stacks: SIGTERM / SIGINT stop here, the stacks written stay
    except BaseException as e:  # noqa: BLE001 - the caller decides; nothing written is lost
        return written, e
    return written, (StacksFailed(failed) if failed else None)
