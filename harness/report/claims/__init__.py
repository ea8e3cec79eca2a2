"""A study's claims, checked against the runs table.

A claim (from study.yaml) names its check and the check's arguments:

    - id: mse_pulled_by_outliers
      check: slope_greater
      metric: test/rmse
      x: outliers.ratio
      where: {outliers.kind: shift}
      larger: [mse]
      smaller: [huber, mae]

A check is a function `(runs, claim) -> Verdict`, one module of this package that registers it
with `@register(name, method=...)`: the method is one sentence on how it decides, printed under
the verdicts (METHODS). A check about the course of training registers with `curves=True` and
is called `(runs, claim, curves)`, `curves(run_ids, metric)` giving the long table run_id, step,
value of those runs' histories (read from MLflow by the report). Adding a check is one module plus its import at the bottom of this file.
`runs` is the long table (one row per run; columns `loss.name`, the params named by the claim,
the metric). A verdict is `holds`, `does not hold` or `inconclusive`, with the numbers that
decide it. Runs without a finite metric (diverged) are left out, and counted in the text.

Keys every check reads:
    metric   a final-metric column (test/rmse, test/accuracy, ...). Which way is better comes
             from harness/metric_table.py; `higher_is_better: true|false` sets it for a metric
             it does not know
    where    {param: value, ...}: only runs matching all of them (numbers compared as numbers);
             a list of values matches any of them ({dataset.name: [linear, stackloss]})
    x        the param the claim is about (outliers.ratio)

Losses. Wherever a check takes losses, an entry is a loss name (`mse`: every run with
loss.name=mse) or a mapping of params that picks one variant, e.g. {loss.name: triplet,
loss.mining: hard} or {loss.name: kl, loss.direction: reverse}; it is named like the report's
series (`triplet (hard)`, `gce (q=0.5)`; harness/report/series.py). A loss name whose runs
differ in the loss's own options (a sweep `loss=mse,mae,huber loss.delta=0.3,1,3`) stands for
each of its variants, so `huber` in a claim then means every Huber series of the report (a
`reference` must name one).

Checks (each module's doc has the details; the statistics are in stats.py):

  slope_greater   larger: [losses], smaller: [losses]: slopes of metric on x apart, in that order
  slopes_similar  losses: [two or more]: slopes of one sign within a factor 2, or CIs overlapping
  degrades_alike  reference: loss, losses: [losses], at, baseline, factor: no loss degrades from
                  the baseline x clearly less than the reference
  better_than     better: loss(es), worse: loss(es), at: x values: better at each of them, by
                  the paired difference over seeds (or the means' intervals apart)
  keeps_falling   (curves) metric, loss, tol, min_fall, share: after the metric stops improving
                  the loss keeps falling, in most runs (Clopper-Pearson interval of the share)
  ranks_disagree  metric, loss, within, min_flips: rankings of comparable runs by final loss and
                  by the metric flip in at least min_flips of the pairs (Kendall's tau per group)
  does_not_move   (curves) losses, learners: zero gradient, constant loss and metric from the
                  initial model for `losses`; `learners` learn
  trend           metric (minus: a second metric), x, direction, panels: falls (rises) with x in
                  every panel, the slope's bootstrap CI apart from 0
  interior_optimum  x, by, small: [levels], large: [levels], tolerance: the best x is interior with
                  a clear paired gain over the smallest x at the small levels, gains < tolerance at the large
  better_at_best  better: entry, worse: entry, over, select_by, by, at: each side at its own best
                  setting of `over`, better on the metric by the paired difference over seeds
  divergence_edge x, within: [lo, hi]: per data group, the bracket between the largest learning
                  rate that converged and the smallest that diverged (units of lr*) lies in the band
  monotone        metric (or train/steps_to_target, from curves), x, range, direction: the seeds'
                  slope of log y on log x has the claimed sign and no step between neighbours
                  clearly reverses it; per: seed -- every seed's curve moves that way at every step
  never_diverges  losses, x, range: no run of those losses diverged there
  loglog_slope    series: [entries], lo, hi, x_range, by: the log-log slope of metric on x (metric
                  ∝ x^b) lies in [lo, hi], per group (settings.py: series of settings, `by`)
  factor_closer   baseline, closer, factor, at, average, by: closer series beat the baseline by
                  at least `factor` (ratio of means, bootstrap CI over seeds) at each x value
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness.metric_table import higher_is_better
from harness.report.series import LOSS, series_name

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"


@dataclass
class Verdict:
    verdict: str                 # holds | does not hold | inconclusive
    text: str                    # the numbers that decide it, one or two sentences
    table: pd.DataFrame = field(default_factory=pd.DataFrame)   # e.g. slope per loss with CI
    number: str = ""             # the one number that decides it, for a table of verdicts

    @property
    def deciding(self) -> str:
        """`number`; where a check gives none, the values its table compares (paired differences
        first, else slopes, degradations or means, each with its 95% CI), else the text's start."""
        if self.number:
            return self.number
        t = self.table
        if t.empty or "loss" not in t:
            return self.text.split(". ")[0][:160]
        at = lambda r: f" at {r.at:g}" if "at" in t and isinstance(getattr(r, "at", None), float) and r.at == r.at else ""
        if "role" in t and (t["role"] == "paired difference").any():   # better_than: "a - b", positive = a better
            parts = [f"{str(r.loss).replace(' - ', ' better than ')}{at(r)} by {r.mean:+.3g} [{r.ci_lo:+.3g}, {r.ci_hi:+.3g}]"
                     for r in t[t["role"] == "paired difference"].itertuples()]
            return "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "")
        else:
            col = next((c for c in ("slope", "degradation", "mean") if c in t), None)
            if col is None:
                return self.text.split(". ")[0][:160]
        parts = [f"{r.loss}{at(r)} {getattr(r, col):.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}]" for r in t.itertuples()]
        return "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "")


