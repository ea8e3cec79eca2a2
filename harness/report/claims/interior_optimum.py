"""interior_optimum: the metric has its best value at an interior x for some levels of a param
(a penalty weight helps when data are few) and gains nothing worth having at others.

    metric: test/rmse, x: regularization.weight, by: dataset.n_train,
    small: [levels of by] (an interior optimum expected), large: [levels] (none needed),
    tolerance: 0.02 (a relative gain; default 0.02)

Per level L of `by`, with m(x) the mean of the metric over seeds at x and x0 the smallest x
(weight 0: no penalty), the best x* = argbest_x m(x), and the relative gain of x* over x0,
paired by seed (runs of one seed share the data, split and init):

    g_k = s (y_k(x0) - y_k(x*)) / |m(x0)|,   s = +1 when lower is better, -1 otherwise,

with the mean of g and its 95% t interval over the seeds with finite values at both. Levels in
neither list are computed and shown in the table, not judged.
A `small` level holds when x* is interior (x0 < x* < the largest x) and the CI of g lies above 0;
it does not hold when x* = x0 (no penalty helps); it is inconclusive when x* is the largest x
(the optimum may lie beyond the grid) or the CI reaches 0. A `large` level holds when the CI of
g lies below `tolerance` (no weight gains that much); it does not hold when the CI lies above
it; inconclusive otherwise. The claim holds when every level holds, does not hold when one does
not. x* is chosen on the same runs it is scored on: that flatters the gain (a small level holds
a little easily, a large level fails a little easily); with few x values and a gain far from
the bounds it does not decide the verdict, and the table shows how far it is.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _prepare,
                                   _where_text, register)
from harness.report.claims.stats import t_ci95
from harness.report.series import SEED

METHOD = ("Interior optimum: per level, the x with the best mean metric over seeds, and its relative gain "
          "over the smallest x (no penalty), paired by seed with a 95% t interval; small levels need an "
          "interior best x with the gain's CI above 0, large levels the gain's CI below the tolerance.")


def best_and_gain(r: pd.DataFrame, metric: str, x: str, higher: bool) -> dict:
    """For the runs of one level: x0, x*, the means at both and the paired relative gain with its CI."""
    xv = pd.to_numeric(r[x], errors="coerce").astype(float)
    y = pd.to_numeric(r[metric], errors="coerce").astype(float)
    ok = np.isfinite(xv) & np.isfinite(y)
    means = y[ok].groupby(xv[ok]).mean().sort_index()
    if len(means) < 3:
        raise ClaimError(f"interior_optimum needs finite {metric} at three or more values of {x} in every level")
    s = -1.0 if higher else 1.0
    x0, xs = float(means.index[0]), float((-s * means).idxmax())   # best: lowest s * mean
    base, best = float(means.iloc[0]), float(means.loc[xs])
    if SEED not in r:
        raise ClaimError(f"interior_optimum pairs runs by {SEED}; the runs have no {SEED!r} column")
    at = lambda v: pd.Series(y[ok & np.isclose(xv, v)].to_numpy(), index=r.loc[ok & np.isclose(xv, v), SEED].to_numpy())
    a, b = at(x0), at(xs)
    if a.index.duplicated().any() or b.index.duplicated().any():
        raise ClaimError(f"interior_optimum: more than one run per {SEED} at one {x}; narrow `where`")
    g = (s * (a - b.reindex(a.index)) / abs(base)).dropna().to_numpy() if xs != x0 else np.zeros(len(a))
    mean = float(g.mean()) if len(g) else np.nan
    half = float(t_ci95(float(g.std(ddof=1)), len(g))) if len(g) >= 2 else np.nan
    return dict(x0=x0, best_x=xs, x_max=float(means.index[-1]), m_x0=base, m_best=best, gain=mean,
                ci_lo=mean - half, ci_hi=mean + half, n_pairs=len(g), n_dropped=int((~ok).sum()))


def _judge(role: str, row: dict, tol: float) -> str:
    if role == "small":
        if row["best_x"] == row["x0"]:
            return FAILS
        if row["best_x"] == row["x_max"] or not row["ci_lo"] > 0:
            return UNSURE
        return HOLDS
    if row["ci_hi"] < tol:
        return HOLDS
    return FAILS if row["ci_lo"] > tol else UNSURE


@register("interior_optimum", method=METHOD)
def interior_optimum(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: an interior best x with a clear gain at the `small` levels of `by`, and
    no gain beyond `tolerance` at the `large` ones."""
    metric, x, by = claim.get("metric"), claim.get("x"), claim.get("by")
    small, large = [float(v) for v in _as_list(claim.get("small"))], [float(v) for v in _as_list(claim.get("large"))]
    if not by or not (small or large):
        raise ClaimError("interior_optimum needs `by` (a param) and `small` and/or `large` levels of it")
    tol = float(claim.get("tolerance", 0.02))
    sub = _prepare(runs, claim, need_x=True)
    if by not in sub:
        raise ClaimError(f"by: no column {by!r} in the runs")
    higher = _direction(claim)
    lv = pd.to_numeric(sub[by], errors="coerce").astype(float)
    have = np.sort(lv.dropna().unique())
    missing = [v for v in small + large if not np.isclose(have, v).any()]
    if missing:
        raise ClaimError(f"no runs at {by}={', '.join(f'{v:g}' for v in missing)} "
                         f"(values: {', '.join(f'{v:g}' for v in have)})")
    rows = []
    for v in have:        # every level, in order; those in neither list are shown, not judged
        role = "small" if np.isclose(small, v).any() else "large" if np.isclose(large, v).any() else "not judged"
        row = dict(level=float(v), role=role, **best_and_gain(sub[np.isclose(lv, v)], metric, x, higher))
        row["verdict"] = _judge(role, row, tol) if role != "not judged" else ""
        rows.append(row)
    everything = pd.DataFrame(rows)
    t = everything[everything["role"] != "not judged"]
    parts = [f"{by}={r.level:g} ({r.role}): best {x}={r.best_x:g} ({r.m_best:.4g} vs {r.m_x0:.4g} at {r.x0:g}), "
             f"gain {100 * r.gain:+.2f}% [{100 * r.ci_lo:+.2f}, {100 * r.ci_hi:+.2f}]" + (f" -> {r.verdict}" if r.verdict else "")
             for r in everything.itertuples()]
    dropped = int(t["n_dropped"].sum())
    desc = (f"Mean {metric} over seeds{_where_text(claim)}; per level of {by}, the best {x} and its relative gain "
            f"over {x}={everything['x0'].iloc[0]:g}, paired by seed, 95% CI: " + "; ".join(parts)
            + (f"; {dropped} runs without a finite value left out" if dropped else ""))
    why = {FAILS: [], UNSURE: []}
    for r in t.itertuples():
        if r.verdict == HOLDS:
            continue
        if r.role == "small":
            what = ("the best is no penalty" if r.best_x == r.x0 else
                    f"the best is the largest {x} (the optimum may lie beyond the grid)" if r.best_x == r.x_max else
                    "the gain's CI reaches 0")
        else:
            what = f"the gain's CI {'lies above' if r.verdict == FAILS else 'reaches'} the tolerance {100 * tol:g}%"
        why[r.verdict].append(f"{by}={r.level:g}: {what}")
    short = lambda r: f"{by}={r.level:g}: {100 * r.gain:+.1f}% [{100 * r.ci_lo:+.1f}, {100 * r.ci_hi:+.1f}] at {x}={r.best_x:g}"
    off = t[t["verdict"] != HOLDS]
    number = short(off.iloc[0]) if len(off) else "; ".join(short(r) for r in t.itertuples())
    if why[FAILS]:
        return Verdict(FAILS, f"{desc}. Not as claimed: {'; '.join(why[FAILS])}.", everything, number=number)
    if why[UNSURE]:
        return Verdict(UNSURE, f"{desc}. Not established: {'; '.join(why[UNSURE])}.", everything, number=number)
    return Verdict(HOLDS, f"{desc}. An interior optimum with a clear gain at {by} in "
                          f"{', '.join(f'{v:g}' for v in small) or '(none)'}; no gain beyond {100 * tol:g}% at "
                          f"{', '.join(f'{v:g}' for v in large) or '(none)'}.", everything, number=number)
