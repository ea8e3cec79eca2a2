"""A study's claims, checked against the runs table.

A claim (from study.yaml) names its check and the check's arguments:

    - id: mse_pulled_by_outliers
      check: slope_greater
      metric: test/rmse
      x: outliers.ratio
      where: {outliers.kind: shift}
      larger: [mse]
      smaller: [huber, mae]

A check is a function `(runs, claim) -> Verdict` registered in CHECKS (with one sentence on
its method in METHODS, printed under the verdicts); adding one is a function plus one entry.
`runs` is the long table (one row per run; columns `loss.name`, the params named by the claim,
the metric). A verdict is `holds`, `does not hold` or `inconclusive`, with the numbers that
decide it. Runs without a finite metric (diverged) are left out, and counted in the text.

Keys every check reads:
    metric   a final-metric column (test/rmse, test/accuracy, ...). Which way is better comes
             from harness/metric_info.py; `higher_is_better: true|false` sets it for a metric
             it does not know
    where    {param: value, ...}: only runs matching all of them (numbers compared as numbers)
    x        the param the claim is about (outliers.ratio)

Losses. Wherever a check takes losses, an entry is a loss name (`mse`: every run with
loss.name=mse) or a mapping of params that picks one variant, e.g. {loss.name: triplet,
loss.mining: hard} or {loss.name: kl, loss.direction: reverse}; it is named like the report's
series (`triplet (hard)`, `gce (q=0.5)`). A loss name whose runs differ in the loss's own options
(a sweep `loss=mse,mae,huber loss.delta=0.3,1,3`) stands for each of its variants, so `huber`
in a claim then means every Huber series of the report (a `reference` must name one).

Checks:

  slope_greater   larger: [losses], smaller: [losses]
      holds when every `larger` loss has a slope of metric on x above every `smaller` loss's,
      with non-overlapping 95% CIs; does not hold when reversed with the CIs apart.
  slopes_similar  losses: [two or more]
      holds when the slopes share a sign and lie within a factor 2, or all CIs overlap.
  degrades_alike  reference: loss, losses: [losses], at: max | all | value | [values],
                  baseline: value (default: the smallest x), factor: 2
      "the robust losses degrade like the reference". Per loss, its degradation: the mean
      change of the metric, in its worse direction (a rise of RMSE, a fall of accuracy), from
      x = baseline to the x values `at` (max: the largest x; all: every x but the baseline,
      averaged). Holds when no loss of `losses` degrades clearly less than `reference`: for
      each, the CIs overlap or its degradation is at least 1/factor of the reference's; does
      not hold when one degrades less with the CIs apart and by more than the factor;
      inconclusive when the reference itself does not degrade (CI reaching 0).
  better_than     better: loss or [losses], worse: loss or [losses], at: value | [values] (x
                  values; default: every x value, or all runs when there is no x)
      holds when, at every x value of `at`, every `better` loss is better than every `worse`
      loss: the mean over seeds of their paired difference (runs of one seed share the data,
      outliers and init) has a 95% t interval above 0; where the two sides do not have the same
      seeds, one run each, their means' 95% t intervals must lie apart instead. Does not hold
      when some `worse` loss is better in that sense at some x value; inconclusive otherwise.
      Example (classification under label noise):

        - id: gce_beats_ce_under_noise
          check: better_than
          metric: test/accuracy
          x: outliers.ratio
          at: [0.2, 0.4]
          where: {outliers.kind: symmetric}
          better: gce
          worse: cross_entropy

Slopes. Per loss, within the `where` filter and over runs with a finite metric, the
least-squares slope of metric y against x:

    b = sum_i (x_i - xbar)(y_i - ybar) / sum_i (x_i - xbar)^2

Its 95% CI is a percentile bootstrap (B = 2000, fixed seed) that resamples runs within each
x value, so every resample keeps the design's x values; then b* = sum_l n_l (x_l - xbar) ybar*_l / Sxx
with ybar*_l the resampled mean at level l. Degradations are linear in the level means too,
D = s * mean_{l in at}(ybar_l - ybar_baseline) with s = +1 (lower is better) or -1, and get
their CI from the same stratified bootstrap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness.metric_info import HIGHER_IS_BETTER

LOSS = "loss.name"
HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
N_BOOT = 2000

_SLOPES = ("Slopes are least-squares fits over the runs (per unit of x), 95% CIs from a bootstrap that "
           "resamples seeds within each x value.")
METHODS = {  # check -> how it decides, one sentence for the report
    "slope_greater": _SLOPES,
    "slopes_similar": _SLOPES,
    "degrades_alike": ("Degradation = the change of the metric, in its worse direction, from the baseline x value "
                       "to the compared ones (difference of means over seeds); 95% CIs from a bootstrap that "
                       "resamples seeds within each x value."),
    "better_than": ("Comparisons at each x value: the mean over seeds of the paired difference (runs with the "
                    "same seed share data, outliers and init), with its 95% t interval; where seeds do not pair, "
                    "the two means' 95% t intervals must lie apart."),
}


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


def series_label(entry: Any) -> str:
    """A claim's loss entry as the report names it: `mse`, `triplet (hard)`, `gce (q=0.5)`."""
    if not isinstance(entry, dict):
        return str(entry)
    name = str(entry.get(LOSS, "runs"))
    other = [(k, v) for k, v in entry.items() if k != LOSS]
    words = [str(v) for _, v in other if isinstance(v, str)]
    nums = [f"{k.split('.', 1)[-1]}={v:g}" if isinstance(v, float) else f"{k.split('.', 1)[-1]}={v}"
            for k, v in other if not isinstance(v, str)]
    return f"{name} ({', '.join(words + nums)})" if other else name


