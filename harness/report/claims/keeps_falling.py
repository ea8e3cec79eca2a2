"""keeps_falling: the loss keeps falling after the metric has stopped improving (read from curves).

    metric: test/accuracy    the metric, logged as a curve (its better direction: metric_table.py)
    loss: train/loss         the loss curve said to keep falling (default train/loss)
    tol: 0.01                a change of the metric smaller than this is no improvement
    min_fall: 0.1            the relative fall of the loss that counts as "keeps falling"
    share: 0.5               the share of runs it must happen in ("most runs")
    losses: [bce, hinge]     optional: only these losses' runs (default: every run of `where`)
    also: test/loss          optional: a second loss curve, described (does it rise?), not decided on
    by: [optimizer.lr]       optional: params to break the share down by, in the text (not decided on)

Per converged run, with a(t) the metric at the eval steps t_0 < ... < t_m = T, written so that
higher is better (-a for a metric where lower is better), the step where the metric stopped
improving is the first eval step after which it never gains more than `tol` on its value there:

    t* = min { t : max_{u >= t} a(u) <= a(t) + tol }

With L(t*) the loss at the last logged step <= t* and L(T) its final value, the run's loss
*keeps falling* when t* < T and

    fall = (L(t*) - L(T)) / |L(t*)| >= min_fall        (fall = 0 when L(t*) = 0)

The table also gives, per run, a(T) - max_t a(t) (< -tol: the metric got worse while the loss
fell, overfitting) and, for `also`, its value at t*, its minimum and its final value (rose:
final > (1 + min_fall) x minimum). Over the n runs, k of which keep falling, the verdict uses the
95% Clopper-Pearson interval of k/n: holds when its lower end is above `share`, does not hold
when its upper end is below `share` (the loss stops with the metric), inconclusive in between.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _where_text,
                                   register, select, series, variants)
from harness.report.series import LOSS, value_text

METHOD = ("Per run, t* = the first eval step after which the metric never improves by more than tol; the "
          "loss keeps falling when it falls by at least min_fall (relative) from t* to the last step; the "
          "share of such runs is decided by its 95% Clopper-Pearson interval against `share`.")


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of a binomial proportion k/n:
    [Beta(0.025; k, n-k+1), Beta(0.975; k+1, n-k)], with 0 and 1 at the ends."""
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def stop_step(steps: np.ndarray, a: np.ndarray, tol: float) -> int:
    """t* of the module doc: the first step after which `a` (higher is better) never gains more
    than `tol` on its value there (NaNs ignored)."""
    ok = np.isfinite(a)
    steps, a = steps[ok], a[ok]
    ahead = np.maximum.accumulate(a[::-1])[::-1]          # max_{u >= t} a(u)
    return int(steps[np.argmax(ahead <= a + tol)])


def _at(curve: pd.Series, step: int) -> float:
    """The curve's value at the last step <= `step` with a finite value (NaN when none)."""
    c = curve[(curve.index <= step) & np.isfinite(curve.to_numpy(float))]
    return float(c.iloc[-1]) if len(c) else float("nan")


def runs_of(runs: pd.DataFrame, claim: dict) -> pd.DataFrame:
    """The claim's runs: `where`, then the runs of `losses` when it names some."""
    sub = select(runs, claim.get("where"))
    entries = _as_list(claim.get("losses"))
    if entries:
        sub = pd.concat([series(sub, e)[1] for e in variants(sub, entries)]).drop_duplicates("run_id")
    if sub.empty:
        raise ClaimError(f"no runs{_where_text(claim)} in this sweep")
    return sub


def _curve_table(curves: Callable, ids: list[str], key: str) -> dict[str, pd.Series]:
    h = curves(ids, key)
    return {rid: g.set_index("step")["value"].sort_index() for rid, g in h.groupby("run_id")} if len(h) else {}


def run_row(a: pd.Series, L: pd.Series, sign: float, tol: float, min_fall: float) -> dict:
    """One run's numbers (module doc) from its metric curve `a` and loss curve `L` (step-indexed)."""
    steps, av = a.index.to_numpy(), sign * a.to_numpy(float)
    ok = np.isfinite(av)
    t_star, last = stop_step(steps, av, tol), int(steps[ok][-1])
    l_star, l_end = _at(L, t_star), _at(L, int(L.index.max()))
    fall = (l_star - l_end) / abs(l_star) if l_star != 0 and np.isfinite(l_star) else 0.0
    best, final = float(np.nanmax(av)), float(av[ok][-1])
    return {"t_star": t_star, "last_step": last, "metric at t*": sign * _at(pd.Series(av, steps), t_star),
            "metric best": sign * best, "metric final": sign * final, "change from best": final - best,
            "loss at t*": l_star, "loss final": l_end, "fall": fall,
            "keeps_falling": bool(t_star < last and fall >= min_fall)}


