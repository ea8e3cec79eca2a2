"""A search's progress, from a runs table (harness/report/load.py: one row per run): the best
validation score so far against the run-steps spent, per series (one study: a loss, a data set).

    trial       the runs of one setting: one trial of a search (tags lossbench.search and
                lossbench.trial), or for a grid one setting of the keys it tunes (optimizer.*,
                regularization.*, a loss's options), its seeds together
    cost        the steps its runs trained: train/steps_run each (train.prune=halving stops runs
                early), else train.steps, a diverged run's up to its divergence
    value       the mean over its runs of the metric; a trial with a diverged run (no finite
                value) or a pruned one (stopped at a rung: not a result) scores worst, and
                never improves the best
    run_steps   the cost of the series' trials so far, in their order: a search's trial number,
                a grid's settings in ascending order of their values (as a grid is written)
    best        the best value among them so far

`to_reach` reads, per series, the run-steps (and trials) spent when the best first reached a
target, e.g. the grid's best: the closing figure of a search against its grid. Plain pandas.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

NOT_KEYS = ("seed", "phase", "dataset.val_size", "train.prune", "trial", "search")
COLUMNS = ["series", "order", "trial", "setting", "n_runs", "cost", "value", "run_steps", "best"]


def tuned_key(col: str) -> bool:
    """A key a search tunes (a grid's setting): numbers of the optimizer, regularization, loss."""
    return col.startswith(("optimizer.", "regularization.")) or (col.startswith("loss.") and col != "loss.name")


def varying(runs: pd.DataFrame) -> list[str]:
    from harness.report.load import param_columns

    return [c for c in param_columns(runs) if c not in NOT_KEYS and not c.startswith("_") and runs[c].astype(str).nunique() > 1]


def steps_trained(runs: pd.DataFrame) -> pd.Series:
    """Per run, the steps it trained: train/steps_run where recorded, else train.steps (a
    diverged run's diverged_step)."""
    from harness.schema import STEPS_RUN

    nan = pd.Series(np.nan, index=runs.index)
    steps = pd.to_numeric(runs.get("train.steps", nan), errors="coerce")
    div = pd.to_numeric(runs.get("diverged_step", nan), errors="coerce")
    ran = pd.to_numeric(runs.get(STEPS_RUN, nan), errors="coerce")
    return ran.where(ran.notna(), div.where(div.notna(), steps)).fillna(0.0)


def progress(runs: pd.DataFrame, metric: str, higher: bool) -> pd.DataFrame:
    """The progress table (module doc): one row per trial, in order within its series."""
    if runs.empty or metric not in runs:
        return pd.DataFrame(columns=COLUMNS)
    from harness.schema import PRUNED

    y = pd.to_numeric(runs[metric], errors="coerce")
    if "status" in runs:   # a pruned run's value is its rung's: not a result
        y = y.where(runs["status"].astype(str) != PRUNED, np.nan)
    df = runs.assign(_cost=steps_trained(runs), _y=y)
    searched = "trial" in df and pd.to_numeric(df["trial"], errors="coerce").notna().all()
    keys = varying(df)
    setting_keys = [c for c in keys if tuned_key(c)]
    series_keys = [c for c in keys if not tuned_key(c)]
    df["series"] = [" ".join(f"{k}={r[k]}" for k in series_keys) or "all" for _, r in df.iterrows()]
    if searched and "search" in df:   # a search's own label of its study, where the runs carry it
        df["series"] = df["search"].where(df["search"].notna(), df["series"]).astype(str)
    df["_order"] = pd.to_numeric(df["trial"], errors="coerce") if searched else 0.0
    df["setting"] = [" ".join(f"{k}={_fmt(r[k])}" for k in setting_keys) for _, r in df.iterrows()]
    rows = []
    for series, part in df.groupby("series", sort=True):
        by = ["_order"] if searched else setting_keys or ["setting"]
        trials = []
        for key, g in part.groupby(by, sort=False, dropna=False):
            y = g["_y"].to_numpy(dtype=float)
            value = float(np.mean(y)) if len(y) and np.isfinite(y).all() else (-math.inf if higher else math.inf)
            trials.append(dict(series=series, sort=key if isinstance(key, tuple) else (key,),
                               trial=int(g["_order"].iloc[0]) if searched else len(trials), setting=g["setting"].iloc[0],
                               n_runs=len(g), cost=float(g["_cost"].sum()), value=value))
        trials.sort(key=lambda t: tuple(_sortable(v) for v in t["sort"]))
        spent, best = 0.0, -math.inf if higher else math.inf
        for i, t in enumerate(trials):
            t.pop("sort")
            spent += t["cost"]
            if math.isfinite(t["value"]) and (t["value"] > best if higher else t["value"] < best):
                best = t["value"]
            rows.append({**t, "order": i, "trial": t["trial"] if searched else i, "run_steps": spent,
                         "best": best if math.isfinite(best) else math.nan})
    return pd.DataFrame(rows, columns=COLUMNS)


def to_reach(table: pd.DataFrame, target: dict[str, float], higher: bool, rel: float = 0.0) -> pd.DataFrame:
    """Per series: the run-steps and trials spent when its best first came within `rel` (a
    fraction) of `target[series]`, and whether it did (run_steps NaN when it never did)."""
    rows = []
    for series, part in table.groupby("series", sort=True):
        goal = target.get(series, math.nan)
        tol = abs(goal) * rel
        hit = part[(part["best"] >= goal - tol) if higher else (part["best"] <= goal + tol)]
        first = hit.iloc[0] if len(hit) else None
        rows.append(dict(series=series, target=goal, reached=first is not None,
                         run_steps=float(first["run_steps"]) if first is not None else math.nan,
                         trials=int(first["order"]) + 1 if first is not None else math.nan,
                         total_run_steps=float(part["run_steps"].max()), total_trials=len(part),
                         best=float(part["best"].iloc[-1])))
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _sortable(v):
    """Numbers before strings, each in order (a grid's settings ascending)."""
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))
