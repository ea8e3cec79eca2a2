"""Runs table -> per-setting statistics over seeds, and the roles the varying params play.

A *group* is a set of runs that differ only in `seed`. For each final metric m of a group with
n finite values (diverged runs have NaN and are left out):

    mean  = (1/n) sum_i m_i
    sd    = sqrt( sum_i (m_i - mean)^2 / (n - 1) )
    ci95  = t_{0.975, n-1} * sd / sqrt(n)          (half-width; NaN when n < 2)

Roles of the params that vary in a sweep (`roles(df)`); only independent ones get a role
(outliers.scale, set by outliers.kind, is not an axis of its own):

    x         outliers.ratio (the x axis of the headline plot) when it varies
    line      loss.name plus the loss's own varying numbers (huber delta=0.5): one line each
    tuning    optimizer.*, regularization.*, train.*: settings one would tune per loss
    scenario  everything else (outliers.kind, dataset.*, model.*): the conditions compared
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.metric_info import PRIMARY, TASK_METRICS
from harness.report.load import metric_columns, param_columns

SEED = "seed"
LOSS = "loss.name"
X_DEFAULT = "outliers.ratio"
TUNING_PREFIXES = ("optimizer.", "regularization.", "train.")


def varying(df: pd.DataFrame) -> list[str]:
    """Params with more than one value among the runs (missing counts as a value), seed excluded."""
    return [c for c in param_columns(df) if c != SEED and df[c].nunique(dropna=False) > 1]


def _priority(df: pd.DataFrame):
    """Sort key of params: the loss, the outlier ratio and kind first, complete columns before
    ones missing for some runs (loss.delta exists for huber only), then by name."""
    return lambda c: (c != LOSS, c != X_DEFAULT, c != "outliers.kind", bool(df[c].isna().any()), c)


def group_keys(df: pd.DataFrame) -> list[str]:
    """The params that identify a group: every varying param but the seed, loss first."""
    return sorted(varying(df), key=_priority(df))


def independent(df: pd.DataFrame, keys: list[str] | None = None) -> list[str]:
    """`keys` (default: group_keys) without those that follow from the others: a param is
    dropped when grouping without it gives as many groups as with it. So outliers.scale, set
    by outliers.kind, and huber's fixed delta, set by loss.name, are not axes of a plot.
    The least important keys (see _priority) are dropped first."""
    keys = list(group_keys(df) if keys is None else keys)
    n = lambda ks: df.groupby(ks, dropna=False).ngroups if ks else 1
    full = n(keys)
    for c in reversed(list(keys)):
        rest = [k for k in keys if k != c]
        if rest and n(rest) == full:
            keys = rest
    return keys


def families(df: pd.DataFrame) -> list[str]:
    """Metric families (the `eval` column) present, in a stable order."""
    return sorted(df["eval"].dropna().unique()) if "eval" in df else []


def task_metrics(df: pd.DataFrame) -> list[str]:
    """Final test metrics of the families present that the runs actually logged, in
    metric_info.TASK_METRICS order."""
    have, out = set(metric_columns(df)), []
    for fam in families(df):
        out += [m for m in TASK_METRICS.get(fam, [PRIMARY.get(fam, "")]) if m in have and m not in out]
    return out


def t_ci95(sd: pd.Series | float, n: pd.Series | float):
    """Half-width of the 95% t interval of a mean: t_{0.975, n-1} sd / sqrt(n); NaN for n < 2."""
    from scipy.stats import t

    n_arr = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(n_arr >= 2, t.ppf(0.975, np.maximum(n_arr - 1, 1)), np.nan)
        out = q * np.asarray(sd, dtype=float) / np.sqrt(n_arr)
    return pd.Series(out, index=sd.index) if isinstance(sd, pd.Series) else float(out)


def stats(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per combination of `keys`: n_runs, n_diverged, and per metric
    `<m> mean`, `<m> sd`, `<m> ci95`, `<m> n` over the runs with a finite value."""
    if not keys:
        df = df.assign(_all="all")
        keys = ["_all"]
    g = df.groupby(keys, dropna=False, sort=True)
    out = g.size().rename("n_runs").to_frame()
    out["n_diverged"] = g["status"].agg(lambda s: int((s == "diverged").sum())) if "status" in df else 0
    for m in metrics:
        vals = df[m].where(np.isfinite(df[m].astype(float)))
        gm = vals.groupby([df[k] for k in keys], dropna=False, sort=True)
        out[f"{m} mean"], out[f"{m} sd"], out[f"{m} n"] = gm.mean(), gm.std(ddof=1), gm.count()
        out[f"{m} ci95"] = t_ci95(out[f"{m} sd"], out[f"{m} n"])
    out = out.reset_index()
    return out.drop(columns="_all") if "_all" in out else out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: one row per group of runs that differ only in seed, every final test metric
    of the families present (see module doc)."""
    return stats(df, group_keys(df), task_metrics(df))


@dataclass
class Roles:
    x: str | None
    line: list[str]
    tuning: list[str]
    scenario: list[str]

    @property
    def facets(self) -> list[str]:
        return self.scenario + self.tuning


def roles(df: pd.DataFrame) -> Roles:
    """Which varying param goes where in the plots (see module doc); params that follow from
    others (see independent) play no role."""
    vary = independent(df)
    x = X_DEFAULT if X_DEFAULT in vary else None
    line = [LOSS] + [c for c in vary if c.startswith("loss.") and c != LOSS]
    tuning = [c for c in vary if c.startswith(TUNING_PREFIXES)]
    scenario = [c for c in vary if c not in line and c not in tuning and c != x]
    return Roles(x, line, tuning, scenario)


def line_label(row: pd.Series | dict, line: list[str]) -> str:
    """`huber` or `huber delta=0.5`: the loss name and its varying numbers that apply to it."""
    name = str(row[LOSS]) if LOSS in row else "all runs"
    extra = [f"{c.split('.', 1)[1]}={_fmt(row[c])}" for c in line if c != LOSS and pd.notna(row[c])]
    return " ".join([name] + extra)


def facet_label(row: pd.Series | dict, facets: list[str]) -> str:
    return ", ".join(f"{c}={_fmt(row[c])}" for c in facets) or "all runs"


def best_settings(st: pd.DataFrame, metric: str, higher_is_better: bool, by: list[str]) -> pd.DataFrame:
    """Per combination of `by`, the row of `st` (a stats() table) with the best mean of `metric`
    (groups whose runs all diverged are never chosen while another is available)."""
    col = f"{metric} mean"
    ranked = st.assign(_key=st[col] if higher_is_better else -st[col]).dropna(subset=["_key"])
    if ranked.empty:
        return st.iloc[0:0]
    idx = ranked.groupby(by, dropna=False, sort=True)["_key"].idxmax()
    return st.loc[idx.values].reset_index(drop=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
