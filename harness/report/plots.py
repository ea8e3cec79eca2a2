"""Drawing. Each function takes a small table, saves `<path>.png` and the CSV it was drawn
from as `<path>.csv`, and never calls show(). Which tables to draw is decided in figures.py.

Panels: a table's `row` and `col` columns (strings; "" when unused) place each point. With a
single row the panels wrap, at most WRAP per line.

    metric_plot  columns row, col, line, x, mean, ci_lo, ci_hi (or ci95, a half-width), n, n_runs,
                 n_diverged: the mean and its interval per line (error bars), x numeric or categorical
    curve_plot   columns row, col, line, step, median, q25, q75, n_runs
                 median over runs per line, the inter-quartile band shaded
    density_plot columns row, col, line, run_id, x, p, q (line `target p`: p's own rows)
                 the target density thick and black, one thin line per run's fitted q

The plot kinds of single studies (coefficient paths, heatmaps, log-log lines) are in charts.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WRAP = 3


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_ASSIGNED: dict[str, str] = {}   # label -> colour, for the figures of one report


def reset_colors() -> None:
    """Starts a report's palette (build_report calls it)."""
    _ASSIGNED.clear()


def colors(labels: list[str]) -> dict[str, str]:
    """One tab10 colour per line label, the same in every figure of a report: a label keeps the
    colour it got in the first figure that drew it (new labels take free colours, in sorted
    order). Where that would give two lines of one figure the same colour (over ten labels in
    the report), the figure falls back to its own sorted order."""
    palette = [f"C{i}" for i in range(10)]
    labs = sorted(set(labels))
    for lab in labs:
        if lab not in _ASSIGNED:
            free = [c for c in palette if c not in _ASSIGNED.values()]
            _ASSIGNED[lab] = free[0] if free else palette[len(_ASSIGNED) % 10]
    got = {lab: _ASSIGNED[lab] for lab in labs}
    if len(set(got.values())) < min(len(labs), 10):
        return {lab: palette[i % 10] for i, lab in enumerate(labs)}
    return got


def same_color(label: str, as_label: str) -> None:
    """Gives `label` the colour `as_label` has (or gets) in this report: a series renamed in
    one figure keeps its colour."""
    colors([as_label])
    _ASSIGNED.setdefault(label, _ASSIGNED[as_label])


def _grid(table: pd.DataFrame) -> tuple[list[tuple[str, str]], int, int]:
    """Panel keys in drawing order, and the grid shape."""
    rows = list(dict.fromkeys(table["row"]))
    cols = list(dict.fromkeys(table["col"]))
    if rows == [""]:
        keys = [("", c) for c in cols]
        ncols = min(len(keys), WRAP) if len(keys) > WRAP + 1 else len(keys)
        return keys, -(-len(keys) // ncols), ncols
    return [(r, c) for r in rows for c in cols], len(rows), len(cols)


def _label_panel(ax, i: int, key: tuple[str, str], nrows: int, ncols: int, n: int,
                 xlabel: str, ylabel: str) -> None:
    """Wrapped panels: a title each, every axis labelled. A rows x columns grid: column names
    over the top row, row names in the first column's y label, x labels on the bottom row."""
    r, c = key
    if r == "":
        ax.set_title(c, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        return
    row, col = divmod(i, ncols)
    if row == 0:
        ax.set_title(c, fontsize=10)
    if col == 0:
        ax.set_ylabel(f"{r}\n{ylabel}", fontsize=9)
    if row == nrows - 1:
        ax.set_xlabel(xlabel, fontsize=9)


def _figure(nrows: int, ncols: int, w: float = 4.2, h: float = 3.2, sharey: bool | str = False):
    plt = _mpl()
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(w * ncols + 0.6, 7.0), h * nrows + 1.3), squeeze=False,
                             layout="constrained", sharey=sharey)
    return fig, axes


