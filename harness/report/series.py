"""The name of a series of runs, one function for the report's figures and its claims.

A series is one loss, or one variant of it (some of its own options fixed). Its name is the
loss name and, in brackets, those options: words stand alone (a direction or a mining strategy
says what it is), numbers get their key, the part after the first dot, and floats are written
with `:g` (0.5 -> 0.5, 1.0 -> 1):

    huber   kl (reverse)   triplet (hard)   gce (q=0.5)   triplet (hard, margin=0.5)

aggregate.line_label names a figure's series from a row of the runs table, claims.series_label
a claim's loss entry ({loss.name: triplet, loss.mining: hard}); both call series_name, so a
claim's verdict names a series as the figures do. No torch, no pandas.
"""
from __future__ import annotations

from typing import Any, Mapping

LOSS = "loss.name"   # the runs table's column of the loss
SEED = "seed"        # the param the runs of one setting differ in


def value_text(v: Any) -> str:
    """A param value as the report writes it: floats with `:g` (1.0 -> 1), anything else as str."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def series_name(loss: Any, options: Mapping[str, Any]) -> str:
    """`loss` and, in brackets, `options` (param -> value, in order): string values first, as
    they are, then the others as `key=value` with the key's part after the first dot."""
    words = [str(v) for v in options.values() if isinstance(v, str)]
    nums = [f"{k.split('.', 1)[-1]}={value_text(v)}" for k, v in options.items() if not isinstance(v, str)]
    extra = words + nums
    return f"{loss} ({', '.join(extra)})" if extra else str(loss)
