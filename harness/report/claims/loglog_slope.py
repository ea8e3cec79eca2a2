"""loglog_slope: a metric grows like a power of x, metric ∝ x^b, with b in a given range.

    series: [entries] (default: one series, every run the claim selects), lo, hi (the range of b;
    null for an open end), x_range: [x_lo, x_hi] (only runs with x in it, ends included; null
    for an open end), by: [params] (decided per group, e.g. per data set)

The exponent b is the least-squares slope of log(metric) on log(x) over the runs,

    b = sum_i (u_i - ubar)(v_i - vbar) / sum_i (u_i - ubar)^2,   u = log x,  v = log metric,

with its 95% CI from the stratified bootstrap of stats.slope (runs resampled within each x
value: over seeds). Runs whose metric is not finite (diverged) or not > 0 have no logarithm and
are left out, and counted. Holds when, in every group, every series' CI lies inside [lo, hi];
does not hold when some series' CI lies wholly outside it; inconclusive otherwise, and when a
series has fewer than two runs at some x value (no interval from one run). Example (the distance
to the optimum at a constant step size grows like the step size):

    - id: distance_proportional_to_lr
      check: loglog_slope
      metric: opt/distance
      x: optimizer.lr
      x_range: [0.01, 0.2]
      where: {optimizer.name: gd, optimizer.schedule: constant}
      by: [dataset.name]
      lo: 0.8
      hi: 1.2
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _prepare, _where_text,
                                   register, series)
from harness.report.claims.settings import bound, groups, label, numeric
from harness.report.claims.stats import slope

METHOD = ("Log-log slopes are least-squares fits of log(metric) on log(x) over the runs, 95% CIs from a "
          "bootstrap that resamples seeds within each x value; runs without a positive finite value are "
          "left out.")


def loglog_slopes(runs: pd.DataFrame, claim: dict) -> pd.DataFrame:
    """Per group and series: slope, ci_lo, ci_hi, n (runs used), n_x (x values), n_dropped
    (metric not finite or not > 0), thin (some x value with fewer than 2 runs)."""
    metric, x = claim.get("metric"), claim.get("x")
    sub = _prepare(runs, claim, need_x=True)
    xr = _as_list(claim.get("x_range"))
    if xr and len(xr) != 2:
        raise ClaimError(f"x_range: [lowest, highest] x value, got {claim.get('x_range')!r}")
    x_lo, x_hi = (bound(xr[0], -np.inf), bound(xr[1], np.inf)) if xr else (-np.inf, np.inf)
    xv_all = numeric(sub[x])
    sub = sub[(xv_all >= x_lo) & (xv_all <= x_hi) & (xv_all > 0)]
    if sub.empty:
        raise ClaimError(f"no runs with {x} > 0 in x_range {claim.get('x_range')}")
    entries = _as_list(claim.get("series")) or [None]
    rows = []
    for group, g in groups(sub, claim):
        for entry in entries:
            name, r = ("", g) if entry is None else (label(entry), series(g, entry)[1])
            xv, yv = numeric(r[x]).to_numpy(), numeric(r[metric]).to_numpy()
            ok = np.isfinite(yv) & (yv > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                u, v = np.log(xv[ok]), np.log(yv[ok])
            levels, counts = np.unique(u, return_counts=True)
            b, lo, hi = slope(u, v) if len(levels) >= 2 else (np.nan,) * 3
            rows.append(dict(group=group, series=name, slope=b, ci_lo=lo, ci_hi=hi, n=int(ok.sum()),
                             n_x=len(levels), n_dropped=int((~ok).sum()),
                             thin=bool(len(levels) and counts.min() < 2)))
    t = pd.DataFrame(rows)
    flat = t[t["n_x"] < 2]
    if len(flat):
        which = "; ".join(_who(r) for r in flat.itertuples())
        raise ClaimError(f"no log-log slope for {which}: needs runs at two or more values of {x} > 0 with a "
                         f"positive finite {metric}{_where_text(claim)}")
    return t


def _who(r) -> str:
    """A row's series and group in words: `gd (cosine), dataset.name=linear`, or one of them."""
    return ", ".join(s for s in (r.series, r.group) if s) or "all runs"


@register("loglog_slope", method=METHOD)
def loglog_slope(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: does every series' log-log slope CI lie inside [lo, hi]?"""
    if claim.get("lo") is None and claim.get("hi") is None:
        raise ClaimError("loglog_slope needs `lo` and/or `hi`, the range the slope should lie in")
    lo, hi = bound(claim.get("lo"), -np.inf), bound(claim.get("hi"), np.inf)
    if lo > hi:
        raise ClaimError(f"loglog_slope: lo {lo:g} above hi {hi:g}")
    t = loglog_slopes(runs, claim)
    span = f"[{lo:g}, {hi:g}]" if np.isfinite(lo) and np.isfinite(hi) else (f"above {lo:g}" if np.isfinite(lo)
                                                                             else f"below {hi:g}")
    xr = claim.get("x_range")
    over = f" over {claim.get('x')} in [{xr[0]}, {xr[1]}]" if xr else ""
    parts = [f"{_who(r)} {r.slope:.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]"
             for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    desc = (f"Log-log slope of {claim.get('metric')} on {claim.get('x')}{over}{_where_text(claim)}, 95% CI: "
            + "; ".join(parts) + (f"; {dropped} runs without a positive finite value left out" if dropped else ""))
    short = lambda r: " ".join(s for s in (r.series, ", ".join(v.split("=", 1)[-1] for v in r.group.split(", ")))
                               if s)
    number = "; ".join(f"{short(r) + ' ' if short(r) else ''}{r.slope:.2f} [{r.ci_lo:.2f}, {r.ci_hi:.2f}]"
                       for r in t.itertuples())
    if t["thin"].any():
        return Verdict(UNSURE, f"{desc}. Fewer than 2 runs at some x value, so no interval.", t, number)
    inside = (t["ci_lo"] >= lo) & (t["ci_hi"] <= hi)
    outside = (t["ci_hi"] < lo) | (t["ci_lo"] > hi)
    if inside.all():
        return Verdict(HOLDS, f"{desc}. Every CI lies {'inside ' + span if '[' in span else span}.", t, number)
    if outside.any():
        bad = "; ".join(_who(r) for r in t[outside].itertuples())
        return Verdict(FAILS, f"{desc}. Wholly outside {span}: {bad}.", t, number)
    return Verdict(UNSURE, f"{desc}. Some CI straddles an end of {span}, so the exponent is not established.",
                   t, number)