def _finish(fig, handles: dict, title: str, path: Path, sort: bool = True) -> None:
    if handles:
        names = sorted(handles) if sort else list(handles)
        # as many columns as fit the figure's width (~13 characters per inch at 9 pt, plus the
        # marker): long series names wrap into rows instead of running off both edges
        fit = int(fig.get_size_inches()[0] * 13 // (max(len(str(k)) for k in names) + 6))
        fig.legend([handles[k] for k in names], names, loc="outside lower center",
                   ncol=max(1, min(len(handles), 5, fit)), frameon=False, fontsize=9)
    import textwrap

    width = int(fig.get_size_inches()[0] * 10)   # ~10 characters per inch at 11 pt
    fig.suptitle(textwrap.fill(title, width), fontsize=11)
    fig.savefig(path.with_suffix(".png"), dpi=110)
    _mpl().close(fig)


def _log_labels(ax) -> None:
    """Plain numbers (0.5, 2, 1e+03) on a log axis; minor ticks labelled only where the axis
    spans less than about 1.5 decades, so that a short axis still reads."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    ax.yaxis.set_major_formatter(Plain(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1.5, 0.5)))
    ax.tick_params(axis="y", which="both", labelsize=8)


def _diverged_note(ax, p: pd.DataFrame) -> None:
    """Names the lines with diverged runs in this panel (their means leave those runs out)."""
    d = p.groupby("line")[["n_diverged", "n_runs"]].sum()
    d = d[d["n_diverged"] > 0]
    if len(d):
        text = "diverged: " + ", ".join(f"{k} {int(r.n_diverged)}/{int(r.n_runs)}" for k, r in d.iterrows())
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", ha="left", fontsize=8, color="#b3261e",
                bbox=dict(facecolor="white", alpha=0.8, lw=0, pad=1.5))


def metric_plot(table: pd.DataFrame, path: Path, *, ylabel: str, xlabel: str, title: str,
                log_x: bool = False, bounds: tuple[float | None, float | None] = (None, None)) -> Path:
    """Mean +- 95% CI of a final metric vs x, one line per loss, one panel per facet value.
    Lines are nudged sideways a little so that their error bars do not hide each other. A t
    interval may reach past what the metric can take (below 0 for RMSE or KL, above 1 for an
    accuracy): the y axis stops at the metric's `bounds` (lowest, highest) there."""
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = _grid(table)
    fig, axes = _figure(nrows, ncols)
    lines = sorted(dict.fromkeys(table["line"]))
    cmap = colors(lines)
    categorical = not pd.api.types.is_numeric_dtype(table["x"])
    handles = {}
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        r, c = keys[i]
        p = table[(table["row"] == r) & (table["col"] == c)]
        xs = list(dict.fromkeys(p["x"])) if categorical else sorted(p["x"].dropna().unique())
        span = (len(xs) - 1) if categorical else (np.ptp(xs) if len(xs) > 1 else 1.0)
        for j, lab in enumerate(lines):
            d = p[p["line"] == lab]
            if d.empty:
                continue
            d = d.sort_values("x") if not categorical else d
            pos = np.array([xs.index(v) for v in d["x"]], float) if categorical else d["x"].to_numpy(float)
            nudge = 0.0 if categorical else (j - (len(lines) - 1) / 2) * 0.012 * (span or 1.0)
            if log_x and not categorical:
                pos = pos * 10 ** (nudge / max(span, 1e-12) * 0.5)
            else:
                pos = pos + nudge
            h = ax.errorbar(pos, d["mean"], yerr=_yerr(d), color=cmap[lab], marker="o", ms=4,
                            capsize=3, lw=1.6, elinewidth=1.1, label=lab)
            handles.setdefault(lab, h)
        if categorical:
            ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30, ha="right")
            ax.set_xlim(-0.5, len(xs) - 0.5)
        elif log_x:
            ax.set_xscale("log")
        _clip_y(ax, p, bounds)
        _diverged_note(ax, p)
        _label_panel(ax, i, keys[i], nrows, ncols, len(keys), xlabel, ylabel)
        ax.grid(alpha=0.3)
    _finish(fig, handles, title, path)
    return path.with_suffix(".png")


def _yerr(d: pd.DataFrame) -> np.ndarray:
    """[2, n] distances below and above each mean: from ci_lo / ci_hi (an interval that keeps to
    the metric's bounds), else a symmetric ci95 half-width; 0 where there is none."""
    m = d["mean"].to_numpy(float)
    if {"ci_lo", "ci_hi"} <= set(d.columns):
        below, above = m - d["ci_lo"].to_numpy(float), d["ci_hi"].to_numpy(float) - m
    else:
        below = above = d["ci95"].to_numpy(float)
    return np.nan_to_num(np.vstack([below, above]).clip(min=0))


def _clip_y(ax, p: pd.DataFrame, bounds: tuple[float | None, float | None]) -> None:
    """Stops the y axis at a bound of the metric that an error bar crosses, with a small margin
    so that points on the bound stay visible."""
    lo_b, hi_b = bounds
    below, above = _yerr(p)
    lo, hi = np.nanmin(p["mean"] - below, initial=np.inf), np.nanmax(p["mean"] + above, initial=-np.inf)
    if not np.isfinite(lo) or not np.isfinite(hi):
        return
    bottom, top = ax.get_ylim()
    pad = 0.02 * (top - bottom)
    if lo_b is not None and lo < lo_b:
        ax.set_ylim(bottom=lo_b - pad)
    if hi_b is not None and hi > hi_b:
        ax.set_ylim(top=hi_b + pad)


