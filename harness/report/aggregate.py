"""Runs table -> per-setting statistics over seeds, and the roles the varying params play.

A *group* is a set of runs that differ only in `seed`. For each final metric m of a group with
n finite values (diverged runs have NaN and are left out; so are pruned runs, see comparable):

    mean  = (1/n) sum_i m_i
    sd    = sqrt( sum_i (m_i - mean)^2 / (n - 1) )
    ci95  = t_{0.975, n-1} * sd / sqrt(n)          (half-width; NaN when n < 2; claims.stats.t_ci95)

Roles of the params that vary in a sweep (`roles(df)`); only independent ones get a role
(outliers.scale, set by outliers.kind, is not an axis of its own):

    x         outliers.ratio (the x axis of the headline plot) when it varies
    line      loss.name plus the loss's own varying settings: one series each, labelled
              `kl (reverse)`, `triplet (hard)`, `huber (delta=0.5)` (line_label, series.py)
    tuning    optimizer.*, regularization.*, train.*: settings one would tune per loss
    scenario  everything else (outliers.kind, dataset.*, model.*): the conditions compared
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.metric_table import FAMILIES
from harness.schema import DIVERGED, PRUNED, STEPS_RUN
from harness.metric_table import metric
from harness.report.claims.stats import mean_interval, t_ci95  # aggregate.t_ci95 stays a name here
from harness.report.load import metric_columns, param_columns
from harness.report.series import LOSS, SEED, series_name, value_text

X_DEFAULT = "outliers.ratio"
TUNING_PREFIXES = ("optimizer.", "regularization.", "train.")


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    """The runs table as final-metric comparisons read it: a pruned run (train.prune=halving)
    stopped at a rung, and its final metrics, real numbers at that step, would compare a short
    run with full ones; they are NaN here, so that every mean, figure and claim compares runs
    trained to the end (a pruned run is left out and counted, like a diverged one). Its facts of
    the data (`data/...`) and train/steps_run stay. runs.csv keeps its values as recorded."""
    if "status" not in df or not (df["status"] == PRUNED).any():
        return df
    cols = [c for c in metric_columns(df) if not c.startswith("data/") and c != STEPS_RUN]
    out = df.copy()
    out.loc[out["status"] == PRUNED, cols] = np.nan
    return out


def run_steps(df: pd.DataFrame) -> tuple[int, int] | None:
    """(optimizer steps the runs took, steps they would take unpruned): the sums of train/steps_run
    and of train.steps; None for runs recorded before train/steps_run existed."""
    if STEPS_RUN not in df or "train.steps" not in df or df[STEPS_RUN].isna().any():
        return None
    return int(df[STEPS_RUN].sum()), int(pd.to_numeric(df["train.steps"]).sum())


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
    """Final test metrics of the families present that the runs actually logged (a finite value
    in some run), in the order of each family's metrics (metric_table.py)."""
    have = {c for c in metric_columns(df) if pd.to_numeric(df[c], errors="coerce").notna().any()}
    out: list[str] = []
    for fam in families(df):
        out += [m for m in (FAMILIES[fam].metrics if fam in FAMILIES else ()) if m in have and m not in out]
    return out


def stats(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per combination of `keys`: n_runs, n_diverged, n_pruned, and per metric
    `<m> mean`, `<m> sd`, `<m> ci95` (the t half-width), `<m> ci_lo`, `<m> ci_hi` (the 95%
    interval that respects the metric's bounds, claims.stats.mean_interval), `<m> n` over the
    runs with a finite value."""
    if not keys:
        df = df.assign(_all="all")
        keys = ["_all"]
    g = df.groupby(keys, dropna=False, sort=True)
    out = g.size().rename("n_runs").to_frame()
    out["n_diverged"] = g["status"].agg(lambda s: int((s == DIVERGED).sum())) if "status" in df else 0
    out["n_pruned"] = g["status"].agg(lambda s: int((s == PRUNED).sum())) if "status" in df else 0
    for m in metrics:
        vals = df[m].where(np.isfinite(df[m].astype(float)))
        gm = vals.groupby([df[k] for k in keys], dropna=False, sort=True)
        out[f"{m} mean"], out[f"{m} sd"], out[f"{m} n"] = gm.mean(), gm.std(ddof=1), gm.count()
        out[f"{m} ci95"] = t_ci95(out[f"{m} sd"], out[f"{m} n"])
        bounds = metric(m).bounds
        ci = gm.agg(lambda s: mean_interval(s.to_numpy(), bounds))
        out[f"{m} ci_lo"], out[f"{m} ci_hi"] = [c[0] for c in ci], [c[1] for c in ci]
    out = out.reset_index()
    return out.drop(columns="_all") if "_all" in out else out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: per metric family (column `eval`), one row per group of runs that differ
    only in seed, with that family's final test metrics (see module doc). The loss name is a
    column even where only one loss ran (a density sweep varies loss.direction of kl alone)."""
    parts = []
    for fam in families(df) or [None]:
        sub = df if fam is None else df[df["eval"] == fam]
        keys = group_keys(sub)
        if LOSS in sub and LOSS not in keys:
            keys = [LOSS] + keys
        st = stats(sub, keys, task_metrics(sub))
        if fam is not None:
            st.insert(0, "eval", fam)
        parts.append(st)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


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
    """The series name of a runs-table row (series.series_name): the loss and, in brackets, its
    own varying settings that apply to it (the columns of `line` present, not NaN, not "null"):
    `huber`, `kl (reverse)`, `triplet (hard)`, `gce (q=0.5)`, `triplet (hard, margin=0.5)`."""
    name = str(row[LOSS]) if LOSS in row and pd.notna(row[LOSS]) else "all runs"
    own = {c: row[c] for c in line if c != LOSS and c in row and pd.notna(row[c]) and str(row[c]) != "null"}
    return series_name(name, own)


def facet_label(row: pd.Series | dict, facets: list[str]) -> str:
    return ", ".join(f"{c}={value_text(row[c])}" for c in facets) or "all runs"


def best_settings(st: pd.DataFrame, metric: str, higher_is_better: bool, by: list[str]) -> pd.DataFrame:
    """Per combination of `by`, the row of `st` (a stats() table) with the best mean of `metric`
    (groups whose runs all diverged are never chosen while another is available)."""
    col = f"{metric} mean"
    ranked = st.assign(_key=st[col] if higher_is_better else -st[col]).dropna(subset=["_key"])
    if ranked.empty:
        return st.iloc[0:0]
    idx = ranked.groupby(by, dropna=False, sort=True)["_key"].idxmax()
    return st.loc[idx.values].reset_index(drop=True)
