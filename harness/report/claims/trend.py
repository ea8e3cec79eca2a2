"""trend: a metric (or the difference of two metrics) falls, or rises, as x grows, in every panel.

    metric: test/rmse, minus: train/rmse (optional: y = metric - minus, run by run),
    x: regularization.weight, direction: falls | rises (default falls),
    x_scale: linear | log | rank (default linear), panels: [params] (default: one panel)

Per panel (each combination of the `panels` params' values among the claim's runs), the
least-squares slope of y on u(x), u = x (linear), log10 x (log: x > 0 only) or the rank of x
among the panel's distinct values, 0, 1, 2, ... (rank: for a log grid that holds 0, such as
penalty weights 0, 0.001, 0.003, ...: every step counts alike), with its 95% CI. Where every
seed has one run at every x value (runs of one seed share data, split and init), the slope is
the mean of the per-seed slopes b_k and the CI its t interval over seeds (the spread between
seeds' data cancels within each b_k); otherwise the pooled slope with the bootstrap that
resamples seeds within each x value (stats.slope). Holds when every panel's CI
lies on the claimed side of 0; does not hold when some panel's CI lies on the other side;
inconclusive otherwise. The table also gives, per panel, the mean y at the smallest and the
largest x and how many of the steps between neighbouring x values go the claimed way (read,
not decided on: a trend may have a bump). Runs without a finite y (diverged) are left out and
counted. Example (the train-test gap shrinks as the penalty grows):

    - id: gap_shrinks
      check: trend
      metric: test/rmse
      minus: train/rmse
      x: regularization.weight
      x_scale: rank
      panels: [regularization.kind, dataset.n_train]
      where: {dataset.name: linear}
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _prepare, _where_text,
                                   register)
from harness.report.claims.stats import slope, t_ci95
from harness.report.series import SEED

METHOD = ("Trend: per panel, the least-squares slope of the metric (or difference of metrics) on x, its rank "
          "or log x: the mean of the per-seed slopes with its 95% t interval where every seed ran every x value "
          "(else a bootstrap that resamples seeds within each x value); every panel's CI on the claimed side of 0.")
SCALES = ("linear", "log", "rank")


def values(runs: pd.DataFrame, claim: dict) -> pd.Series:
    """y of each run: `metric`, or `metric - minus` when the claim names `minus`."""
    metric, minus = claim.get("metric"), claim.get("minus")
    y = pd.to_numeric(runs[metric], errors="coerce").astype(float)
    if minus is not None:
        if minus not in runs:
            raise ClaimError(f"minus: no column {minus!r} in the runs")
        y = y - pd.to_numeric(runs[minus], errors="coerce").astype(float)
    return y


def y_name(claim: dict) -> str:
    return f"{claim.get('metric')} - {claim['minus']}" if claim.get("minus") else str(claim.get("metric"))


def panel_label(key, panels: list[str]) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{p}={v:g}" if isinstance(v, float) else f"{p}={v}" for p, v in zip(panels, key)) or "all runs"


def _slope(q: pd.DataFrame, u: np.ndarray, levels: np.ndarray) -> tuple[float, float, float, str]:
    """(slope, ci_lo, ci_hi, how): paired by seed when every seed has one run at every x level
    (the mean of the per-seed slopes, 95% t interval), else stats.slope's stratified bootstrap."""
    if len(levels) < 2:
        return np.nan, np.nan, np.nan, ""
    y = q["_y"].to_numpy(float)
    if SEED in q:
        seeds = q[SEED].to_numpy()
        counts = pd.crosstab(seeds, q["_x"].to_numpy())
        if len(counts) >= 2 and counts.shape[1] == len(levels) and (counts.to_numpy() == 1).all():
            per = []
            for k in counts.index:
                m = seeds == k
                uk, yk = u[m], y[m]
                per.append(float(((uk - uk.mean()) * (yk - yk.mean())).sum() / ((uk - uk.mean()) ** 2).sum()))
            per = np.array(per)
            half = float(t_ci95(float(per.std(ddof=1)), len(per)))
            return float(per.mean()), float(per.mean() - half), float(per.mean() + half), f"paired by seed ({len(per)})"
    b, lo, hi = slope(u, y)
    return b, lo, hi, "bootstrap"