Check = Callable[..., Verdict]
CHECKS: dict[str, Check] = {}
METHODS: dict[str, str] = {}   # check -> how it decides, one sentence for the report
NEEDS_CURVES: set[str] = set()  # checks called with the curves too


def register(name: str, *, method: str, curves: bool = False) -> Callable[[Check], Check]:
    """Registers a check under `name`, with the sentence on its method for the report."""
    def add(fn: Check) -> Check:
        if name in CHECKS:
            raise KeyError(f"claim check {name!r} registered twice")
        CHECKS[name], METHODS[name] = fn, method
        if curves:
            NEEDS_CURVES.add(name)
        return fn

    return add


def evaluate(runs: pd.DataFrame, claim: dict, curves: Callable[[list[str], str], pd.DataFrame] | None = None) -> Verdict:
    """Runs the claim's check; an unknown check or a malformed claim is inconclusive, said why."""
    name = claim.get("check")
    if name not in CHECKS:
        return Verdict(UNSURE, f"unknown check {name!r}; known checks: {', '.join(sorted(CHECKS))}")
    try:
        if name in NEEDS_CURVES:
            if curves is None:
                raise ClaimError(f"check {name} needs the runs' curves, and none were given")
            return CHECKS[name](runs, claim, curves)
        return CHECKS[name](runs, claim)
    except ClaimError as e:
        return Verdict(UNSURE, str(e))


class ClaimError(ValueError):
    """The claim cannot be checked on these runs (missing column, loss, or too few x values)."""


# -- the runs of a claim and of its losses ------------------------------------------------------
def select(runs: pd.DataFrame, where: dict[str, Any] | None) -> pd.DataFrame:
    """Rows matching every `param: value` of `where` (compared as numbers when both read as
    numbers; a list of values: any of them)."""
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
    return series_name(str(entry.get(LOSS, "runs")), {k: v for k, v in entry.items() if k != LOSS})


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


# -- helpers ------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _direction(claim: dict) -> bool:
    """True when higher is better for the claim's metric (metric_table.py, or the claim's
    `higher_is_better`)."""
    if "higher_is_better" in claim:
        return bool(claim["higher_is_better"])
    metric = claim.get("metric")
    better = higher_is_better(str(metric))
    if better is None:
        raise ClaimError(f"metric {metric!r} has no known direction; add higher_is_better: true|false to the claim")
    return better


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
    where = ", ".join(f"{k}={'|'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                      for k, v in (claim.get("where") or {}).items())
    return f" ({where})" if where else ""


def _names(losses: list[str]) -> str:
    return "/".join(str(x) for x in losses)


def _equal(col: pd.Series, want: Any) -> pd.Series:
    if isinstance(want, (list, tuple)):
        out = pd.Series(False, index=col.index)
        for w in want:
            out |= _equal(col, w)
        return out
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


# the checks register themselves (this order is CHECKS' and METHODS' order)
from harness.report.claims import slope_greater  # noqa: E402,F401
from harness.report.claims import slopes_similar  # noqa: E402,F401
from harness.report.claims import degrades_alike  # noqa: E402,F401
from harness.report.claims import better_than  # noqa: E402,F401
from harness.report.claims import keeps_falling  # noqa: E402,F401
from harness.report.claims import ranks_disagree  # noqa: E402,F401
from harness.report.claims import does_not_move  # noqa: E402,F401
from harness.report.claims import trend  # noqa: E402,F401
from harness.report.claims import interior_optimum  # noqa: E402,F401
from harness.report.claims import better_at_best  # noqa: E402,F401
from harness.report.claims import divergence_edge  # noqa: E402,F401
from harness.report.claims import monotone  # noqa: E402,F401
from harness.report.claims import never_diverges  # noqa: E402,F401
from harness.report.claims import loglog_slope  # noqa: E402,F401
from harness.report.claims import factor_closer  # noqa: E402,F401
