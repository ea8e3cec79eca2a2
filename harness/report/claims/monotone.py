"""monotone: a quantity rises (or falls) with x over a range, on every data group.

    metric: a final metric (opt/gap, test/rmse, ...) or train/steps_to_target (from the train/loss
            curves: harness/report/lr.py; `fraction`, default 0.01)
    x: optimizer.lr, range: [lo, hi], direction: increasing | decreasing,
    losses: [losses], x_unit: edge (range in units of lr*) | as_is (default),
    log: true (default; compare log y, positive values), floor: number (values below it are
    taken as the floor: float rounding, e.g. 1e-12 for an objective gap),
    per: scenario (default) | seed

Per series (loss entry) and scenario (the varying params other than x, the seed and the loss:
the data set and its options), over the levels x_1 < ... < x_m of x inside the range (m >= 2),
with z = log y (or y). Runs of one seed share the data and init, so a seed is one replicate of
the whole curve z(x).

per: scenario -- the seeds as replicates of a noisy quantity (MAE's gap, which depends on where
its oscillation stops):

  trend    each seed's least-squares slope of z on log x (on x where a level is <= 0); the mean
           of the seeds' slopes with its 95% t interval (stats.t_ci95; two seeds or more)
  steps    for each consecutive pair, the mean over seeds of the paired change s (z_{j+1} - z_j)
           (s = +1 increasing, -1 decreasing) with a t interval at the simultaneous level 95%
           over the m - 1 pairs (Bonferroni: each at 1 - 0.05 / (m - 1)), so that one noisy pair
           among many does not count as a reversal

  A series holds when its slope's CI lies on the claimed side of 0 and no step's interval lies
  wholly on the other side; it does not hold when the slope's CI lies on the other side or some
  step is a clear reversal (the text names where); inconclusive otherwise.

per: seed -- each seed's curve on its own, exactly: for a deterministic quantity of the data
(full-batch GD's steps to a target are a fact of one training set), every curve must move in
the claimed direction at every step, s (z_{j+1} - z_j) > 0. A curve does not hold when some
step goes the other way, is inconclusive when a step is flat, and holds otherwise; a step
between two runs that never reached the target (both past the budget) is not held against it.

The claim holds when every (series, scenario) -- or curve -- holds, does not hold when any does
not, and is inconclusive otherwise.

Steps to target: a run that never reaches the target within train.steps (censored) enters at
the step budget, a lower bound (counted in the text); that is conservative for a claim whose
slow end it sits at; diverged runs have no value and are left out (counted).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _where_text, register,
                                   select, series, variants)
from harness.report.claims.stats import t_ci95
from harness.report.lr import CENSORED, STEPS, edge_units, scenario_keys, scenario_label, with_steps
from harness.report.series import SEED

METHOD = ("Monotone trends: per series and data set, the slope of (log) y on log x over the range, the mean of "
          "the seeds' own slopes with a 95% t interval, and each step between neighbouring x values as the mean "
          "paired change over seeds with a Bonferroni-adjusted t interval (95% over the steps); holds when the "
          "slope is clearly of the claimed sign and no step clearly reverses it (per: seed -- every seed's curve "
          "must move the claimed way at every step).")


def seed_slope(lx: np.ndarray, z: pd.DataFrame) -> tuple[float, float, float, int]:
    """Mean over seeds of each seed's least-squares slope of z on lx (z: levels x seeds, NaN
    where a run has no value; a seed needs two levels), its 95% t interval and the seeds used."""
    slopes = []
    for col in z.columns:
        v = z[col].to_numpy(float)
        ok = np.isfinite(v)
        if ok.sum() >= 2:
            xs, ys = lx[ok], v[ok]
            slopes.append(float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum()))
    n = len(slopes)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(np.mean(slopes))
    half = float(t_ci95(float(np.std(slopes, ddof=1)), n)) if n >= 2 else np.nan
    return mean, mean - half, mean + half, n


def paired_steps(levels: np.ndarray, z: pd.DataFrame, sign: float) -> pd.DataFrame:
    """Consecutive paired changes s (z_{j+1} - z_j) over seeds (z: levels x seeds), each with its
    Bonferroni-adjusted t interval (module doc)."""
    m, rows = len(levels), []
    for j in range(m - 1):
        d = (sign * (z.iloc[j + 1] - z.iloc[j])).dropna().to_numpy(float)
        n = len(d)
        mean = float(d.mean()) if n else np.nan
        half = float(student_t.ppf(1 - 0.025 / (m - 1), n - 1) * d.std(ddof=1) / np.sqrt(n)) if n >= 2 else np.nan
        rows.append(dict(x_from=float(levels[j]), x_to=float(levels[j + 1]), n=n, change=mean, lo=mean - half,
                         hi=mean + half))
    return pd.DataFrame(rows)


def _select(runs: pd.DataFrame, claim: dict, curves) -> tuple[pd.DataFrame, str]:
    """The claim's runs inside its range (with steps_to_target computed when asked for) and the
    range in words."""
    metric, x = claim.get("metric"), claim.get("x", "optimizer.lr")
    rng = _as_list(claim.get("range"))
    if len(rng) != 2 or rng[0] >= rng[1]:
        raise ClaimError("monotone needs `range: [lo, hi]`, lo < hi")
    lo, hi = map(float, rng)
    if x not in runs:
        raise ClaimError(f"x: no column {x!r} in the runs")
    sub = select(runs, claim.get("where"))
    if sub.empty:
        raise ClaimError(f"no runs{_where_text(claim)} in this sweep")
    if metric == STEPS:
        try:
            sub = with_steps(sub, curves, float(claim.get("fraction", 0.01)))
        except ValueError as e:
            raise ClaimError(f"steps_to_target: {e}") from None
    elif metric not in sub:
        raise ClaimError(f"metric: no column {metric!r} in the runs")
    unit = claim.get("x_unit", "as_is")
    if unit not in ("edge", "as_is"):
        raise ClaimError(f"x_unit {unit!r}: edge or as_is")
    u = edge_units(sub, x) if unit == "edge" else pd.to_numeric(sub[x], errors="coerce").astype(float)
    span = f"[{lo:g}, {hi:g}]{' x lr*' if unit == 'edge' else ''}"
    sub = sub[(u >= lo * (1 - 1e-9)) & (u <= hi * (1 + 1e-9))]
    if sub.empty:
        raise ClaimError(f"no runs with {x} in {span}{_where_text(claim)}")
    return sub, span


@register("monotone", method=METHOD, curves=True)
def monotone(runs: pd.DataFrame, claim: dict, curves) -> Verdict:
    """See the module doc: does the metric move in `direction` with x over `range` everywhere?"""
    metric, x, direction = claim.get("metric"), claim.get("x", "optimizer.lr"), claim.get("direction")
    if direction not in ("increasing", "decreasing"):
        raise ClaimError("monotone needs `direction: increasing | decreasing`")
    per = claim.get("per", "scenario")
    if per not in ("scenario", "seed"):
        raise ClaimError(f"per {per!r}: scenario or seed")
    sign, log, floor = (1.0 if direction == "increasing" else -1.0), bool(claim.get("log", True)), claim.get("floor")
    sub, span = _select(runs, claim, curves)
    keys = scenario_keys(sub, x)
    rows, n_div, n_cens = [], 0, 0
    for entry in variants(sub, _as_list(claim.get("losses"))) or [None]:
        label, r = series(sub, entry) if entry is not None else ("all runs", sub)
        y = pd.to_numeric(r[metric], errors="coerce").astype(float)
        if floor is not None:
            y = y.where(~(y < float(floor)), float(floor))
        r = r.assign(_x=pd.to_numeric(r[x], errors="coerce").astype(float), _y=y, _z=np.log(y.where(y > 0)) if log else y,
                     _c=r[CENSORED].astype(bool) if CENSORED in r else False)
        for _, g in (r.groupby(keys, dropna=False, sort=True) if keys else [((), r)]):
            group = scenario_label(g.iloc[0], keys)
            n_div += int(g["status"].astype(str).eq("diverged").sum()) if "status" in g else 0
            n_cens += int(g["_c"].sum())
            ok = g[np.isfinite(g["_z"])]
            levels = np.sort(ok["_x"].unique())
            if len(levels) < 2:
                raise ClaimError(f"{label}, {group}: finite {metric} at fewer than two values of {x} in {span}")
            col = SEED if SEED in ok else "run_id"
            z = ok.pivot_table(index="_x", columns=col, values="_z", aggfunc="mean").reindex(levels)
            if per == "seed":
                c = ok.pivot_table(index="_x", columns=col, values="_c", aggfunc="max").reindex(levels)
                yv = ok.pivot_table(index="_x", columns=col, values="_y", aggfunc="mean").reindex(levels)
                rows += [dict(loss=label, group=group, **_curve(levels, z[s], c[s], yv[s], sign), seed=s) for s in z.columns]
            else:
                rows.append(dict(loss=label, group=group, **_replicates(levels, z, sign),
                                 medians=", ".join(f"{lv:g}: {v:.3g}" for lv, v in ok.groupby("_x")["_y"].median().items())))
    t = pd.DataFrame(rows)
    notes = [f"{n_div} diverged runs left out" if n_div else "",
             f"{n_cens} runs that never reached the target counted at the step budget (a lower bound)" if n_cens else ""]
    note = "; ".join(n for n in notes if n)
    note = f" ({note})" if note else ""
    return (_verdict_per_seed if per == "seed" else _verdict)(t, claim, metric, x, span, sign, log, note)


def _replicates(levels: np.ndarray, z: pd.DataFrame, sign: float) -> dict:
    """per: scenario -- the seeds' mean slope with its t interval and the clear reversals."""
    b, lo, hi, n = seed_slope(np.log(levels) if (levels > 0).all() else levels, z)
    if n < 2:
        raise ClaimError("fewer than two seeds with values at two or more x values, so no interval for the slope "
                         "(per: seed checks each seed's curve instead)")
    st = paired_steps(levels, z, sign)
    against = st[st["hi"] < 0]
    s_lo, s_hi = sorted((sign * lo, sign * hi))
    v = HOLDS if s_lo > 0 and against.empty else FAILS if s_hi < 0 or len(against) else UNSURE
    rev = [f"{a.x_from:g} -> {a.x_to:g} ({sign * a.change:+.3g})" for a in against.itertuples()]
    return dict(slope=b, ci_lo=lo, ci_hi=hi, n_seeds=n, levels=len(levels), other_sign=bool(s_hi < 0),
                reversals="; ".join(rev), verdict=v)


