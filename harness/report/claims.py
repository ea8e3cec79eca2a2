"""A study's claims, checked against the runs table.

A claim (from study.yaml) names its check and the check's arguments:

    - id: mse_pulled_by_outliers
      check: slope_greater
      metric: test/rmse
      x: outliers.ratio
      where: {outliers.kind: shift}
      larger: [mse]
      smaller: [huber, mae]

A check is a function `(runs, claim) -> Verdict` registered in CHECKS; adding one is a function
plus one entry. `runs` is the long table (one row per run; columns `loss.name`, the params named
by the claim, the metric). A verdict is `holds`, `does not hold` or `inconclusive`, with the
numbers that decide it.

Slopes. Per loss, within the `where` filter and over runs with a finite metric, the
least-squares slope of metric y against x:

    b = sum_i (x_i - xbar)(y_i - ybar) / sum_i (x_i - xbar)^2

Its 95% CI is a percentile bootstrap (B = 2000, fixed seed) that resamples runs within each
x value, so every resample keeps the design's x values; then b* = sum_l n_l (x_l - xbar) ybar*_l / Sxx
with ybar*_l the resampled mean at level l.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

LOSS = "loss.name"
HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
N_BOOT = 2000


@dataclass
class Verdict:
    verdict: str                 # holds | does not hold | inconclusive
    text: str                    # the numbers that decide it, one or two sentences
    table: pd.DataFrame = field(default_factory=pd.DataFrame)   # e.g. slope per loss with CI


Check = Callable[[pd.DataFrame, dict], Verdict]
CHECKS: dict[str, Check] = {}


def register(name: str) -> Callable[[Check], Check]:
    def add(fn: Check) -> Check:
        if name in CHECKS:
            raise KeyError(f"claim check {name!r} registered twice")
        CHECKS[name] = fn
        return fn

    return add


def evaluate(runs: pd.DataFrame, claim: dict) -> Verdict:
    """Runs the claim's check; an unknown check or a malformed claim is inconclusive, said why."""
    name = claim.get("check")
    if name not in CHECKS:
        return Verdict(UNSURE, f"unknown check {name!r}; known checks: {', '.join(sorted(CHECKS))}")
    try:
        return CHECKS[name](runs, claim)
    except ClaimError as e:
        return Verdict(UNSURE, str(e))


class ClaimError(ValueError):
    """The claim cannot be checked on these runs (missing column, loss, or too few x values)."""


# -- slopes -------------------------------------------------------------------------------
def select(runs: pd.DataFrame, where: dict[str, Any] | None) -> pd.DataFrame:
    """Rows matching every `param: value` of `where` (compared as numbers when both read as numbers)."""
    mask = pd.Series(True, index=runs.index)
    for key, want in (where or {}).items():
        if key not in runs:
            raise ClaimError(f"where: no column {key!r} in the runs")
        mask &= _equal(runs[key], want)
    return runs[mask]


