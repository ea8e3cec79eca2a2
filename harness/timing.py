"""Wall time per phase of a sweep (compose, data, train, track, report), for the benchmark.

Phases may overlap (tracking runs in a thread beside training), so they need not add up to
the whole-process time.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

_lock = threading.Lock()
totals: dict[str, float] = defaultdict(float)


@contextmanager
def phase(name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        with _lock:
            totals[name] += time.perf_counter() - t0


def snapshot() -> dict[str, float]:
    with _lock:
        return dict(totals)