def _curve(levels: np.ndarray, z: pd.Series, cens: pd.Series, y: pd.Series, sign: float) -> dict:
    """per: seed -- one seed's curve: its values and the steps against, flat, or both censored."""
    ok = z.notna().to_numpy()
    lv, zv, cv, yv = levels[ok], z.to_numpy(float)[ok], cens.fillna(False).to_numpy(bool)[ok], y.to_numpy(float)[ok]
    against, flat = [], []
    for j in range(len(lv) - 1):
        d = sign * (zv[j + 1] - zv[j])
        if cv[j] and cv[j + 1]:
            continue                                   # both past the budget: no order known, none against
        if d < 0:
            against.append(f"{lv[j]:g} -> {lv[j + 1]:g}")
        elif d == 0:
            flat.append(f"{lv[j]:g} -> {lv[j + 1]:g}")
    v = FAILS if against else UNSURE if flat or len(lv) < 2 else HOLDS
    values = ", ".join(f"{'>=' if c else ''}{v_:.3g}" for v_, c in zip(yv, cv))
    return dict(values=values, levels=len(lv), against="; ".join(against), flat="; ".join(flat), verdict=v)


def _verdict(t, claim, metric, x, span, sign, log, note) -> Verdict:
    what = f"{'log ' if log else ''}{metric} on log {x}"
    per = "; ".join(f"{r.loss}, {r.group}: slope {r.slope:.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]; medians {r.medians}"
                    for r in t.itertuples())
    desc = (f"Slope of {what}{_where_text(claim)} over {span}, mean of the seeds' slopes with its 95% t interval, and "
            f"the median per x: {per}{note}")
    word = "rising" if sign > 0 else "falling"
    n_ok, n_bad = int((t["verdict"] == HOLDS).sum()), int((t["verdict"] == FAILS).sum())
    number = f"{n_ok}/{len(t)} {word}; slopes {', '.join(f'{v:.2g}' for v in t['slope'])}"
    if n_bad:
        why = []
        for r in t[t["verdict"] == FAILS].itertuples():
            parts = (["slope of the other sign"] if r.other_sign else []) + (
                [f"clear reversals between neighbouring x values (change of {'log ' if log else ''}y) at {r.reversals}"]
                if r.reversals else [])
            why.append(f"{r.loss}, {r.group}: {'; '.join(parts)}")
        return Verdict(FAILS, f"{desc}. Not {word} throughout in {n_bad} of {len(t)}: {' | '.join(why)}.", t, number)
    if n_ok == len(t):
        return Verdict(HOLDS, f"{desc}. {word.capitalize()} in all {len(t)}: every slope's CI on that side of 0 and no "
                              f"step between neighbouring x values clearly reversed.", t, number)
    unsure = ", ".join(f"{r.loss}, {r.group}" for r in t[t["verdict"] == UNSURE].itertuples())
    return Verdict(UNSURE, f"{desc}. The slope's CI includes 0 for {unsure}, so the trend is not established there.",
                   t, number)