def series(runs: pd.DataFrame, entry: Any) -> tuple[str, pd.DataFrame]:
    """The runs of one loss entry (a loss name, or a mapping of params) and its label; a
    ClaimError when there are none (a second sweep into the experiment may hold them)."""
    if isinstance(entry, dict):
        label, got = series_label(entry), select(runs, entry)
    elif LOSS not in runs:
        raise ClaimError(f"no column {LOSS!r} in the runs")
    else:
        label, got = str(entry), runs[runs[LOSS].astype(str) == str(entry)]
    if got.empty:
        what = ", ".join(f"{k}={v}" for k, v in entry.items()) if isinstance(entry, dict) else f"{LOSS}={entry}"
        raise ClaimError(f"no runs of {label} ({what}) in this sweep, within the claim's `where`")
    return label, got


def variants(runs: pd.DataFrame, entries: list) -> list:
    """The entries as the report's series: a bare loss name whose runs differ in one of that
    loss's own options (`loss=mse,huber loss.delta=0.5,2` has two Huber series) stands for each
    variant, {loss.name: huber, loss.delta: 0.5}, ...; mappings and single-variant names stay."""
    out: list = []
    for entry in entries:
        if isinstance(entry, dict) or LOSS not in runs:
            out.append(entry)
            continue
        r = runs[runs[LOSS].astype(str) == str(entry)]
        opts = [c for c in r.columns if c.startswith("loss.") and c != LOSS and r[c].nunique(dropna=True) > 1]
        if not opts:
            out.append(entry)
            continue
        combos = r[opts].drop_duplicates().sort_values(opts)
        out += [{LOSS: str(entry), **{c: _plain(v) for c, v in row.items()}} for row in combos.to_dict("records")]
    return out


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _direction(claim: dict) -> bool:
    """True when higher is better for the claim's metric (metric_info, or the claim's
    `higher_is_better`)."""
    if "higher_is_better" in claim:
        return bool(claim["higher_is_better"])
    metric = claim.get("metric")
    if metric not in HIGHER_IS_BETTER:
        raise ClaimError(f"metric {metric!r} has no known direction; add higher_is_better: true|false to the claim")
    return HIGHER_IS_BETTER[metric]


def _prepare(runs: pd.DataFrame, claim: dict, need_x: bool) -> pd.DataFrame:
    """The claim's runs (where filter) after checking that its metric and x exist."""
    metric, x = claim.get("metric"), claim.get("x")
    if metric not in runs:
        raise ClaimError(f"metric: no column {metric!r} in the runs")
    if (need_x or x is not None) and x not in runs:
        raise ClaimError(f"x: no column {x!r} in the runs")
    sub = select(runs, claim.get("where"))
    if sub.empty:
        where = ", ".join(f"{k}={v}" for k, v in (claim.get("where") or {}).items())
        raise ClaimError(f"no runs with {where} in this sweep")
    return sub


def _where_text(claim: dict) -> str:
    where = ", ".join(f"{k}={v}" for k, v in (claim.get("where") or {}).items())
    return f" ({where})" if where else ""


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


@register("slope_greater")
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
    desc = _describe(t, claim)
    if above:
        words = ", ".join(_compare_slopes(s.at[a, "slope"], s.at[b, "slope"], a, b) for a, b in pairs)
        return Verdict(HOLDS, f"{desc}. The slope of {_names(larger)} lies above that of {_names(smaller)}, CIs "
                              f"apart; {words}.", t)
    if below:
        return Verdict(FAILS, f"{desc}. Reversed: the slope of {_names(smaller)} lies above that of {_names(larger)}, "
                              f"CIs apart.", t)
    return Verdict(UNSURE, f"{desc}. The CIs overlap for at least one pair, so the order is not established.", t)