@register("trend", method=METHOD)
def trend(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: does y fall (rise) with x in every panel, the slope's CI apart from 0?"""
    x = claim.get("x")
    direction, scale = claim.get("direction", "falls"), claim.get("x_scale", "linear")
    if direction not in ("falls", "rises"):
        raise ClaimError(f"direction: {direction!r}; falls or rises")
    if scale not in SCALES:
        raise ClaimError(f"x_scale: {scale!r}; one of {', '.join(SCALES)}")
    panels = [str(p) for p in _as_list(claim.get("panels"))]
    sub = _prepare(runs, claim, need_x=True)
    missing = [p for p in panels if p not in sub]
    if missing:
        raise ClaimError(f"panels: no column {', '.join(map(repr, missing))} in the runs")
    sub = sub.assign(_y=values(sub, claim), _x=pd.to_numeric(sub[x], errors="coerce").astype(float))
    sign = -1.0 if direction == "falls" else 1.0
    rows = []
    groups = sub.groupby(panels, sort=True, dropna=False) if panels else [((), sub)]
    for key, p in groups:
        ok = np.isfinite(p["_x"]) & np.isfinite(p["_y"])
        q = p[ok]
        levels = np.sort(q["_x"].unique())
        if scale == "log" and (levels <= 0).any():
            raise ClaimError(f"x_scale: log needs {x} > 0; the runs have {x}={levels[0]:g} (use rank)")
        u = {"linear": q["_x"], "log": np.log10(q["_x"].clip(lower=1e-300)),
             "rank": q["_x"].map({v: float(i) for i, v in enumerate(levels)})}[scale].to_numpy(float)
        b, lo, hi, how = _slope(q, u, levels)
        means = q.groupby("_x")["_y"].mean().sort_index()
        steps = np.sign(np.diff(means.to_numpy())) * sign
        rows.append(dict(panel=panel_label(key, panels), slope=b, ci_lo=lo, ci_hi=hi,
                         y_first=means.iloc[0] if len(means) else np.nan, y_last=means.iloc[-1] if len(means) else np.nan,
                         x_first=levels[0] if len(levels) else np.nan, x_last=levels[-1] if len(levels) else np.nan,
                         steps_claimed=int((steps > 0).sum()), steps=len(steps), ci=how, n=int(ok.sum()),
                         n_dropped=int((~ok).sum())))
    t = pd.DataFrame(rows)
    thin = t.loc[t["slope"].isna(), "panel"].tolist()
    if thin:
        raise ClaimError(f"no slope for {'; '.join(thin)}: needs finite {y_name(claim)} at two or more values of {x}")
    per = f"per step of the rank of {x}" if scale == "rank" else (f"per decade of {x}" if scale == "log" else f"per unit {x}")
    parts = [f"{r.panel}: {r.slope:+.3g} [{r.ci_lo:+.3g}, {r.ci_hi:+.3g}] ({r.y_first:.4g} at {r.x_first:g} -> "
             f"{r.y_last:.4g} at {r.x_last:g}; {r.steps_claimed}/{r.steps} steps {'down' if sign < 0 else 'up'})"
             for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    desc = (f"Slope of {y_name(claim)} {per}{_where_text(claim)}, 95% CI: " + "; ".join(parts)
            + (f"; {dropped} runs without a finite value left out" if dropped else ""))
    good = sign * np.where(sign < 0, t["ci_hi"], t["ci_lo"]) > 0      # CI entirely on the claimed side
    bad = sign * np.where(sign < 0, t["ci_lo"], t["ci_hi"]) < 0       # CI entirely on the other side
    worst = t.loc[(sign * t["slope"]).idxmin()]
    number = f"{worst.panel}: slope {worst.slope:+.3g} [{worst.ci_lo:+.3g}, {worst.ci_hi:+.3g}]"
    if good.all():
        return Verdict(HOLDS, f"{desc}. {y_name(claim)} {direction} with {x} in all {len(t)} panels, every CI "
                              f"{'below' if sign < 0 else 'above'} 0.", t, number=f"weakest {number}")
    if bad.any():
        names = "; ".join(t.loc[bad, "panel"])
        return Verdict(FAILS, f"{desc}. Reversed, the CI {'above' if sign < 0 else 'below'} 0, in: {names}.", t,
                       number=number)
    names = "; ".join(t.loc[~good, "panel"])
    return Verdict(UNSURE, f"{desc}. The CI includes 0 in: {names}, so the trend is not established there.", t,
                   number=number)
