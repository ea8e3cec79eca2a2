"""Series that are settings, not losses, and claims decided per group: shared by the checks
loglog_slope and factor_closer (no check of its own).

A series entry is a loss name or a mapping of params ({optimizer.name: gd, optimizer.schedule:
cosine}); a mapping without `loss.name` is named by its values, the first outside the brackets
(`gd (cosine)`, `cosine`), a loss entry as the report names it (`huber (delta=0.5)`).

    by       [params]: the claim is decided in each group of runs that share these params' values
             (e.g. [dataset.name]: once per data set); each group must hold for the claim to hold
"""
from __future__ import annotations

from typing import Any, Iterator

import pandas as pd

from harness.report.claims import ClaimError, _as_list, series_label
from harness.report.series import LOSS, series_name, value_text


def label(entry: Any) -> str:
    """`gd (cosine)` for {optimizer.name: gd, optimizer.schedule: cosine}; loss entries as
    series_label names them."""
    if isinstance(entry, dict) and entry and LOSS not in entry:
        (k0, v0), *rest = entry.items()
        return series_name(value_text(v0), dict(rest))
    return series_label(entry)


def groups(sub: pd.DataFrame, claim: dict) -> Iterator[tuple[str, pd.DataFrame]]:
    """(name, runs) per group of the claim's `by` params ("" and all runs without `by`), in the
    groups' sorted order; a ClaimError when a `by` param is not a column."""
    by = [str(b) for b in _as_list(claim.get("by"))]
    missing = [b for b in by if b not in sub]
    if missing:
        raise ClaimError(f"by: no column {', '.join(map(repr, missing))} in the runs")
    if not by:
        yield "", sub
        return
    for key, g in sub.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield ", ".join(f"{b}={value_text(v)}" for b, v in zip(by, key)), g


def numeric(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col, errors="coerce").astype(float)


def bound(v: Any, default: float) -> float:
    """A claim's bound: a number, or null / absent for an open end."""
    if v is None:
        return default
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ClaimError(f"bound {v!r} is not a number") from None
