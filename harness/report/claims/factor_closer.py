"""factor_closer: one series ends at least `factor` times better than another, at each x value.

    baseline: entry | [entries], closer: entry | [entries], factor (default 10), at: value |
    [values] (x values; default: every x value; no x: all runs at once), average: mean |
    geometric (default mean), by: [params] (decided per group, e.g. per data set)

Entries are series of settings ({optimizer.schedule: cosine}, {optimizer.name: adam}) or losses.
For each group, x value of `at` and pair (b in baseline, c in closer), with A the average
(`mean`: arithmetic; `geometric`: exp of the mean log, for a metric whose runs spread over
decades, where one seed would set an arithmetic mean) of the runs' metric:

    R = A(b) / A(c)       for a metric where lower is better (a distance: c is R times closer)
    R = A(c) / A(b)       where higher is better

Its 95% CI is a percentile bootstrap (B = 2000, fixed seed): where both sides have one run per
seed and the same seeds (the runs of a seed share the data and the init), seeds are resampled
jointly, so the CI is that of a paired ratio; otherwise each side is resampled on its own.
Holds when every ratio's CI lies above `factor`; does not hold when some ratio's CI lies below
it; inconclusive otherwise, and when a side has fewer than 2 runs with a value (geometric: > 0).
Example (a decaying step size ends >= 10x closer to the optimum than a constant one):

    - id: decay_ten_times_closer
      check: factor_closer
      metric: opt/distance
      x: optimizer.lr
      at: [0.1, 0.2]
      where: {optimizer.name: gd}
      by: [dataset.name]
      baseline: {optimizer.schedule: constant}
      closer: [{optimizer.schedule: cosine}, {optimizer.schedule: step}]
      factor: 10
      average: geometric
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _prepare,
                                   _where_text, register, series)
from harness.report.claims.settings import groups, label, numeric
from harness.report.series import SEED

N_BOOT = 2000
AVERAGES = ("mean", "geometric")
METHOD = ("Factors are ratios of the two series' average metric at each x value (the better one in the "
          "denominator), 95% CIs from a bootstrap over seeds, paired where both sides ran the same seeds.")


def _average(y: np.ndarray, how: str, axis: int = -1) -> np.ndarray:
    return np.exp(np.log(y).mean(axis=axis)) if how == "geometric" else y.mean(axis=axis)


def ratio_ci(a: pd.DataFrame, b: pd.DataFrame, metric: str, how: str, n_boot: int = N_BOOT,
             seed: int = 0) -> dict:
    """R = A(a) / A(b) of the module doc (a: the farther side) with its bootstrap CI; `paired`
    says whether seeds were resampled jointly. NaN where a side has fewer than 2 values."""
    ya, yb = numeric(a[metric]).to_numpy(), numeric(b[metric]).to_numpy()
    oka, okb = np.isfinite(ya), np.isfinite(yb)
    if how == "geometric":
        oka, okb = oka & (ya > 0), okb & (yb > 0)
    out = dict(n_baseline=int(oka.sum()), n_closer=int(okb.sum()), n_dropped=int((~oka).sum() + (~okb).sum()))
    if oka.sum() < 2 or okb.sum() < 2:
        return {**out, "ratio": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "paired": False}
    ratio = float(_average(ya[oka], how) / _average(yb[okb], how))
    rng = np.random.default_rng(seed)
    sa, sb = (a[SEED].to_numpy()[oka], b[SEED].to_numpy()[okb]) if SEED in a and SEED in b else (None, None)
    paired = (sa is not None and len(set(sa)) == len(sa) and len(set(sb)) == len(sb) and set(sa) == set(sb))
    if paired:
        order = np.argsort(sb)[np.searchsorted(np.sort(sb), sa)]   # b's run of each of a's seeds
        pa, pb = ya[oka], yb[okb][order]
        idx = rng.integers(0, len(pa), size=(n_boot, len(pa)))
        boot = _average(pa[idx], how) / _average(pb[idx], how)
    else:
        va, vb = ya[oka], yb[okb]
        boot = (_average(va[rng.integers(0, len(va), size=(n_boot, len(va)))], how)
                / _average(vb[rng.integers(0, len(vb), size=(n_boot, len(vb)))], how))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {**out, "ratio": ratio, "ci_lo": float(lo), "ci_hi": float(hi), "paired": bool(paired)}


@register("factor_closer", method=METHOD)
def factor_closer(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: is every `closer` series at least `factor` times better than every
    `baseline` series, with the ratio's 95% CI above the factor, at each x value of `at`?"""
    base, closer = _as_list(claim.get("baseline")), _as_list(claim.get("closer"))
    if not base or not closer:
        raise ClaimError("factor_closer needs `baseline` and `closer` series")
    how = str(claim.get("average", "mean"))
    if how not in AVERAGES:
        raise ClaimError(f"average: {how!r}; one of {', '.join(AVERAGES)}")
    try:
        factor = float(claim.get("factor", 10))
    except (TypeError, ValueError):
        raise ClaimError(f"factor: {claim.get('factor')!r} is not a number") from None
    if not factor > 0:
        raise ClaimError(f"factor: {factor:g}; a ratio > 0")
    metric, x = claim.get("metric"), claim.get("x")
    if claim.get("at") is not None and x is None:
        raise ClaimError("factor_closer: `at` needs `x`, the param its values belong to")
    sub = _prepare(runs, claim, need_x=False)
    higher = _direction(claim)
    rows = []
    for group, g in groups(sub, claim):
        xs = np.sort(numeric(g[x]).dropna().unique()) if x is not None else np.array([np.nan])
        at = [float(v) for v in _as_list(claim.get("at"))] or [float(v) for v in xs]
        missing = [v for v in at if x is not None and not np.isclose(xs, v).any()]
        if missing:
            raise ClaimError(f"at: no runs at {x}={', '.join(f'{v:g}' for v in missing)}"
                             f"{' in ' + group if group else ''} (values: {', '.join(f'{v:g}' for v in xs)})")
        for b in base:
            _, rb = series(g, b)
            for c in closer:
                _, rc = series(g, c)
                for v in at:
                    pick = (lambda r: r) if x is None else (lambda r: r[np.isclose(numeric(r[x]), v)])
                    far, near = (pick(rc), pick(rb)) if higher else (pick(rb), pick(rc))
                    rows.append(dict(group=group, at=v, baseline=label(b), closer=label(c),
                                     **ratio_ci(far, near, metric, how)))
    t = pd.DataFrame(rows)
    if x is None:
        t = t.drop(columns="at")
    word = "geometric-mean" if how == "geometric" else "mean"
    where_at = lambda r: (f" at {x}={r.at:g}" if x is not None else "") + (f" ({r.group})" if r.group else "")
    parts = [f"{r.baseline}/{r.closer}{where_at(r)} {r.ratio:.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]"
             for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    sense = "higher" if higher else "lower"
    desc = (f"Factor by which each closer series beats its baseline in {word} {claim.get('metric')} ({sense} is "
            f"better){_where_text(claim)}, 95% CI: " + "; ".join(parts)
            + (f"; {dropped} runs without a usable value left out" if dropped else ""))
    worst = t.loc[t["ci_lo"].idxmin()] if t["ci_lo"].notna().any() else None
    number = (f"smallest factor {t['ratio'].min():.3g} (lowest CI end {worst['ci_lo']:.3g}) vs {factor:g}"
              if worst is not None else "")
    if t["ratio"].isna().any():
        return Verdict(UNSURE, f"{desc}. Some side has fewer than 2 runs with a value, so no interval.", t, number)
    if (t["ci_lo"] > factor).all():
        return Verdict(HOLDS, f"{desc}. Every factor's CI lies above {factor:g}.", t, number)
    below = t[t["ci_hi"] < factor]
    if len(below):
        bad = "; ".join(f"{r.baseline}/{r.closer}{where_at(r)}" for r in below.itertuples())
        return Verdict(FAILS, f"{desc}. Below {factor:g}, CI and all: {bad}.", t, number)
    return Verdict(UNSURE, f"{desc}. Some factor's CI includes {factor:g}, so the factor is not established.",
                   t, number)
