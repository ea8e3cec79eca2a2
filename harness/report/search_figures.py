"""The search-progress figure (`figures: [{kind: search_progress}]`; drawn by default for a sweep
whose runs come from an adaptive search, and for a tuned study's phase 1 when it was one): the
best validation score so far against the run-steps spent, one step line per series (a search's
study: one loss, one data set), a dot at each trial, a ring where the best improved. For a grid
the same curve, its settings in ascending order, to compare a search with the grid it replaces
(harness/search/progress.py computes the table; its CSV is saved beside the PNG).

    args: metric (default val/<the family's primary>), log_x (default false)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.report import aggregate as A
from harness.report.figures import Figure, FigureContext, register_study_figure


@register_study_figure("search_progress")
def search_progress(runs: pd.DataFrame, args: dict, ctx: FigureContext) -> Figure | None:
    from harness.search.progress import progress

    fams = A.families(runs) if len(runs) else []
    if not fams:
        return None
    sub = runs[runs["eval"] == fams[0]]
    if "phase" in sub and (sub["phase"] == "tune").any():
        sub = sub[sub["phase"] == "tune"]
    metric = args.get("metric") or "val/" + MT.FAMILIES[fams[0]].primary.split("/", 1)[1]
    higher = bool(MT.higher_is_better(metric))
    table = progress(sub, metric, higher)
    if table.empty or table["best"].notna().sum() == 0:
        return None
    path = ctx.out / f"{ctx.prefix}search_progress"
    table.to_csv(path.with_suffix(".csv"), index=False)
    searched = "trial" in sub and pd.to_numeric(sub["trial"], errors="coerce").notna().all()
    kind = "search" if searched else "grid, its settings in ascending order"
    m = MT.metric(metric)
    title = f"Search progress ({kind}): best {m.label} so far against run-steps spent"
    png = _plot(table, path, title=title, ylabel=f"best {m.axis_label()}", log_x=bool(args.get("log_x", False)))
    ends = "; ".join(f"{s}: {g['best'].iloc[-1]:.4g} after {int(g['run_steps'].iloc[-1]):,} run-steps ({len(g)} trials)"
                     for s, g in table.groupby("series", sort=True))
    return Figure(png, f"{title}. Run-steps: the training steps of every run so far, its seeds included (a diverged "
                       f"run's up to its divergence); a trial with a diverged run never improves the best. Final: {ends}. "
                       f"The numbers in {path.name}.csv.")


def defaults(runs: pd.DataFrame, study: dict, ctx: FigureContext) -> list[Figure]:
    """The figure for a report part whose runs come from a search (unless the study names it)."""
    if any(a.get("kind") == "search_progress" for a in study.get("figures") or []):
        return []
    if "trial" not in runs or pd.to_numeric(runs["trial"], errors="coerce").notna().sum() == 0:
        return []
    fig = search_progress(runs[pd.to_numeric(runs["trial"], errors="coerce").notna()], {}, ctx)
    return [fig] if fig is not None else []


def _plot(table: pd.DataFrame, path, *, title: str, ylabel: str, log_x: bool):
    from harness.report.plots import _figure, _finish, colors

    fig, axes = _figure(1, 1, w=7.0, h=4.2)
    ax = axes[0, 0]
    series = list(dict.fromkeys(table["series"]))
    cmap = colors(series)
    handles = {}
    for s in series:
        d = table[table["series"] == s].sort_values("order")
        x, y = d["run_steps"].to_numpy(float), d["best"].to_numpy(float)
        (h,) = ax.step(x, y, where="post", color=cmap[s], lw=1.6)
        ax.plot(x, y, ".", color=cmap[s], ms=3)
        better = np.r_[np.isfinite(y[:1]), np.isfinite(y[1:]) & (y[1:] != y[:-1])] if len(y) else []
        ax.plot(x[better], y[better], "o", mfc="none", color=cmap[s], ms=6)
        handles[s] = h
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("run-steps spent (sum of the steps every run trained)", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(alpha=0.3)
    _finish(fig, handles, title, path)
    return path.with_suffix(".png")
