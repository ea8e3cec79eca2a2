"""SIGTERM and SIGINT during a sweep, turned into a clean stop.

A signal handler that raises can fire anywhere, including inside a garbage-collection callback
where Python prints the exception and drops it (seen: a SIGTERM lost that way, the sweep went
on). So the handler only records the signal; the training loop checks it at every step and the
stack loop before each stack (`check`), and raise `Interrupted` there: the stack in training is
dropped, every stack already written stays, and the sweeper closes its parent run as KILLED. A
second signal while the first is being handled raises at once (the user insists)."""
from __future__ import annotations

import signal
from contextlib import contextmanager

_pending: int | None = None


class Interrupted(KeyboardInterrupt):
    """The stop a signal asked for (a KeyboardInterrupt: every `except KeyboardInterrupt` that
    closes a sweep cleanly handles it too)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _on_signal(signum, frame):
    global _pending
    if _pending is not None:
        raise Interrupted(signum)
    _pending = signum


def check() -> None:
    """Raises Interrupted when a signal has arrived (cheap: one global read)."""
    if _pending is not None:
        raise Interrupted(_pending)


@contextmanager
def handled(signals=(signal.SIGTERM, signal.SIGINT)):
    """Inside: the signals are recorded for `check` (a signal the process ignores, e.g. SIGINT in
    a background job of a script, stays ignored); after: the handlers as they were."""
    global _pending
    _pending = None
    previous = {}
    for sig in signals:
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:
            continue
        previous[sig] = current
        signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        _pending = None
