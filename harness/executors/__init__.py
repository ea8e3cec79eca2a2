"""Where stacks train: in this process, on Ray workers, or as submitit (SLURM) jobs.

`hydra.launcher.executor=local|ray|submitit` (the batched launcher). The sweep is planned into
stacks here, as always (harness/stacking.py); an executor trains each *stack* (never each job)
somewhere and hands its RunResults back to this process, which writes them (run_stacks in
harness/sweep.py): the driver stays the one MLflow writer, so an SQLite store has one writer
and a stack's runs are still one transaction.

    Local       trains each stack here, when the sweep asks for the next one (the default)
    remote.py   the loop that Ray and submitit share: at most `in_flight` stacks out at once
                (memory stays bounded: each result is written and dropped as it arrives),
                results in the order they finish, a stack whose worker was lost (killed, out of
                memory, node gone, SLURM preemption or timeout) sent again up to `max_retries`
                times, then handed back as a StackLost error for its jobs while the other
                stacks go on; an exception raised by training itself is not retried (it would
                raise again) and fails that stack's jobs alone. SIGTERM/SIGINT
                (harness/interrupt.py) are checked while waiting, and outstanding work is
                cancelled when the loop ends early for any reason.
    on_ray.py   Ray remote tasks (`ray.init(address=...)`; a new local Ray by default)
    on_submitit.py  submitit jobs (SLURM; `cluster=local` runs them as local processes)

Every executor yields (stack, results) or (stack, exception); `train_stack` is what a worker
runs. A test-only hook makes a worker die: LOSSBENCH_TEST_KILL_WORKER=DIR:N in the driver's
environment kills the worker of the sweep's first stack (os._exit) on its first N attempts
(each attempt leaves a file in DIR, so the test can count them).
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterator, Sequence

NAMES = ("local", "ray", "submitit")
KILL_ENV = "LOSSBENCH_TEST_KILL_WORKER"


class StackLost(RuntimeError):
    """A stack whose worker was lost on every attempt: its runs were not recorded."""


class StacksFailed(RuntimeError):
    """The stacks of a remote sweep that failed while the others went on. `errors`: {index of
    a spec: the error of its stack}."""

    def __init__(self, errors: dict[int, BaseException]):
        self.errors = errors
        first = next(iter(errors.values()))
        n_stacks = len({id(e) for e in errors.values()})
        super().__init__(f"{len(errors)} runs in {n_stacks} stacks not recorded (first: {first}); "
                         f"rerun the same command to train them")


class Local:
    """Trains each stack in this process, lazily: the next stack trains only once the caller
    has written the previous one (and checked for a signal), as a sweep always did."""

    name = "local"

    def map(self, specs: Sequence, stacks: list[list[int]]) -> Iterator[tuple[list[int], Any]]:
        from harness import timing
        from harness.engine import train

        for stack in stacks:
            with timing.phase("train"):
                results = train([specs[i] for i in stack])
            yield stack, results
            del results   # not held here while the next stack trains


LOCAL = Local()


def make(name: str, options: dict[str, Any], sweep_dir: str, max_retries: int = 2):
    """The executor called `name`, with its options (the launcher's `ray` or `submitit` block),
    connected now (a Ray cluster joined or started, a SLURM executor set up), so that a bad
    option is one ConfigError before the sweep writes anything."""
    from harness.errors import ConfigError

    if name not in NAMES:
        raise ConfigError("hydra.launcher.executor", name, "local, ray or submitit")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError("hydra.launcher.max_retries", max_retries, "an integer >= 0")
    if name == "local":
        return LOCAL
    if name == "ray":
        from harness.executors.on_ray import RayExecutor

        return RayExecutor(options, max_retries)
    from harness.executors.on_submitit import SubmititExecutor

    return SubmititExecutor(options, sweep_dir, max_retries)


def kill_hook() -> str | None:
    """The test-only hook's value in this (the driver's) environment, checked: DIR:N."""
    value = os.environ.get(KILL_ENV)
    if not value:
        return None
    folder, _, times = value.rpartition(":")
    if not folder or not times.isdigit():
        raise ValueError(f"{KILL_ENV}={value!r}: DIR:N")
    return value


def train_stack(specs: Sequence, hook: str | None = None, threads: int | None = None) -> tuple[list, float]:
    """What a worker runs: trains one stack, returns (its RunResults, the seconds it took here),
    with `threads` torch threads when given (a submitit job; Ray sets OMP_NUM_THREADS itself).
    The results hold numpy arrays and plain values only (engine.collect copies every tensor to
    the host), so they pickle back to the driver whatever device trained them."""
    if hook:
        _maybe_die(hook)
    from harness.engine import train

    if threads:
        import torch

        torch.set_num_threads(threads)

    t0 = time.perf_counter()
    results = train(list(specs))
    return results, time.perf_counter() - t0


def _maybe_die(hook: str) -> None:
    folder, _, times = hook.rpartition(":")
    os.makedirs(folder, exist_ok=True)
    attempt = len(os.listdir(folder))
    with open(os.path.join(folder, f"attempt-{attempt}"), "w") as f:
        f.write(str(os.getpid()))
    if attempt < int(times):
        os._exit(17)   # as a killed worker: no exception, no result, the process gone
