"""Which figures a sweep gets, and the tables behind them (drawn by plots.py).

Per metric family (the runs' `eval` column) present in the sweep; file names get a `<family>_`
prefix when the sweep holds more than one family:

  1. the family's primary metric (metric_table.py: test RMSE, accuracy, recall@1, KL) vs
     outlier ratio (label-noise ratio for classification data): mean +- 95% CI over seeds, one
     line per series (the loss and its varying settings: `kl (reverse)`), one panel per value
     of the other varying params (at most MAX_PANELS panels); without a varying ratio, one point
     per series;
  2. when tuning params vary (optimizer.*, regularization.*, train.*): the same, keeping per
     series, ratio and scenario only the best setting, selected on the test metric itself
     (an optimistic, oracle choice, and labelled so); neither figure where every panel would
     hold one point (one series and no varying ratio: a study of one loss's training settings,
     whose own figures are named in its `figures:`);
  3. the figures the runs' tasks ask for (harness/tasks/: Task.figures; registered here by
     name, TASK_FIGURES): the density task's target p and every run's fitted Gaussian q
     (harness/report/density.py);
  4. curves, median over seeds per series, panels = scenario (rows) x a few ratios (columns):
     the primary metric at each eval point where the family logs it as a curve
     (metric_table.py: Metric.curve), and train/loss. Histories are fetched only for the runs
     drawn, at most MAX_CURVE_RUNS per figure.

A family's primary figure also draws, as baselines, other families' runs that logged its
primary metric as an extra (a cross-entropy MLP's hidden layer scored by recall@1).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.metric_table import FAMILIES
from harness.report import aggregate as A
from harness.report import plots
from harness.tasks import OUTLIER_RATIO, TASKS

MAX_PANELS = 12
MAX_CURVE_ROWS, MAX_CURVE_COLS = 4, 5
MAX_CURVE_RUNS = 300

# figures a task asks for by name (harness/tasks/: Task.figures), beyond every family's:
# fn(runs of one family, out folder, file prefix, title suffix, artifact(run_id, name) -> text)
TASK_FIGURES: dict[str, Callable] = {}


def register_figure(name: str):
    def add(fn):
        TASK_FIGURES[name] = fn
        return fn
    return add


def x_label(x: str | None, runs: pd.DataFrame) -> str:
    """The x axis: outliers.ratio as the runs' tasks word it (label noise for classification
    data, also for embedding losses trained on labels; harness/tasks/: Task.noise_axis)."""
    if x == A.X_DEFAULT:
        tasks = set(runs["task"].dropna()) if "task" in runs else set()
        words = {TASKS.get(t).noise_axis for t in tasks if t in TASKS}
        return words.pop() if len(words) == 1 and len(tasks) == len({t for t in tasks if t in TASKS}) else OUTLIER_RATIO
    return {"optimizer.lr": "learning rate"}.get(x, x or "loss")


def short_x(x: str | None, runs: pd.DataFrame) -> str:
    return x_label(x, runs).split(" (")[0] if x else ""


@dataclass
class Figure:
    png: Path
    caption: str


def metric_label(m: str) -> str:
    return MT.metric(m).axis_label()


@dataclass
class FigureContext:
    """What a figure may read besides the runs table, and where it goes: `curves(run_ids, key)`
    the long table run_id, step, value of metric `key`; `artifact(run_id, name)` a run's text
    artifact (None without one); `prefix` starts every file name (a tour's part)."""

    out: Path
    curves: Callable[[list[str], str], pd.DataFrame]
    artifact: Callable[[str, str], str | None] = lambda run_id, name: None
    prefix: str = ""


# figures a study asks for under `figures:` ({kind: NAME, ...its arguments}), by kind:
# fn(runs, args, ctx: FigureContext) -> Figure | list[Figure] | None
STUDY_FIGURES: dict[str, Callable] = {}


def register_study_figure(kind: str):
    def add(fn):
        STUDY_FIGURES[kind] = fn
        return fn
    return add


def study_figures(runs: pd.DataFrame, study: dict, ctx: FigureContext) -> list[Figure]:
    """The figures the study names, in its order; an unknown kind is an error naming the known ones."""
    out: list[Figure] = []
    for args in study.get("figures") or []:
        kind = args.get("kind")
        if kind not in STUDY_FIGURES:
            raise ValueError(f"study {study.get('name')}: figure kind {kind!r}; known: {', '.join(sorted(STUDY_FIGURES))}")
        got = STUDY_FIGURES[kind](runs, args, ctx)
        out += [f for f in (got if isinstance(got, list) else [got]) if f is not None]
    return out


def make_figures(runs: pd.DataFrame, out: Path, fetch_curves: Callable[[list[str], str], pd.DataFrame],
                 artifact: Callable[[str, str], str | None] = lambda run_id, name: None, prefix: str = "") -> list[Figure]:
    """All figures for the sweep's runs, written into `out`; `fetch_curves(run_ids, key)` returns
    the long table run_id, step, value of metric `key` (train/loss, test/accuracy, ...);
    `artifact(run_id, name)` the text of a run's artifact (None without one); `prefix` starts
    every file name."""
    figs: list[Figure] = []
    fams = A.families(runs) or [None]
    for fam in fams:
        sub = runs if fam is None else runs[runs["eval"] == fam]
        tag, suffix = (f"{prefix}{fam}_", f" ({fam})") if len(fams) > 1 else (prefix, "")
        family = FAMILIES.get(fam or "regression")
        primary = family.primary if family else ""
        if primary in sub and np.isfinite(sub[primary].astype(float)).any():
            figs += primary_figures(_with_baselines(runs, sub, primary), primary, out, tag, suffix)
        tasks = sub["task"].dropna().unique() if "task" in sub else []
        for name in dict.fromkeys(f for t in tasks if t in TASKS for f in TASKS.get(t).figures):
            figs.append(TASK_FIGURES[name](sub, out, tag, suffix, artifact))
        if family and primary in family.curves:
            figs.append(curve_figure(sub, out, fetch_curves, primary, tag, suffix))
        figs.append(curve_figure(sub, out, fetch_curves, "train/loss", tag, suffix))
    return [f for f in figs if f is not None]


def _with_baselines(runs: pd.DataFrame, sub: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A family's runs plus, as baselines, the runs of other families that logged its primary
    metric as one of their extras (metric_table.Family.extras: a cross-entropy MLP's hidden
    layer scored by recall@1), their series named after what the extras are of."""
    if "eval" not in runs:
        return sub
    out = [sub]
    for fam in sorted(set(runs["eval"].dropna()) - set(sub["eval"].dropna())):
        other = FAMILIES.get(fam)
        if other is None or metric not in other.extras:
            continue
        base = runs[(runs["eval"] == fam) & np.isfinite(pd.to_numeric(runs.get(metric), errors="coerce"))]
        if len(base) and A.LOSS in base:
            base = base.assign(**{A.LOSS: base[A.LOSS].astype(str) + f" ({other.extras_are})"})
        out.append(base)
    return pd.concat(out, ignore_index=True) if len(out) > 1 else sub


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
    t = t.rename(columns={f"{metric} mean": "mean", f"{metric} ci95": "ci95", f"{metric} ci_lo": "ci_lo",
                          f"{metric} ci_hi": "ci_hi", f"{metric} n": "n"})
    keep = ["row", "col", "line", "x", "mean", "ci_lo", "ci_hi", "ci95", "n", "n_runs", "n_diverged"]
    extra = [c for c in t.columns if c not in keep and not c.startswith(metric)]
    return t[keep + extra]


def _cap_panels(t: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    keys = list(dict.fromkeys(zip(t["row"], t["col"])))
    if len(keys) <= MAX_PANELS:
        return t, ""
    rows, cols = list(dict.fromkeys(t["row"])), list(dict.fromkeys(t["col"]))
    if rows != [""] and len(rows) <= MAX_PANELS:   # a rows x columns grid: every row, its first columns
        keep = set(cols[:MAX_PANELS // len(rows)])
        shown = {k for k in keys if k[1] in keep}
    else:
        shown = set(keys[:MAX_PANELS])
    note = f" Showing {len(shown)} of {len(keys)} panels; every group is in summary.csv."
    return t[[k in shown for k in zip(t["row"], t["col"])]], note


def _over_seeds(seeds: int) -> str:
    if seeds <= 1:
        return "one seed, so no interval"
    return f"mean ± 95% CI over {seeds} seeds"


def _interval_note(seeds: int) -> str:
    if seeds <= 1:
        return "One seed per setting: points are single runs, without error bars."
    note = ("Error bars: 95% interval of the mean over seeds (a bootstrap within the metric's bounds where it has "
            "them, else a t interval)")
    if seeds == 2:
        note += " (with 2 seeds a t interval has t = 12.7, and a bootstrap sees only the two values)"
    return note + "."


def primary_figures(sub: pd.DataFrame, metric: str, out: Path, tag: str, fam: str) -> list[Figure]:
    r = A.roles(sub)
    seeds = sub[A.SEED].nunique() if A.SEED in sub else 1
    xl = x_label(r.x, sub)
    slug = f"{tag}{_slug(metric)}_vs_{_slug(r.x or 'loss')}"
    st = A.stats(sub, r.line + ([r.x] if r.x else []) + r.facets, [metric])
    full = _plot_table(st, metric, r, r.facets)
    if len(full) < 2 or full.groupby(["row", "col"]).size().max() < 2:
        return []      # one point per panel (one setting; one series, no x): nothing to compare
    t, note = _cap_panels(full)
    what = f"{MT.metric(metric).label} vs {short_x(r.x, sub)}" if r.x else MT.metric(metric).label
    title = f"{what} — {_over_seeds(seeds)}{fam}"
    if "eval" in sub and sub["eval"].nunique() > 1:
        base = sorted(sub.loc[sub["eval"] != sub["eval"].iloc[0], A.LOSS].astype(str).unique()) if A.LOSS in sub else []
        note += (f" Baseline{'s' * (len(base) != 1)} {', '.join(base)}: a classifier's hidden representation "
                 f"(the layer before its output), scored by the same retrieval metric.")
    png = plots.metric_plot(t, out / slug, ylabel=metric_label(metric), xlabel=xl, title=title,
                            bounds=MT.metric(metric).bounds)
    n_div = int(t["n_diverged"].sum())
    figs = [Figure(png, f"{title}. {_interval_note(seeds)} Diverged runs ({n_div}) are left out of the means.{note}")]
    if r.tuning:
        figs.append(_best_figure(sub, metric, r, out, slug, xl, what, seeds))
    return figs


def _best_figure(sub, metric, r: A.Roles, out: Path, slug: str, xl: str, what: str, seeds: int) -> Figure:
    by = r.line + ([r.x] if r.x else []) + r.scenario
    st = A.stats(sub, by + r.tuning, [metric])
    best = A.best_settings(st, metric, bool(MT.metric(metric).higher_is_better), by)
    best["setting"] = best.apply(lambda row: A.facet_label(row, r.tuning), axis=1)
    t, note = _cap_panels(_plot_table(best, metric, r, r.scenario))
    tuned = ", ".join(r.tuning)
    title = f"{what}: best {tuned} per loss — selected on test metric (optimistic)"
    png = plots.metric_plot(t, out / f"{slug}_best", ylabel=metric_label(metric), xlabel=xl, title=title,
                            bounds=MT.metric(metric).bounds)
    return Figure(png, f"{title}. For each loss{', ' + short_x(r.x, sub) if r.x else ''} and panel, the setting "
                       f"of {tuned} with the best mean test value over {seeds} seed{'s' * (seeds != 1)}; selected "
                       f"on the same test metric it reports, so it flatters every loss. Chosen settings: column "
                       f"`setting` of {slug}_best.csv.{note}")


# -- curves ------------------------------------------------------------------------------------
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
        metric = FAMILIES[fam].primary if fam in FAMILIES else ""
        if metric in df:
            st = A.stats(df, by + r.tuning, [metric])
            best = A.best_settings(st, metric, bool(MT.metric(metric).higher_is_better), by)
            df = df.merge(best[by + r.tuning], on=by + r.tuning, how="inner")
    keys = r.line + ([r.x] if r.x else []) + r.scenario
    n_groups = max(df.groupby(keys, dropna=False).ngroups, 1)
    per_group = max(1, cap // n_groups)
    df = df.sort_values([A.SEED] if A.SEED in df else ["run_id"])
    df = df.groupby(keys, dropna=False, group_keys=False).head(per_group)
    return df.head(cap), r


def curve_figure(runs: pd.DataFrame, out: Path, fetch_curves, key: str = "train/loss", tag: str = "",
                 fam: str = "") -> Figure | None:
    """Median over seeds of one metric's history per series; `key` train/loss or a test metric."""
    chosen, r = curve_runs(runs)
    if chosen.empty:
        return None
    hist = fetch_curves(chosen["run_id"].tolist(), key)
    if hist.empty or hist["step"].nunique() < 2:
        return None
    xs = short_x(r.x, runs)
    lab = pd.DataFrame({"run_id": chosen["run_id"],
                        "row": chosen.apply(lambda row: A.facet_label(row, r.scenario), axis=1) if r.scenario else "",
                        "col": chosen[r.x].map(lambda v: f"{xs} {v:g}") if r.x else "",
                        "line": chosen.apply(lambda row: A.line_label(row, r.line), axis=1)})
    h = hist.merge(lab, on="run_id")
    g = h.groupby(["row", "col", "line", "step"], sort=False)["value"]
    t = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                      "n_runs": g.count()}).reset_index()
    if r.x:  # panels left to right by increasing x, not in the order the runs came
        order = {f"{xs} {v:g}": v for v in chosen[r.x].dropna().unique()}
        t = t.assign(_x=t["col"].map(order)).sort_values(["row", "_x", "line", "step"]).drop(columns="_x")
    else:
        t = t.sort_values(["row", "col", "line", "step"])
    seeds = chosen[A.SEED].nunique() if A.SEED in chosen else 1
    of = runs[A.SEED].nunique() if A.SEED in runs else 1
    over = (f"median over {seeds} seeds" if seeds > 1 else "one seed") + (f" (of {of}, to bound the fetch)" if of > seeds else "")
    sel = " (best setting per loss, selected on test metric)" if r.tuning else ""
    train = key == "train/loss"
    what = "Training loss (each loss in its own units)" if train else f"{MT.metric(key).label} during training"
    title = f"{what} — {over}{sel}{fam}"
    positive = bool((t["q25"].dropna() > 0).all() and (t["median"].dropna() > 0).all())
    spread = t["median"].max() / t["median"].min() if positive and t["median"].min() > 0 else 1.0
    log_y = positive and (train or (MT.metric(key).higher_is_better is False and spread >= 10))
    name = "train_loss_curves" if train else f"{_slug(key)}_curves"
    png = plots.curve_plot(t, out / f"{tag}{name}", ylabel=MT.metric(key).label if train else metric_label(key),
                           title=title, log_y=log_y)
    band = "; shaded: inter-quartile range over seeds" if seeds > 1 else ""
    cap = f"{title}{band}. Drawn from {len(chosen)} runs (histories fetched for these only)."
    if train:
        cap += " Losses differ in scale and meaning, so compare shapes, not heights, across losses."
        bs = pd.to_numeric(chosen["train.batch_size"], errors="coerce") if "train.batch_size" in chosen else None
        if bs is not None and bs.notna().any():
            cap += (" With minibatches (train.batch_size), each point is the loss on that step's minibatch, and "
                    "the last one on the full training split: a loss that depends on the batch (triplet mining, "
                    "pairs) can jump there.")
    else:
        cap += " Test metric at each evaluation point (train.eval_every)."
    return Figure(png, cap)


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s).strip("_")


from harness.report import density  # noqa: E402,F401  (registers the density figure)
from harness.report import training_figures  # noqa: E402,F401  (registers the study figure loss_and_metrics)
from harness.report import regularization_figures  # noqa: E402,F401  (the regularization study's figure kinds)
from harness.report import lr_figures  # noqa: E402,F401  (registers the learning-rate figures)
from harness.report import optimum_figures  # noqa: E402,F401  (registers loglog_vs_x, gap_curves)
from harness.report import profile_figure  # noqa: E402,F401  (the performance profile)
from harness.report import search_figures  # noqa: E402,F401  (the search-progress figure)