@register("keeps_falling", method=METHOD, curves=True)
def keeps_falling(runs: pd.DataFrame, claim: dict, curves: Callable) -> Verdict:
    """See the module doc: does the loss keep falling after the metric stops improving, in most runs?"""
    metric, loss = claim.get("metric"), claim.get("loss", "train/loss")
    if not metric:
        raise ClaimError("keeps_falling needs a `metric` (a curve, e.g. test/accuracy)")
    tol, min_fall, share = float(claim.get("tol", 0.01)), float(claim.get("min_fall", 0.1)), float(claim.get("share", 0.5))
    also, by = claim.get("also"), _as_list(claim.get("by"))
    sign = 1.0 if _direction(claim) else -1.0
    sub = runs_of(runs, claim)
    missing = [b for b in by if b not in sub]
    if missing:
        raise ClaimError(f"by: no column {missing[0]!r} in the runs")
    n_div = int((sub["status"] != "converged").sum()) if "status" in sub else 0
    sub = sub[sub["status"] == "converged"] if "status" in sub else sub
    ids = sub["run_id"].astype(str).tolist()
    labels = run_labels(sub)
    got = {k: _curve_table(curves, ids, k) for k in dict.fromkeys([metric, loss] + ([also] if also else []))}
    rows = []
    for _, r in sub.iterrows():
        rid = str(r["run_id"])
        a, L = got[metric].get(rid), got[loss].get(rid)
        if a is None or L is None or np.isfinite(a.to_numpy(float)).sum() < 2:
            continue
        row = {"run_id": rid, "loss": labels[rid], **{b: r[b] for b in by}, **run_row(a, L, sign, tol, min_fall)}
        c = got[also].get(rid) if also else None
        if c is not None and np.isfinite(c.to_numpy(float)).any():
            lo, end = float(np.nanmin(c.to_numpy(float))), _at(c, int(c.index.max()))
            row.update({f"{also} at t*": _at(c, row["t_star"]), f"{also} min": lo, f"{also} final": end,
                        f"{also} rose": bool(end > (1 + min_fall) * lo)})
        rows.append(row)
    t = pd.DataFrame(rows)
    if t.empty:
        raise ClaimError(f"no run{_where_text(claim)} has curves of {metric} and {loss} with two or more points")
    t = t.rename(columns={c: c.replace("metric", metric, 1).replace("loss", loss, 1) for c in
                          ("metric at t*", "metric best", "metric final", "loss at t*", "loss final")})
    n, k = len(t), int(t["keeps_falling"].sum())
    lo, hi = clopper_pearson(k, n)
    per = "; ".join(f"{name} {int(g['keeps_falling'].sum())}/{len(g)} (median fall {g['fall'].median():.0%}, "
                    f"median t* {g['t_star'].median():g})" for name, g in t.groupby("loss", sort=True))
    for b in by:
        per += f"; by {b}: " + ", ".join(f"{value_text(v)} {int(g['keeps_falling'].sum())}/{len(g)}"
                                        for v, g in t.groupby(b, sort=True))
    worse = int((t["change from best"] < -tol).sum())
    desc = (f"After {metric} stopped improving by more than {tol:g} (step t*), {loss} fell by at least "
            f"{min_fall:.0%} more in {k} of {n} runs{_where_text(claim)}: {k / n:.0%}, 95% CI [{lo:.0%}, {hi:.0%}]; "
            f"per loss: {per}. {metric} ended more than {tol:g} worse than its best in {worse} of {n} runs")
    if f"{also} rose" in t:
        rose = t[f"{also} rose"].dropna()
        desc += (f"; {also} ended more than {min_fall:.0%} above its minimum in {int(rose.sum())} of {len(rose)} "
                 f"(median final/min {np.nanmedian(t[f'{also} final'] / t[f'{also} min']):.2f})")
    desc += f"; {n_div} diverged runs left out" if n_div else ""
    number = f"{k}/{n} runs ({k / n:.0%}, CI [{lo:.0%}, {hi:.0%}]) vs share {share:.0%}"
    if lo > share:
        return Verdict(HOLDS, f"{desc}. The loss keeps falling after the metric stops in most runs: the CI lies "
                              f"above {share:.0%}.", t, number)
    if hi < share:
        return Verdict(FAILS, f"{desc}. In most runs the loss stops with the metric: the CI lies below {share:.0%}.",
                       t, number)
    return Verdict(UNSURE, f"{desc}. The CI includes {share:.0%}, so neither is established.", t, number)


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> the report's series name of the run (aggregate.line_label: the loss and its own
    varying options), as the figures name it."""
    from harness.report.aggregate import line_label, roles

    if LOSS not in runs:
        return {str(rid): "runs" for rid in runs["run_id"]}
    line = roles(runs).line
    return {str(row["run_id"]): line_label(row, line) for _, row in runs.iterrows()}