def _verdict_per_seed(t, claim, metric, x, span, sign, log, note) -> Verdict:
    word = "rising" if sign > 0 else "falling"
    per = "; ".join(f"{r.loss}, {r.group}, seed {r.seed}: {r.values}" for r in t.itertuples())
    desc = f"{metric} at each {x} in {span}{_where_text(claim)}, per seed (>=: not reached within the budget): {per}{note}"
    n_ok, n_bad = int((t["verdict"] == HOLDS).sum()), int((t["verdict"] == FAILS).sum())
    number = f"{n_ok}/{len(t)} curves {word}"
    if n_bad:
        bad = t[t["verdict"] == FAILS]
        why = " | ".join(f"{r.loss}, {r.group}, seed {r.seed}: " + "; ".join(r.against.split("; ")[:3])
                         + (" ..." if r.against.count(";") >= 3 else "") for r in bad.head(6).itertuples())
        why += f" | and {len(bad) - 6} more" if len(bad) > 6 else ""
        return Verdict(FAILS, f"{desc}. Not {word} at every step on {n_bad} of {len(t)} curves, against at: {why}.", t,
                       number)
    if n_ok == len(t):
        return Verdict(HOLDS, f"{desc}. Every one of the {len(t)} curves is {word} at every step.", t, number)
    flat = "; ".join(f"{r.loss}, {r.group}, seed {r.seed}: {r.flat or 'one x value'}"
                     for r in t[t["verdict"] == UNSURE].itertuples())
    return Verdict(UNSURE, f"{desc}. Flat (or a single value) on some curves, so not {word} throughout: {flat}.", t,
                   number)