@register("slopes_similar")
def slopes_similar(runs: pd.DataFrame, claim: dict, factor: float = 2.0) -> Verdict:
    """Holds when the slopes of `losses` share a sign and lie within `factor` (2) of each other,
    max|b| / min|b| <= 2, or when every pair of 95% CIs overlaps; does not hold otherwise."""
    losses = variants(select(runs, claim.get("where")), list(claim.get("losses", [])))
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


# -- degradation from a baseline x --------------------------------------------------------------
def degradation(x: np.ndarray, y: np.ndarray, baseline: float, at: list[float], sign: float,
                n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """D = sign * mean_{l in at}(ybar_l - ybar_baseline) and its 95% stratified-bootstrap CI
    (runs resampled within each x value, as for slopes). NaN when a level has no runs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    levels = [baseline] + list(at)
    groups = [y[np.isclose(x, v)] for v in levels]
    if any(len(g) == 0 for g in groups):
        return np.nan, np.nan, np.nan
    w = np.array([-1.0] + [1.0 / len(at)] * len(at)) * sign      # D = sum_l w_l ybar_l
    d = float(w @ np.array([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    boot = np.column_stack([g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(axis=1) for g in groups])
    lo, hi = np.percentile(boot @ w, [2.5, 97.5])
    return d, float(lo), float(hi)


@register("degrades_alike")
def degrades_alike(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: do `losses` degrade (from x = baseline to x in `at`) as much as
    `reference`, within overlapping CIs or a `factor`?"""
    ref, losses = claim.get("reference"), _as_list(claim.get("losses"))
    if ref is None or not losses:
        raise ClaimError("degrades_alike needs a `reference` loss and a `losses` list")
    metric, x = claim.get("metric"), claim.get("x")
    sub = _prepare(runs, claim, need_x=True)
    refs, losses = variants(sub, [ref]), variants(sub, losses)
    if len(refs) > 1:
        raise ClaimError(f"reference: {ref} has {len(refs)} variants in this sweep; name one, e.g. "
                         f"{{{', '.join(f'{k}: {v}' for k, v in refs[0].items())}}}")
    ref = refs[0]
    higher = _direction(claim)
    factor = float(claim.get("factor", 2.0))
    if factor < 1:
        raise ClaimError(f"factor: {factor:g}; needs a number >= 1")
    xs = np.sort(pd.to_numeric(sub[x], errors="coerce").dropna().unique())
    if len(xs) < 2:
        raise ClaimError(f"degrades_alike needs runs at two or more values of {x}")
    base = float(claim.get("baseline", xs[0]))
    if not np.isclose(xs, base).any():
        raise ClaimError(f"baseline: no runs at {x}={base:g} (values: {', '.join(f'{v:g}' for v in xs)})")
    rest = [float(v) for v in xs if not np.isclose(v, base)]
    at_arg = claim.get("at", "max")
    if at_arg == "max":
        at = [max(rest)]
    elif at_arg == "all":
        at = rest
    else:
        at = [float(v) for v in _as_list(at_arg)]
        missing = [v for v in at if not np.isclose(xs, v).any()]
        if missing:
            raise ClaimError(f"at: no runs at {x}={', '.join(f'{v:g}' for v in missing)} "
                             f"(values: {', '.join(f'{v:g}' for v in xs)})")
    sign = -1.0 if higher else 1.0
    rows = []
    for i, entry in enumerate([ref] + losses):
        label, r = series(sub, entry)
        xv, yv = pd.to_numeric(r[x], errors="coerce").to_numpy(float), r[metric].to_numpy(float)
        ok = np.isfinite(xv) & np.isfinite(yv)
        d, lo, hi = degradation(xv[ok], yv[ok], base, at, sign)
        rows.append(dict(loss=label, role="compared" if i else "reference", degradation=d, ci_lo=lo,
                         ci_hi=hi, baseline=base, at=",".join(f"{v:g}" for v in at), n=int(ok.sum()),
                         n_dropped=int((~ok).sum())))
    t = pd.DataFrame(rows)
    missing = t.loc[t["degradation"].isna(), "loss"].tolist()
    if missing:
        raise ClaimError(f"no degradation for {', '.join(missing)}: needs finite {metric} at {x}={base:g} and at "
                         f"{', '.join(f'{v:g}' for v in at)}{_where_text(claim) or ''}")
    word = "fall" if higher else "rise"
    to = f"{at[0]:g}" if len(at) == 1 else f"each of {', '.join(f'{v:g}' for v in at)} (averaged)"
    parts = [f"{r.loss} {r.degradation:+.3g} [{r.ci_lo:+.3g}, {r.ci_hi:+.3g}]" for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    desc = (f"{word.capitalize()} of {metric} from {x}={base:g} to {to}{_where_text(claim)}, 95% CI: "
            + "; ".join(parts) + (f"; {dropped} runs without a finite value left out" if dropped else ""))
    r0 = t.iloc[0]
    if r0.ci_lo <= 0:
        return Verdict(UNSURE, f"{desc}. The reference {r0.loss} does not clearly degrade (its CI reaches 0), so "
                               f"there is nothing to degrade alike.", t)
    ratios, smaller = [], []
    for r in t.iloc[1:].itertuples():
        ratio = r.degradation / r0.degradation
        ratios.append(f"{r.loss} {ratio:.2f}x")
        overlap = r.ci_hi >= r0.ci_lo and r.ci_lo <= r0.ci_hi
        if not overlap and ratio < 1 / factor:
            smaller.append(r.loss)
    t["vs_reference"] = t["degradation"] / r0.degradation
    rel = f"Relative to {r0.loss}: {', '.join(ratios)}"
    if smaller:
        return Verdict(FAILS, f"{desc}. {rel}. {_names(smaller)} degrade{'s' * (len(smaller) == 1)} clearly less "
                              f"than {r0.loss} (CIs apart, below 1/{factor:g} of its {word}).", t)
    return Verdict(HOLDS, f"{desc}. {rel}. None degrades clearly less than {r0.loss}: each CI overlaps "
                          f"{r0.loss}'s or its {word} is within a factor {factor:g} of it.", t)


# -- better at given x values -----------------------------------------------------------------
@register("better_than")
def better_than(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: is every `better` loss's mean clearly better than every `worse`
    loss's (95% t intervals apart) at each x value of `at`?"""
    from harness.report.aggregate import t_ci95

    better, worse = _as_list(claim.get("better")), _as_list(claim.get("worse"))
    if not better or not worse:
        raise ClaimError("better_than needs `better` and `worse` losses")
    metric, x = claim.get("metric"), claim.get("x")
    if claim.get("at") is not None and x is None:
        raise ClaimError("better_than: `at` needs `x`, the param its values belong to")
    sub = _prepare(runs, claim, need_x=False)
    better, worse = variants(sub, better), variants(sub, worse)
    higher = _direction(claim)
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
                sd = float(y[ok].std(ddof=1)) if n >= 2 else np.nan
                half = t_ci95(sd, n) if n >= 2 else np.nan
                rows.append(dict(loss=label, role=role, at=v, n=n, n_dropped=int((~ok).sum()), mean=mean,
                                 ci_lo=mean - half, ci_hi=mean + half))
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


def paired_difference(metric: str, a: pd.DataFrame, b: pd.DataFrame, higher: bool) -> dict | None:
    """Mean and 95% t interval of s * (a - b) over the seeds both have, s = +1 when higher is
    better (so positive means `a` is better); None unless each side has exactly one run per
    seed, the same seeds, at least two of them with finite values on both sides."""
    from harness.report.aggregate import SEED, t_ci95

    if SEED not in a or SEED not in b or a[SEED].duplicated().any() or b[SEED].duplicated().any():
        return None
    if set(a[SEED]) != set(b[SEED]):
        return None
    ya = a.set_index(SEED)[metric].astype(float)
    yb = b.set_index(SEED)[metric].astype(float).reindex(ya.index)
    d = ((ya - yb) * (1.0 if higher else -1.0)).to_numpy()
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None
    mean, half = float(d.mean()), float(t_ci95(float(d.std(ddof=1)), len(d)))
    return dict(n=len(d), n_dropped=len(ya) - len(d), mean=mean, ci_lo=mean - half, ci_hi=mean + half)


# -- helpers ------------------------------------------------------------------------------
def _describe(t: pd.DataFrame, claim: dict) -> str:
    where = ", ".join(f"{k}={v}" for k, v in (claim.get("where") or {}).items())
    parts = [f"{r.loss} {r.slope:.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]" for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    note = f"; {dropped} runs without a finite value left out" if dropped else ""
    return (f"Slope of {claim.get('metric')} per unit {claim.get('x')}"
            f"{' (' + where + ')' if where else ''}, 95% CI: " + "; ".join(parts) + note)


def _compare_slopes(a: float, b: float, name_a: str, name_b: str) -> str:
    """Two slopes, a > b, in words: a ratio when both rise or both fall."""
    if a > 0 and b > 0:
        return f"{name_a}/{name_b} = {a / b:.1f}x"
    if a < 0 and b < 0:
        return f"{name_b} falls {b / a:.1f}x as fast as {name_a}"
    return f"{name_a} {'rises' if a > 0 else 'is flat'}, {name_b} {'falls' if b < 0 else 'is flat'}"


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