def curve_plot(table: pd.DataFrame, path: Path, *, ylabel: str, title: str, log_y: bool | None = None,
               sharey: bool | str | None = None, log_x: bool = False) -> Path:
    """Median curve per loss (inter-quartile band shaded), one panel per facet value; log y axis
    when `log_y`, or by default when every value is positive. `sharey` (default: one y scale per
    grid row) False where the panels of a row show different quantities. `log_x`: steps on a
    symmetric log axis, linear up to the first step after 0 (so step 0 stays on the axis), for
    curves whose early steps and long tail both matter."""
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = _grid(table)
    # panels side by side are the same scenario at other ratios: one y scale per grid row
    if sharey is None:
        sharey = True if table["row"].eq("").all() else "row"
    fig, axes = _figure(nrows, ncols, w=3.6, h=2.8, sharey=sharey)
    lines = list(dict.fromkeys(table["line"]))
    cmap = colors(lines)
    handles = {}
    positive = bool((table["q25"].dropna() > 0).all() and (table["median"].dropna() > 0).all())
    positive = positive if log_y is None else bool(log_y and positive)
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        r, c = keys[i]
        p = table[(table["row"] == r) & (table["col"] == c)]
        for lab in lines:
            d = p[p["line"] == lab].sort_values("step")
            if d.empty:
                continue
            (h,) = ax.plot(d["step"], d["median"], color=cmap[lab], lw=1.5, label=lab)
            ax.fill_between(d["step"], d["q25"], d["q75"], color=cmap[lab], alpha=0.18, lw=0)
            handles.setdefault(lab, h)
        if positive:
            ax.set_yscale("log")
            _log_labels(ax)
        from matplotlib.ticker import MaxNLocator

        if log_x:
            after = table["step"][table["step"] > 0]
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("symlog", linthresh=float(after.min()) if len(after) else 1.0, linscale=0.5)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole numbers
        _label_panel(ax, i, keys[i], nrows, ncols, len(keys), "step", ylabel)
        ax.grid(alpha=0.3, which="both" if positive else "major")
    _finish(fig, handles, title, path)
    return path.with_suffix(".png")


TARGET = "target p"


def density_plot(table: pd.DataFrame, path: Path, *, title: str, xlabel: str = "value",
                 ylabel: str = "density") -> Path:
    """The target density (rows with line == TARGET) and each run's fitted density q (thin, one
    colour per line, one curve per run_id), one panel per facet value; the panel title names
    the target (column `mixture`) when the table has one."""
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = _grid(table)
    fig, axes = _figure(nrows, ncols, w=8.4 if len(keys) == 1 else 5.0, h=3.8 if len(keys) == 1 else 3.4)
    lines = [lab for lab in dict.fromkeys(table["line"]) if lab != TARGET]
    cmap = colors(lines)
    handles = {}
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        r, c = keys[i]
        p = table[(table["row"] == r) & (table["col"] == c)]
        tgt = p[p["line"] == TARGET]
        if len(tgt):
            (h,) = ax.plot(tgt["x"], tgt["p"], color="black", lw=2.4, zorder=3)
            ax.fill_between(tgt["x"], 0, tgt["p"], color="black", alpha=0.07, lw=0)
            handles.setdefault(TARGET, h)
        for lab in lines:
            d = p[p["line"] == lab]
            runs = list(dict.fromkeys(d["run_id"]))
            alpha = 0.9 if len(runs) <= 3 else max(0.35, 0.9 * 3 / len(runs))
            for rid in runs:
                q = d[d["run_id"] == rid]
                ax.plot(q["x"], q["q"], color=cmap[lab], lw=1.1, alpha=alpha, zorder=4)
            if runs and lab not in handles:   # the legend shows the colour at full strength
                from matplotlib.lines import Line2D

                handles[lab] = Line2D([], [], color=cmap[lab], lw=1.6)
        ax.set_ylim(bottom=0)
        mix = str(p["mixture"].iloc[0]) if "mixture" in p and len(p) else ""
        key = (r, " | ".join(s for s in (c, mix) if s)) if r == "" else (r, c)
        _label_panel(ax, i, key, nrows, ncols, len(keys), xlabel, ylabel)
        ax.grid(alpha=0.3)
    order = ([TARGET] if TARGET in handles else []) + sorted(k for k in handles if k != TARGET)
    _finish(fig, {k: handles[k] for k in order}, title, path, sort=False)
    return path.with_suffix(".png")
