"""Which figures a sweep gets, and the tables behind them (drawn by plots.py).

Per metric family (the runs' `eval` column) present in the sweep:

  1. the family's primary metric (metric_info.PRIMARY: test RMSE, accuracy, recall@1, ...) vs
     outlier ratio: mean +- 95% CI over seeds, one line per loss, one panel per value of the
     other varying params (at most MAX_PANELS panels);
  2. when tuning params vary (optimizer.*, regularization.*, train.*): the same, keeping per
     loss, outlier ratio and scenario only the best setting, selected on the test metric itself
     (an optimistic, oracle choice, and labelled so);
  3. train/loss curves: median over seeds per loss, panels = scenario (rows) x a few outlier
     ratios (columns). Histories are fetched only for the runs drawn, at most MAX_CURVE_RUNS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.metric_info import HIGHER_IS_BETTER, PRIMARY
from harness.report import aggregate as A
from harness.report import plots

MAX_PANELS = 12
MAX_CURVE_ROWS, MAX_CURVE_COLS = 4, 5
MAX_CURVE_RUNS = 300

# how a metric reads on an axis; its unit where it has one
LABELS = {
    "test/rmse": "test RMSE (target units)", "test/mae": "test MAE (target units)", "test/r2": "test R²",
    "param_error": "‖ŵ − w*‖₂ (weight error)", "test/accuracy": "test accuracy (fraction)",
    "test/recall_at_1": "test recall@1 (fraction)", "test/kl": "test KL (nats)", "train/loss": "training loss",
}
X_LABELS = {"outliers.ratio": "outlier ratio (fraction of training rows corrupted)", "optimizer.lr": "learning rate"}


@dataclass
class Figure:
    png: Path
    caption: str


def metric_label(m: str) -> str:
    better = {True: "higher is better", False: "lower is better"}.get(HIGHER_IS_BETTER.get(m))
    base = LABELS.get(m, m)
    return f"{base}, {better}" if better else base


def make_figures(runs: pd.DataFrame, out: Path, fetch_curves: Callable[[list[str]], pd.DataFrame]) -> list[Figure]:
    """All figures for the sweep's runs, written into `out`; `fetch_curves(run_ids)` returns the
    long table run_id, step, value of train/loss."""
    figs: list[Figure] = []
    fams = A.families(runs)
    for fam in fams:
        sub = runs[runs["eval"] == fam]
        metric = PRIMARY.get(fam)
        if metric not in sub or not np.isfinite(sub[metric].astype(float)).any():
            continue
        tag = f"{fam}_" if len(fams) > 1 else ""
        figs += primary_figures(sub, metric, out, tag, f" ({fam})" if len(fams) > 1 else "")
    cur = curve_figure(runs, out, fetch_curves)
    if cur is not None:
        figs.append(cur)
    return figs


def _panels(df: pd.DataFrame, facets: list[str]) -> pd.DataFrame:
    """Adds `row` and `col`: one facet param -> columns; two or more -> the first is the rows."""
    if not facets:
        return df.assign(row="", col="")
    row = df.apply(lambda r: A.facet_label(r, facets[:1]), axis=1) if len(facets) > 1 else ""
    col = df.apply(lambda r: A.facet_label(r, facets[1:] if len(facets) > 1 else facets), axis=1)
    return df.assign(row=row, col=col)


def _plot_table(st: pd.DataFrame, metric: str, r: A.Roles, facets: list[str]) -> pd.DataFrame:
    t = _panels(st, facets)
    t["line"] = t.apply(lambda row: A.line_label(row, r.line), axis=1)
    t["x"] = t[r.x] if r.x else t["line"]
    t = t.rename(columns={f"{metric} mean": "mean", f"{metric} ci95": "ci95", f"{metric} n": "n"})
    keep = ["row", "col", "line", "x", "mean", "ci95", "n", "n_runs", "n_diverged"]
    extra = [c for c in t.columns if c not in keep and not c.startswith(metric)]
    return t[keep + extra]


def _cap_panels(t: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    keys = list(dict.fromkeys(zip(t["row"], t["col"])))
    if len(keys) <= MAX_PANELS:
        return t, ""
    shown = set(keys[:MAX_PANELS])
    note = f" Showing {MAX_PANELS} of {len(keys)} panels; every group is in summary.csv."
    return t[[k in shown for k in zip(t["row"], t["col"])]], note


def primary_figures(sub: pd.DataFrame, metric: str, out: Path, tag: str, fam: str) -> list[Figure]:
    r = A.roles(sub)
    vals = sub[metric].astype(float)
    nonneg = bool((vals[np.isfinite(vals)] >= 0).all())
    seeds = sub[A.SEED].nunique() if A.SEED in sub else 1
    x_label = X_LABELS.get(r.x, r.x or "loss")
    slug = f"{tag}{_slug(metric)}_vs_{_slug(r.x or 'loss')}"
    st = A.stats(sub, r.line + ([r.x] if r.x else []) + r.facets, [metric])
    t, note = _cap_panels(_plot_table(st, metric, r, r.facets))
    what = f"{LABELS.get(metric, metric)} vs {x_label.split(' (')[0]}" if r.x else LABELS.get(metric, metric)
    title = f"{what} — mean ± 95% CI over {seeds} seed{'s' * (seeds != 1)}{fam}"
    png = plots.metric_plot(t, out / slug, ylabel=metric_label(metric), xlabel=x_label, title=title,
                            nonnegative=nonneg)
    n_div = int(t["n_diverged"].sum())
    figs = [Figure(png, f"{title}. Error bars: t interval over seeds; diverged runs "
                        f"({n_div}) are left out of the means.{note}")]
    if r.tuning:
        figs.append(_best_figure(sub, metric, r, out, slug, x_label, what, seeds, nonneg))
    return figs


def _best_figure(sub, metric, r: A.Roles, out: Path, slug: str, x_label: str, what: str, seeds: int,
                 nonneg: bool) -> Figure:
    by = r.line + ([r.x] if r.x else []) + r.scenario
    st = A.stats(sub, by + r.tuning, [metric])
    best = A.best_settings(st, metric, bool(HIGHER_IS_BETTER.get(metric, False)), by)
    best["setting"] = best.apply(lambda row: A.facet_label(row, r.tuning), axis=1)
    t, note = _cap_panels(_plot_table(best, metric, r, r.scenario))
    tuned = ", ".join(r.tuning)
    title = f"{what}: best {tuned} per loss — selected on test metric (optimistic)"
    png = plots.metric_plot(t, out / f"{slug}_best", ylabel=metric_label(metric), xlabel=x_label, title=title,
                            nonnegative=nonneg)
    return Figure(png, f"{title}. For each loss{', outlier ratio' if r.x else ''} and panel, the setting of "
                       f"{tuned} with the best mean test value over {seeds} seeds; selected on the same test "
                       f"metric it reports, so it flatters every loss. Chosen settings: column `setting` of "
                       f"{slug}_best.csv.{note}")


def curve_runs(runs: pd.DataFrame, cap: int = MAX_CURVE_RUNS) -> tuple[pd.DataFrame, A.Roles]:
    """The runs whose curves are drawn: scenario rows (<= MAX_CURVE_ROWS) x outlier ratios
    (<= MAX_CURVE_COLS, spread over the range), the best tuning setting per loss where tuning
    params vary, and the first seeds of each group so that at most `cap` runs are fetched."""
    r = A.roles(runs)
    df = runs.copy()
    if r.scenario:
        df["_row"] = df.apply(lambda row: A.facet_label(row, r.scenario), axis=1)
        df = df[df["_row"].isin(list(dict.fromkeys(df["_row"]))[:MAX_CURVE_ROWS])]
    if r.x:
        xs = sorted(df[r.x].dropna().unique())
        pick = sorted({xs[int(round(i))] for i in np.linspace(0, len(xs) - 1, min(len(xs), MAX_CURVE_COLS))})
        df = df[df[r.x].isin(pick)]
    if r.tuning:
        by = r.line + ([r.x] if r.x else []) + r.scenario
        fam = A.families(df)[0] if A.families(df) else "regression"
        metric = PRIMARY.get(fam, "")
        if metric in df:
            st = A.stats(df, by + r.tuning, [metric])
            best = A.best_settings(st, metric, bool(HIGHER_IS_BETTER.get(metric, False)), by)
            df = df.merge(best[by + r.tuning], on=by + r.tuning, how="inner")
    keys = r.line + ([r.x] if r.x else []) + r.scenario
    n_groups = max(df.groupby(keys, dropna=False).ngroups, 1)
    per_group = max(1, cap // n_groups)
    df = df.sort_values([A.SEED] if A.SEED in df else ["run_id"])
    df = df.groupby(keys, dropna=False, group_keys=False).head(per_group)
    return df.head(cap), r


def curve_figure(runs: pd.DataFrame, out: Path, fetch_curves) -> Figure | None:
    chosen, r = curve_runs(runs)
    if chosen.empty:
        return None
    hist = fetch_curves(chosen["run_id"].tolist())
    if hist.empty:
        return None
    lab = pd.DataFrame({"run_id": chosen["run_id"],
                        "row": chosen.apply(lambda row: A.facet_label(row, r.scenario), axis=1) if r.scenario else "",
                        "col": chosen[r.x].map(lambda v: f"{r.x}={v:g}") if r.x else "",
                        "line": chosen.apply(lambda row: A.line_label(row, r.line), axis=1)})
    h = hist.merge(lab, on="run_id")
    g = h.groupby(["row", "col", "line", "step"], sort=False)["value"]
    t = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                      "n_runs": g.count()}).reset_index()
    if r.x:  # panels left to right by increasing x, not in the order the runs came
        order = {f"{r.x}={v:g}": v for v in chosen[r.x].dropna().unique()}
        t = t.assign(_x=t["col"].map(order)).sort_values(["row", "_x", "line", "step"]).drop(columns="_x")
    else:
        t = t.sort_values(["row", "col", "line", "step"])
    seeds = chosen[A.SEED].nunique() if A.SEED in chosen else 1
    sel = " (best setting per loss, selected on test metric)" if r.tuning else ""
    title = f"Training loss (each loss in its own units) — median over {seeds} seed{'s' * (seeds != 1)}{sel}"
    png = plots.curve_plot(t, out / "train_loss_curves", ylabel=LABELS["train/loss"], title=title)
    return Figure(png, f"{title}; shaded: inter-quartile range over seeds. Drawn from {len(chosen)} runs "
                       f"(histories fetched for these only). Losses differ in scale (squared vs absolute "
                       f"error), so compare shapes, not heights, across losses.")


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s).strip("_")
