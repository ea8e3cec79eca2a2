"""Performance profiles (Dolan & More 2002, as AlgoPerf scores submissions): which loss wins
where, across problems.

A problem p is one combination of the `problems` params (by default the data set and the seed);
a solver s is one loss (a report series). With each run's cost c_{p,s} (lower is better: the
metric itself, or 1 - m for a higher-is-better fraction such as accuracy, or 1 / m for another
higher-is-better metric; the mean where several runs share (p, s)),

    r_{p,s} = c_{p,s} / min_s' c_{p,s'}          (1 where the best cost is 0 and c is too)
    rho_s(tau) = |{p : r_{p,s} <= tau}| / |P|     the share of problems within a factor tau of the best

rho_s(1) is the share of problems s wins outright; a curve that reaches 1 soonest is the most
robust choice. A solver without a finite cost on a problem (diverged) never counts there.

    input  runs table: problems' params, the series' params, the metric
    output columns tau, line, rho (one row per tau and solver), and the ratios per (problem, solver)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.report import aggregate as A

TAUS = np.round(np.geomspace(1.0, 10.0, 61), 6)


def cost(values: pd.Series, metric: str) -> pd.Series:
    """The metric as a cost (lower is better), as the module docstring says."""
    m = MT.metric(metric)
    v = pd.to_numeric(values, errors="coerce")
    if m.higher_is_better and m.bounds[1] == 1.0:
        return 1.0 - v
    if m.higher_is_better:
        return 1.0 / v
    return v


def ratios(runs: pd.DataFrame, metric: str, problems: list[str], line: list[str]) -> pd.DataFrame:
    """One row per (problem, solver): the problem's params, `line` (the solver's name), cost, ratio."""
    df = runs.assign(line=runs.apply(lambda r: A.line_label(r, line), axis=1), cost=cost(runs[metric], metric))
    c = df.groupby(problems + ["line"], dropna=False)["cost"].mean().reset_index()
    best = c.groupby(problems, dropna=False)["cost"].transform("min")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(best > 0, c["cost"] / best, np.where(c["cost"] == 0, 1.0, np.inf))
    return c.assign(ratio=np.where(np.isfinite(c["cost"]), r, np.inf))


def profile(ratio_table: pd.DataFrame, problems: list[str], taus=TAUS) -> pd.DataFrame:
    """rho_s(tau) for each solver (line) and tau: columns tau, line, rho."""
    n = ratio_table.groupby(problems, dropna=False).ngroups
    rows = [{"tau": float(t), "line": s, "rho": float((g["ratio"] <= t + 1e-12).sum() / n)}
            for s, g in ratio_table.groupby("line", sort=True) for t in taus]
    return pd.DataFrame(rows)
