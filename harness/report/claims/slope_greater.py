"""slope_greater: one group of losses' metric rises with x faster than another's.

    larger: [losses], smaller: [losses]

Holds when every `larger` loss has a slope of metric on x above every `smaller` loss's, with
non-overlapping 95% CIs; does not hold when reversed with the CIs apart; inconclusive
otherwise. The slope table (`slopes`) and its description are shared with slopes_similar;
the slope and its stratified-bootstrap CI are stats.slope.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _names, _prepare, _where_text,
                                   register, select, series, series_label, variants)
from harness.report.claims.stats import slope

SLOPES = ("Slopes are least-squares fits over the runs (per unit of x), 95% CIs from a bootstrap that "
          "resamples seeds within each x value.")     # the method of both slope checks


def slopes(runs: pd.DataFrame, claim: dict, losses: list) -> pd.DataFrame:
    """Per loss entry: slope, ci_lo, ci_hi, n (runs used), n_dropped (non-finite metric: diverged)."""
    metric, x = claim.get("metric"), claim.get("x")
    sub = _prepare(runs, claim, need_x=True)
    rows = []
    unique = {series_label(e): e for e in losses}   # a series named twice is fitted once
    for entry in unique.values():
        loss, r = series(sub, entry)
        xv, yv = pd.to_numeric(r[x], errors="coerce").to_numpy(float), r[metric].to_numpy(float)
        ok = np.isfinite(xv) & np.isfinite(yv)
        b, lo, hi = slope(xv[ok], yv[ok]) if ok.any() else (np.nan,) * 3
        rows.append(dict(loss=loss, slope=b, ci_lo=lo, ci_hi=hi, n=int(ok.sum()), n_dropped=int((~ok).sum())))
    table = pd.DataFrame(rows)
    missing = table.loc[table["slope"].isna(), "loss"].tolist()
    if missing:
        raise ClaimError(f"no slope for {', '.join(map(str, missing))}: needs runs at two or more values of {x} "
                         f"with a finite {metric} (where {claim.get('where') or 'all runs'})")
    return table


def describe(t: pd.DataFrame, claim: dict) -> str:
    """A slopes() table in words: each loss's slope with its CI, and the runs left out."""
    parts = [f"{r.loss} {r.slope:.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]" for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    note = f"; {dropped} runs without a finite value left out" if dropped else ""
    return (f"Slope of {claim.get('metric')} per unit {claim.get('x')}{_where_text(claim)}, 95% CI: "
            + "; ".join(parts) + note)


@register("slope_greater", method=SLOPES)
def slope_greater(runs: pd.DataFrame, claim: dict) -> Verdict:
    """Holds when every loss in `larger` has a slope above every loss in `smaller` with
    non-overlapping 95% CIs (lo_larger > hi_smaller); does not hold when the order is reversed
    with non-overlapping CIs; inconclusive otherwise."""
    larger, smaller = list(claim.get("larger", [])), list(claim.get("smaller", []))
    if not larger or not smaller:
        raise ClaimError("slope_greater needs `larger` and `smaller` lists of losses")
    sub = select(runs, claim.get("where"))
    larger, smaller = variants(sub, larger), variants(sub, smaller)
    t = slopes(runs, claim, larger + smaller)
    s = t.set_index("loss")
    larger, smaller = [series_label(e) for e in larger], [series_label(e) for e in smaller]
    pairs = [(a, b) for a in larger for b in smaller if a != b]
    if not pairs:
        raise ClaimError("slope_greater: `larger` and `smaller` name the same series")
    above = all(s.at[a, "ci_lo"] > s.at[b, "ci_hi"] for a, b in pairs)
    below = all(s.at[a, "ci_hi"] < s.at[b, "ci_lo"] for a, b in pairs)
    desc = describe(t, claim)
    if above:
        words = ", ".join(_compare_slopes(s.at[a, "slope"], s.at[b, "slope"], a, b) for a, b in pairs)
        return Verdict(HOLDS, f"{desc}. The slope of {_names(larger)} lies above that of {_names(smaller)}, CIs "
                              f"apart; {words}.", t)
    if below:
        return Verdict(FAILS, f"{desc}. Reversed: the slope of {_names(smaller)} lies above that of {_names(larger)}, "
                              f"CIs apart.", t)
    return Verdict(UNSURE, f"{desc}. The CIs overlap for at least one pair, so the order is not established.", t)


def _compare_slopes(a: float, b: float, name_a: str, name_b: str) -> str:
    """Two slopes, a > b, in words: a ratio when both rise or both fall."""
    if a > 0 and b > 0:
        return f"{name_a}/{name_b} = {a / b:.1f}x"
    if a < 0 and b < 0:
        return f"{name_b} falls {b / a:.1f}x as fast as {name_a}"
    return f"{name_a} {'rises' if a > 0 else 'is flat'}, {name_b} {'falls' if b < 0 else 'is flat'}"