def slope(x: np.ndarray, y: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """Least-squares slope of y on x and its 95% stratified-bootstrap CI (see module doc)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    levels, inv = np.unique(x, return_inverse=True)
    if len(levels) < 2:
        return np.nan, np.nan, np.nan
    n_l = np.bincount(inv)
    xbar = x.mean()
    w = n_l * (levels - xbar) / ((x - xbar) ** 2).sum()        # b = sum_l w_l ybar_l
    means = np.array([y[inv == i].mean() for i in range(len(levels))])
    b = float(w @ means)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(levels)))
    for i in range(len(levels)):
        yi = y[inv == i]
        boot[:, i] = yi[rng.integers(0, len(yi), size=(n_boot, len(yi)))].mean(axis=1)
    lo, hi = np.percentile(boot @ w, [2.5, 97.5])
    return b, float(lo), float(hi)


def slopes(runs: pd.DataFrame, claim: dict, losses: list[str]) -> pd.DataFrame:
    """Per loss: slope, ci_lo, ci_hi, n (runs used), n_dropped (non-finite metric: diverged)."""
    metric, x = claim.get("metric"), claim.get("x")
    for key, val in (("metric", metric), ("x", x)):
        if val not in runs:
            raise ClaimError(f"{key}: no column {val!r} in the runs")
    sub = select(runs, claim.get("where"))
    if sub.empty:
        where = ", ".join(f"{k}={v}" for k, v in (claim.get("where") or {}).items())
        raise ClaimError(f"no runs with {where} in this sweep")
    rows = []
    for loss in losses:
        r = sub[sub[LOSS].astype(str) == str(loss)]
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


@register("slope_greater")
def slope_greater(runs: pd.DataFrame, claim: dict) -> Verdict:
    """Holds when every loss in `larger` has a slope above every loss in `smaller` with
    non-overlapping 95% CIs (lo_larger > hi_smaller); does not hold when the order is reversed
    with non-overlapping CIs; inconclusive otherwise."""
    larger, smaller = list(claim.get("larger", [])), list(claim.get("smaller", []))
    if not larger or not smaller:
        raise ClaimError("slope_greater needs `larger` and `smaller` lists of losses")
    t = slopes(runs, claim, larger + smaller)
    s = t.set_index("loss")
    pairs = [(a, b) for a in larger for b in smaller]
    above = all(s.at[a, "ci_lo"] > s.at[b, "ci_hi"] for a, b in pairs)
    below = all(s.at[a, "ci_hi"] < s.at[b, "ci_lo"] for a, b in pairs)
    desc = _describe(t, claim)
    if above:
        ratios = [f"{a}/{b} = {s.at[a, 'slope'] / s.at[b, 'slope']:.1f}x" if s.at[b, "slope"] > 0
                  else f"{b} flat or falling" for a, b in pairs]
        return Verdict(HOLDS, f"{desc}. {_names(larger)} steeper than {_names(smaller)} with the CIs apart; "
                              f"slope ratios: {', '.join(ratios)}.", t)
    if below:
        return Verdict(FAILS, f"{desc}. Reversed: {_names(smaller)} rise faster than {_names(larger)}, CIs apart.", t)
    return Verdict(UNSURE, f"{desc}. The CIs overlap for at least one pair, so the order is not established.", t)


@register("slopes_similar")
def slopes_similar(runs: pd.DataFrame, claim: dict, factor: float = 2.0) -> Verdict:
    """Holds when the slopes of `losses` share a sign and lie within `factor` (2) of each other,
    max|b| / min|b| <= 2, or when every pair of 95% CIs overlaps; does not hold otherwise."""
    losses = list(claim.get("losses", []))
    if len(losses) < 2:
        raise ClaimError("slopes_similar needs a `losses` list of two or more losses")
    t = slopes(runs, claim, losses)
    b = t["slope"].to_numpy()
    same_sign = (b > 0).all() or (b < 0).all()
    ratio = np.abs(b).max() / np.abs(b).min() if same_sign else np.inf
    overlap = all(max(p.ci_lo, q.ci_lo) <= min(p.ci_hi, q.ci_hi)
                  for i, p in enumerate(t.itertuples()) for q in list(t.itertuples())[i + 1:])
    desc = _describe(t, claim) + "."
    if ((t["ci_lo"] <= 0) & (t["ci_hi"] >= 0)).all():
        desc += " No slope differs from 0: none of them shows a linear trend in x."
    ratio_txt = f"Largest/smallest slope = {ratio:.2f}" if np.isfinite(ratio) else "The slopes differ in sign"
    if ratio <= factor or overlap:
        why = f"within a factor of {factor:g}" if ratio <= factor else "all CIs overlap"
        return Verdict(HOLDS, f"{desc} {ratio_txt}; {why}.", t)
    return Verdict(FAILS, f"{desc} {ratio_txt} (not within a factor of {factor:g}) and not all CIs overlap.", t)


# -- helpers ------------------------------------------------------------------------------
def _describe(t: pd.DataFrame, claim: dict) -> str:
    where = ", ".join(f"{k}={v}" for k, v in (claim.get("where") or {}).items())
    parts = [f"{r.loss} {r.slope:.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]" for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    note = f"; {dropped} runs without a finite value left out" if dropped else ""
    return (f"Slope of {claim.get('metric')} per unit {claim.get('x')}"
            f"{' (' + where + ')' if where else ''}, 95% CI: " + "; ".join(parts) + note)


def _names(losses: list[str]) -> str:
    return "/".join(str(x) for x in losses)


def _equal(col: pd.Series, want: Any) -> pd.Series:
    if want is None:
        return col.isna() | (col.astype(str) == "null")
    try:
        w = float(want)
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().any():
            return num == w
    except (TypeError, ValueError):
        pass
    return col.astype(str) == str(want)
