"""better_than: some losses are better than others at given x values.

    better: loss or [losses], worse: loss or [losses], at: value | [values] (x values; default:
    every x value, or all runs when there is no x)

Holds when, at every x value of `at`, every `better` loss is better than every `worse` loss:
the mean over seeds of their paired difference (runs of one seed share the data, outliers and
init; stats.paired_difference) has a 95% t interval above 0; where the two sides do not have
the same seeds, one run each, their means' 95% intervals must lie apart instead (each mean's
interval within the metric's bounds: stats.mean_interval). Does not
hold when some `worse` loss is better in that sense at some x value; inconclusive otherwise.
Example (classification under label noise):

    - id: gce_beats_ce_under_noise
      check: better_than
      metric: test/accuracy
      x: outliers.ratio
      at: [0.2, 0.4]
      where: {outliers.kind: symmetric}
      better: gce
      worse: cross_entropy
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _names,
                                   _prepare, _where_text, register, series, series_label, variants)
from harness.metric_table import metric as metric_info
from harness.report.claims.stats import mean_interval, paired_difference

METHOD = ("Comparisons at each x value: the mean over seeds of the paired difference (runs with the "
          "same seed share data, outliers and init), with its 95% t interval; where seeds do not pair, "
          "the two means' 95% intervals (a bootstrap for bounded metrics, within their bounds) must lie apart.")


@register("better_than", method=METHOD)
def better_than(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: is every `better` loss's mean clearly better than every `worse`
    loss's (95% t intervals apart) at each x value of `at`?"""
    better, worse = _as_list(claim.get("better")), _as_list(claim.get("worse"))
    if not better or not worse:
        raise ClaimError("better_than needs `better` and `worse` losses")
    metric, x = claim.get("metric"), claim.get("x")
    if claim.get("at") is not None and x is None:
        raise ClaimError("better_than: `at` needs `x`, the param its values belong to")
    sub = _prepare(runs, claim, need_x=False)
    better, worse = variants(sub, better), variants(sub, worse)
    higher = _direction(claim)
    bounds = metric_info(str(metric)).bounds
    if x is not None:
        xs = np.sort(pd.to_numeric(sub[x], errors="coerce").dropna().unique())
        at = [float(v) for v in _as_list(claim.get("at"))] or [float(v) for v in xs]
        missing = [v for v in at if not np.isclose(xs, v).any()]
        if missing:
            raise ClaimError(f"at: no runs at {x}={', '.join(f'{v:g}' for v in missing)} "
                             f"(values: {', '.join(f'{v:g}' for v in xs)})")
    else:
        at = [np.nan]
    rows, runs_at = [], {}
    for role, entries in (("better", better), ("worse", worse)):
        for entry in entries:
            label, r = series(sub, entry)
            for v in at:
                rv = r if x is None else r[np.isclose(pd.to_numeric(r[x], errors="coerce").astype(float), v)]
                runs_at[(label, v)] = rv
                y = rv[metric].to_numpy(float)
                ok = np.isfinite(y)
                n, mean = int(ok.sum()), float(y[ok].mean()) if ok.any() else np.nan
                lo, hi = mean_interval(y[ok], bounds)      # within the metric's bounds
                rows.append(dict(loss=label, role=role, at=v, n=n, n_dropped=int((~ok).sum()), mean=mean,
                                 ci_lo=lo, ci_hi=hi))
    t = pd.DataFrame(rows)
    if x is None:
        t = t.drop(columns="at")
    thin = t.loc[t["n"] < 2, "loss"].unique().tolist()
    where_at = (lambda v: f" at {x}={v:g}") if x is not None else (lambda v: "")
    parts = []
    for v in at:
        tv = t if x is None else t[t["at"] == v]
        parts.append(where_at(v).strip() + (": " if x is not None else "")
                     + "; ".join(f"{r.loss} {r.mean:.4g} [{r.ci_lo:.4g}, {r.ci_hi:.4g}]" for r in tv.itertuples()))
    dropped = int(t["n_dropped"].sum())
    desc = (f"Mean {metric} ({'higher' if higher else 'lower'} is better){_where_text(claim)}, 95% CI over seeds: "
            + " | ".join(parts) + (f"; {dropped} runs without a finite value left out" if dropped else ""))
    if thin:
        return Verdict(UNSURE, f"{desc}. {_names(thin)}: fewer than 2 runs with a finite value at some x value, "
                               f"so no interval.", t)
    key = lambda r: (r.ci_lo, r.ci_hi) if higher else (-r.ci_hi, -r.ci_lo)   # (worst, best) end, as "goodness"
    won, lost, diffs = [], [], []
    for v in at:
        tv = t if x is None else t[t["at"] == v]
        b_rows, w_rows = tv[tv["role"] == "better"], tv[tv["role"] == "worse"]
        for a in b_rows.itertuples():
            for b in w_rows.itertuples():
                d = paired_difference(metric, runs_at[(a.loss, v)], runs_at[(b.loss, v)], higher)
                if d is not None:   # the same seeds on both sides: the CI of the mean paired difference
                    diffs.append(dict(loss=f"{a.loss} - {b.loss}", role="paired difference", at=v, **d))
                    won.append(d["ci_lo"] > 0)
                    if d["ci_hi"] < 0:
                        lost.append(f"{b.loss} over {a.loss}{where_at(v)}")
                    continue
                (a_lo, a_hi), (b_lo, b_hi) = key(a), key(b)
                won.append(a_lo > b_hi)
                if b_lo > a_hi:
                    lost.append(f"{b.loss} over {a.loss}{where_at(v)}")
    names = f"{_names([series_label(e) for e in better])} better than {_names([series_label(e) for e in worse])}"
    how = "the intervals apart"
    if diffs:
        shown = "; ".join(f"{d['loss']}{where_at(d['at'])} {d['mean']:+.4g} [{d['ci_lo']:+.4g}, {d['ci_hi']:+.4g}]"
                          for d in diffs)
        desc += (f". Paired by seed (same data, outliers and init on both sides), the mean improvement "
                 f"(positive: the first is better) with its 95% CI: {shown}")
        t = pd.concat([t, pd.DataFrame(diffs).reindex(columns=t.columns)], ignore_index=True)
        how = ("the paired differences' CIs above 0" if len(diffs) == len(won)
               else "the paired CIs above 0, or the intervals apart where seeds do not pair")
    if all(won):
        every = " at every x value compared" if x is not None and len(at) > 1 else ""
        return Verdict(HOLDS, f"{desc}. {names}{every}, with {how}.", t)
    if lost:
        return Verdict(FAILS, f"{desc}. Reversed, with {how.replace('above', 'below')}: {'; '.join(lost)}.", t)
    return Verdict(UNSURE, f"{desc}. The intervals include no difference for at least one pair, "
                           f"so {names} is not established.", t)
