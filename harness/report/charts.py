"""Plot kinds that single studies ask for, in plots.py's style: each function takes a small
table, saves `<path>.png` and the CSV it was drawn from as `<path>.csv`, and never calls show();
panels are placed by the table's `row` and `col` columns.

    path_plot    columns row, col, group, line, x, value
                 one line per coefficient against x >= 0 (log axis, 0 a decade left), coloured by group
    heatmap_plot columns row, col, x, y, mean, n_runs, n_diverged
                 one annotated cell per (x, y), diverged cells grey, each panel's best cell outlined
    loglog_plot  columns row, col, line, hue, dash, x, mean, lo, hi (lo/hi NaN: no bar)
                 mean with its [lo, hi] bar per line on log-log axes, colour by `hue`, line
                 style by `dash`; rows with line `reference`-like names (REFERENCE prefix)
                 are drawn as thin grey dashed guides
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.plots import _figure, _finish, _grid, _label_panel, _log_labels, _mpl, colors


def zero_log_positions(values) -> tuple[dict[float, float], list[float], list[str]]:
    """Positions on a log10 axis for values >= 0 (a penalty grid 0, 0.001, ...): log10 v, and 0
    one decade left of the smallest positive value; with the tick positions and labels."""
    xs = sorted({float(v) for v in values})
    pos_vals = [v for v in xs if v > 0]
    low = np.log10(min(pos_vals)) - 1.0 if pos_vals else 0.0
    pos = {v: (np.log10(v) if v > 0 else low) for v in xs}
    return pos, [pos[v] for v in xs], [f"{v:g}" for v in xs]


def path_plot(table: pd.DataFrame, path: Path, *, title: str, xlabel: str, ylabel: str) -> Path:
    """Regularization paths: each coefficient (column `line`) against x (>= 0, log axis with 0 put
    one decade left of the smallest positive x), one colour per `group` (true nonzero / true zero;
    with one group and at most 10 coefficients, one colour per coefficient), one panel per
    row/col. Columns row, col, group, line, x, value."""
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = _grid(table)
    fig, axes = _figure(nrows, ncols, w=4.6, h=3.4, sharey=True)
    groups = list(dict.fromkeys(table["group"]))
    lines = list(dict.fromkeys(table["line"]))
    by_line = len(groups) == 1 and len(lines) <= 10      # no truth to colour by: one colour per coefficient
    palette = ({lab: f"C{i}" for i, lab in enumerate(lines)} if by_line else
               {g: c for g, c in zip(groups, ("#c0392b", "#7f8c8d", "#2471a3", "#7d3c98"))})
    pos, ticks, labels = zero_log_positions(table["x"])
    handles = {}
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        p = table[(table["row"] == keys[i][0]) & (table["col"] == keys[i][1])]
        for (g, lab), d in p.groupby(["group", "line"], sort=False):
            d = d.sort_values("x")
            (h,) = ax.plot(d["x"].map(pos), d["value"], color=palette[lab if by_line else g], lw=1.3, alpha=0.85,
                           marker=".", ms=3, zorder=3 - groups.index(g) * 0.5)   # the first group (true nonzero) on top
            handles.setdefault(lab if by_line else f"{g} ({p.loc[p['group'] == g, 'line'].nunique()})", h)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(ticks, labels, rotation=30, ha="right", fontsize=8)
        _label_panel(ax, i, keys[i], nrows, ncols, len(keys), xlabel, ylabel)
        ax.grid(alpha=0.3)
    _finish(fig, handles, title, path, sort=False)
    return path.with_suffix(".png")


def heatmap_plot(table: pd.DataFrame, path: Path, *, title: str, xlabel: str, ylabel: str, label: str,
                 higher_is_better: bool | None = None) -> Path:
    """Mean final metric per cell (x, y), annotated, one panel per row/col, one colour scale per
    row of panels (its colour bar on the right). A cell whose runs all diverged is grey and says
    `diverged`; partly diverged cells give the count; the best cell of a panel is outlined.
    Columns row, col, x, y, mean, n_runs, n_diverged; x and y shown as categories in numeric order."""
    plt = _mpl()
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = _grid(table)
    xs, ys = sorted(table["x"].unique()), sorted(table["y"].unique())
    fig, axes = _figure(nrows, ncols, w=0.62 * len(xs) + 1.6, h=0.5 * len(ys) + 1.4)
    cmap = plt.get_cmap("viridis" if higher_is_better else "viridis_r").with_extremes(bad="#d0d0d0")
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        r, c = keys[i]
        p = table[(table["row"] == r) & (table["col"] == c)]
        grid = p.pivot_table(index="y", columns="x", values="mean", aggfunc="first").reindex(index=ys, columns=xs)
        row_vals = table.loc[table["row"] == r, "mean"].to_numpy(float)
        row_vals = row_vals[np.isfinite(row_vals)]
        vmin, vmax = (row_vals.min(), row_vals.max()) if len(row_vals) else (0.0, 1.0)
        im = ax.imshow(np.ma.masked_invalid(grid.to_numpy(float)), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                       origin="lower")
        div = p.set_index(["y", "x"])[["n_diverged", "n_runs"]]
        for yi, yv in enumerate(ys):
            for xi, xv in enumerate(xs):
                v = grid.at[yv, xv]
                nd, nr = div.loc[(yv, xv)] if (yv, xv) in div.index else (0, 0)
                text = "diverged" if not np.isfinite(v) and nd else "" if not np.isfinite(v) else f"{v:.3g}"
                if np.isfinite(v) and nd:
                    text += f"\n{int(nd)}/{int(nr)} div"
                shade = (v - vmin) / (vmax - vmin) if np.isfinite(v) and vmax > vmin else 0.5
                dark = (shade > 0.6) if not higher_is_better else (shade < 0.4)
                ax.text(xi, yi, text, ha="center", va="center", fontsize=7 if nd else 8,
                        color="white" if dark and np.isfinite(v) else "black")
        finite = grid.stack().dropna()
        if len(finite) and higher_is_better is not None:
            by, bx = finite.idxmax() if higher_is_better else finite.idxmin()
            ax.add_patch(plt.Rectangle((xs.index(bx) - 0.5, ys.index(by) - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys], fontsize=8)
        _label_panel(ax, i, keys[i], nrows, ncols, len(keys), xlabel, ylabel)
        if i % ncols == ncols - 1 or i == len(keys) - 1:
            fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    _finish(fig, {}, title, path)
    return path.with_suffix(".png")


REFERENCE = "slope "   # loglog_plot: a line named "slope 1 ..." is a guide, not data
DASHES = ["-", "--", ":", "-."]


def loglog_plot(table: pd.DataFrame, path: Path, *, ylabel: str, xlabel: str, title: str) -> Path:
    """Mean (with its [lo, hi] interval as error bars) vs x on log-log axes, one line per
    `line`, coloured by `hue` (the same colour for one hue across lines) and styled by `dash`;
    lines whose name starts with REFERENCE are guides (grey, dashed, no markers). Points with
    a non-positive mean have no place on a log axis and are left out of the drawing (they stay
    in the CSV)."""
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = _grid(table)
    fig, axes = _figure(nrows, ncols, w=4.6, h=3.6)
    data = table[~table["line"].astype(str).str.startswith(REFERENCE)]
    cmap = colors([str(h) for h in dict.fromkeys(data["hue"])])
    styles = {d: DASHES[i % len(DASHES)] for i, d in enumerate(dict.fromkeys(data["dash"]))}
    handles = {}
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        r, c = keys[i]
        p = table[(table["row"] == r) & (table["col"] == c)]
        for lab in dict.fromkeys(p["line"]):
            d = p[(p["line"] == lab) & (p["mean"] > 0)].sort_values("x")
            if d.empty:
                continue
            if str(lab).startswith(REFERENCE):
                (h,) = ax.plot(d["x"], d["mean"], color="0.35", lw=1.1, ls=(0, (4, 3)), zorder=1)
            else:
                lo = (d["mean"] - d["lo"]).clip(lower=0).fillna(0)
                hi = (d["hi"] - d["mean"]).clip(lower=0).fillna(0)
                h = ax.errorbar(d["x"], d["mean"], yerr=[lo, hi], color=cmap[str(d["hue"].iloc[0])],
                                ls=styles[d["dash"].iloc[0]], marker="o", ms=3.5, capsize=2, lw=1.4,
                                elinewidth=0.9)
            handles.setdefault(lab, h)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_labels(ax)
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", which="both", labelsize=8)
        _label_panel(ax, i, keys[i], nrows, ncols, len(keys), xlabel, ylabel)
        ax.grid(alpha=0.3, which="both")
    guides = [k for k in handles if str(k).startswith(REFERENCE)]
    order = sorted(k for k in handles if k not in guides) + guides
    _finish(fig, {k: handles[k] for k in order}, title, path, sort=False)
    return path.with_suffix(".png")


def profile_plot(table: pd.DataFrame, path: Path, *, title: str, xlabel: str = "factor τ of the best",
                 ylabel: str = "share of problems within τ of the best") -> Path:
    """Performance profiles: a step line rho(tau) per solver (`line`), tau on a log axis from 1."""
    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    fig, axes = _figure(1, 1, w=7.0, h=4.2)
    ax = axes[0, 0]
    lines = list(dict.fromkeys(table["line"]))
    cmap = colors(lines)
    handles = {}
    for lab in lines:
        d = table[table["line"] == lab].sort_values("tau")
        (h,) = ax.step(d["tau"], d["rho"], where="post", color=cmap[lab], lw=1.8, label=lab)
        handles[lab] = h
    ax.set_xscale("log")
    ax.set_xlim(1, float(table["tau"].max()))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    _finish(fig, handles, title, path)
    return path.with_suffix(".png")
