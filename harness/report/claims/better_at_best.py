"""better_at_best: one series, at its own best setting, beats another at its own best setting.

    metric: support_f1, select_by: test/rmse (default: metric), over: regularization.weight,
    better: entry, worse: entry, by: dataset.n_train (optional), at: [levels of by] (default: all)

An entry is a loss name or a mapping of params ({regularization.kind: l1}; claims.series).
Per level of `by` and per entry, the setting of `over` whose mean `select_by` over seeds is
best (lowest RMSE: what a validation split would pick); then the two entries at their chosen
settings are compared on `metric`, paired by seed (stats.paired_difference: the mean over seeds
of s (better - worse), s = +1 when higher is better, with its 95% t interval). Holds when the CI
lies above 0 at every level of `at`; does not hold when it lies below 0 at some level;
inconclusive otherwise (with fewer than two paired seeds, also). Every level of `by` is in the
table; those outside `at` are shown, not judged. Choosing each side's setting on
the test runs themselves is an oracle choice, the same for both sides. Example (L1 finds the
true support, L2 does not, each at the weight that predicts best):

    - id: l1_recovers_support
      check: better_at_best
      metric: support_f1
      select_by: test/rmse
      over: regularization.weight
      by: dataset.n_train
      at: [100, 250]
      better: {regularization.kind: l1}
      worse: {regularization.kind: l2}
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.metric_table import higher_is_better
from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _prepare,
                                   _where_text, register, series)
from harness.report.claims.stats import paired_difference

METHOD = ("Better at best: per level, each side at the setting with its best mean selection metric over seeds, "
          "then the mean paired difference of the compared metric (same seeds) with its 95% t interval above 0.")


def entry_label(entry) -> str:
    """{regularization.kind: l1} -> `l1`; {loss.name: huber, loss.delta: 0.5} -> `huber, delta=0.5`."""
    if not isinstance(entry, dict):
        return str(entry)
    return ", ".join(str(v) if isinstance(v, str) else f"{k.split('.', 1)[-1]}={v:g}" for k, v in entry.items())


def chosen(r: pd.DataFrame, over: str, select_by: str, higher: bool) -> tuple[float, pd.DataFrame]:
    """The value of `over` with the best mean `select_by` among these runs, and its runs."""
    ov = pd.to_numeric(r[over], errors="coerce").astype(float)
    y = pd.to_numeric(r[select_by], errors="coerce").astype(float)
    means = y[np.isfinite(y)].groupby(ov[np.isfinite(y)]).mean()
    if means.empty:
        raise ClaimError(f"better_at_best: no finite {select_by} to choose {over} by")
    best = float(means.idxmax() if higher else means.idxmin())
    return best, r[np.isclose(ov, best)]


@register("better_at_best", method=METHOD)
def better_at_best(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: is `better`, at its best `over` setting, better on `metric` than `worse`
    at its own, at each level of `by` in `at`?"""
    metric, over, by = claim.get("metric"), claim.get("over"), claim.get("by")
    select_by = claim.get("select_by", metric)
    if claim.get("better") is None or claim.get("worse") is None or not over:
        raise ClaimError("better_at_best needs `better`, `worse` (one entry each) and `over` (the setting to choose)")
    sub = _prepare(runs, claim, need_x=False)
    for col, key in ((over, "over"), (select_by, "select_by"), *(((by, "by"),) if by else ())):
        if col not in sub:
            raise ClaimError(f"{key}: no column {col!r} in the runs")
    higher = _direction(claim)
    sel_higher = higher if select_by == metric else higher_is_better(str(select_by))
    if sel_higher is None:
        raise ClaimError(f"select_by: {select_by!r} has no known direction")
    if by:
        lv = pd.to_numeric(sub[by], errors="coerce").astype(float)
        have = np.sort(lv.dropna().unique())
        at = [float(v) for v in _as_list(claim.get("at"))] or [float(v) for v in have]
        shown = [float(v) for v in have]          # every level is in the table; `at` ones are judged
        missing = [v for v in at if not np.isclose(have, v).any()]
        if missing:
            raise ClaimError(f"at: no runs at {by}={', '.join(f'{v:g}' for v in missing)} "
                             f"(values: {', '.join(f'{v:g}' for v in have)})")
    else:
        lv, at = pd.Series(0.0, index=sub.index), [0.0]
        shown = at
    names = [entry_label(claim["better"]), entry_label(claim["worse"])]
    rows, verdicts = [], []
    for v in shown:
        level = sub[np.isclose(lv, v)]
        side = []
        for entry in (claim["better"], claim["worse"]):
            _, r = series(level, entry)
            side.append(chosen(r, over, select_by, sel_higher))
        (xa, a), (xb, b) = side
        d = paired_difference(metric, a, b, higher)
        ma, mb = (float(pd.to_numeric(q[metric], errors="coerce").mean()) for q in (a, b))
        row = dict(level=v if by else np.nan, better=names[0], better_at=xa, better_mean=ma, worse=names[1],
                   worse_at=xb, worse_mean=mb, diff=np.nan, ci_lo=np.nan, ci_hi=np.nan, n_pairs=0)
        if d is not None:
            row.update(diff=d["mean"], ci_lo=d["ci_lo"], ci_hi=d["ci_hi"], n_pairs=d["n"])
        rows.append(row)
        judged = bool(np.isclose(at, v).any())
        verdicts.append((HOLDS if row["ci_lo"] > 0 else FAILS if row["ci_hi"] < 0 else UNSURE) if judged else "")
    everything = pd.DataFrame(rows).assign(verdict=verdicts)
    if not by:
        everything = everything.drop(columns="level")
    t = everything[everything["verdict"] != ""]
    verdicts = [v for v in verdicts if v]
    lvl = (lambda r: f"{by}={r.level:g}: ") if by else (lambda r: "")
    parts = [f"{lvl(r)}{r.better} at {over}={r.better_at:g} {r.better_mean:.3g} vs {r.worse} at {over}={r.worse_at:g} "
             f"{r.worse_mean:.3g}, paired difference {r.diff:+.3g} [{r.ci_lo:+.3g}, {r.ci_hi:+.3g}] ({r.n_pairs} seeds)"
             + ("" if r.verdict else ", not judged") for r in everything.itertuples()]
    desc = (f"Mean {metric} ({'higher' if higher else 'lower'} is better){_where_text(claim)}, each side at the "
            f"{over} with its best mean {select_by}: " + "; ".join(parts))
    worst = t.loc[t["diff"].fillna(-np.inf).idxmin()]
    number = f"{lvl(worst)}{worst['diff']:+.3g} [{worst.ci_lo:+.3g}, {worst.ci_hi:+.3g}]"
    if all(v == HOLDS for v in verdicts):
        return Verdict(HOLDS, f"{desc}. {names[0]} better than {names[1]} at every level, the paired CIs above 0.", everything,
                       number=number)
    if FAILS in verdicts:
        where = ", ".join(lvl(r).rstrip(": ") or "here" for r in t.itertuples() if r.verdict == FAILS)
        return Verdict(FAILS, f"{desc}. Reversed, the paired CI below 0: {where}.", everything, number=number)
    return Verdict(UNSURE, f"{desc}. The paired CI includes 0 (or fewer than two seeds pair) at some level, so "
                           f"{names[0]} better than {names[1]} is not established.", everything, number=number)
