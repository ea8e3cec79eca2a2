"""The loop of a remote executor (Ray, submitit): stacks out, results back, lost workers retried.

A subclass says how to `submit` one stack (a handle back), which handles are `ready` (waiting
at most a moment), how to `fetch` a ready one's (results, worker seconds) — raising `Lost` when
the worker died without an answer, anything else for an error of training itself — and how
to `cancel` handles. `map` then keeps at most `in_flight` stacks out, yields each stack's
results as they come (the caller writes them before asking for more, so memory holds at most
`in_flight` stacks' results), sends a lost stack again up to `max_retries` times, and cancels
whatever is still out when it stops early (SIGTERM/SIGINT, an error while writing).

Timing (harness/timing.py, for python -m harness.bench): `train` is the driver's time waiting
for results; `worker` the workers' own seconds (data loading and training); `ship` the
submit-to-result time less the worker's (pickling, scheduling, transfer, process start for
submitit; with more stacks in flight than workers it includes time queued for a worker).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Iterator, Sequence

from harness.executors import StackLost, kill_hook

log = logging.getLogger(__name__)


class Lost(Exception):
    """The worker of a stack ended without an answer (killed, lost node, preempted)."""


class Remote:
    name = "remote"
    poll_s = 0.1   # how often a waiting driver looks at signals

    def __init__(self, max_retries: int):
        self.max_retries = max_retries

    # -- what a subclass provides ------------------------------------------------------
    def workers(self) -> int:
        raise NotImplementedError

    def in_flight(self) -> int:
        return 2 * self.workers()

    def submit(self, specs: list, hook: str | None) -> Any:
        raise NotImplementedError

    def ready(self, handles: list, timeout: float) -> list:
        raise NotImplementedError

    def fetch(self, handle) -> tuple[list, float]:
        raise NotImplementedError

    def cancel(self, handles: list) -> None:
        raise NotImplementedError

    # -- the loop ---------------------------------------------------------------------
    def map(self, specs: Sequence, stacks: list[list[int]]) -> Iterator[tuple[list[int], Any]]:
        from harness import interrupt, timing

        hook = kill_hook()
        queue = deque(range(len(stacks)))
        attempts = [0] * len(stacks)
        out: dict[Any, tuple[int, float]] = {}   # handle -> (stack number, submitted at)
        limit = max(1, self.in_flight())
        n_done, worker_s, ship_s = 0, 0.0, 0.0   # for the closing log line
        try:
            while queue or out:
                while queue and len(out) < limit:
                    k = queue.popleft()
                    h = self.submit([specs[i] for i in stacks[k]], hook if k == 0 else None)
                    out[h] = (k, time.perf_counter())
                with timing.phase("train"):
                    done = self.ready(list(out), self.poll_s)
                interrupt.check()
                for h in done:
                    k, t0 = out.pop(h)
                    try:
                        results, seconds = self.fetch(h)
                    except Lost as e:
                        attempts[k] += 1
                        if attempts[k] <= self.max_retries:
                            log.warning(f"{self.name}: stack {k} ({len(stacks[k])} runs) lost its worker ({_short(e)}); "
                                        f"retry {attempts[k]} of {self.max_retries}")
                            queue.appendleft(k)
                            continue
                        yield stacks[k], StackLost(f"{self.name}: a stack of {len(stacks[k])} runs lost its worker "
                                                   f"{attempts[k]} times (last: {_short(e)}); they are not recorded: "
                                                   f"rerun the same command to train them")
                        continue
                    except Exception as e:  # noqa: BLE001 - training's own error: this stack's jobs fail
                        yield stacks[k], e
                        continue
                    shipping = time.perf_counter() - t0 - seconds
                    n_done, worker_s, ship_s = n_done + 1, worker_s + seconds, ship_s + shipping
                    timing.totals["worker"] += seconds      # no lock: the driver runs no threads here
                    timing.totals["ship"] += shipping
                    yield stacks[k], results
                    del results
        finally:
            if out:
                self.cancel(list(out))
        if n_done:
            log.info(f"{self.name}: {n_done} stacks on {self.workers()} workers; worker time {worker_s:.1f} s, "
                     f"shipping {ship_s / n_done * 1000:.0f} ms a stack (submit to result, less the worker's time)")


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]
