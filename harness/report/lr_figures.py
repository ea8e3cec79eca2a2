"""Figures of a learning-rate sweep, for studies (`figures:` in a study file):

    {kind: lr_sweep, metric: test/rmse}        a final metric against the learning rate
    {kind: lr_sweep, metric: opt/gap, floor: 1e-16}
    {kind: steps_to_target, fraction: 0.01}    steps to reach L* + fraction (L0 - L*) (lr.py)
    {kind: lr_curves, at: [0.1, 0.6, 1.0, 1.01]}  train/loss curves at those learning rates

lr_sweep and steps_to_target put the learning rate on a log x axis in units of each run's lr* (harness/report/lr.py:
edge_units), one line per series (the loss and its varying options), one panel per scenario
(data set and its options), a dashed vertical line at lr* (x = 1). Each point is the median over
seeds of the runs that have a value, the whiskers their min and max. A learning rate at which
runs of a series diverged gets an x at the top of the panel in the series' colour, with the
count when only some of its runs diverged (they have no final metric). In steps_to_target a
run that never reached the target within train.steps counts at the budget (a lower bound) and
the level is marked with a triangle on the budget's dotted line. Each figure saves its PNG and
the CSV drawn from (columns row, col, line, x, median, lo, hi, n, n_runs, n_diverged,
n_censored).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.report import plots
from harness.report.figures import Figure, FigureContext, _slug, register_study_figure
from harness.report.lr import CENSORED, LR, STEPS, edge_units, scenario_keys, scenario_label, series_keys, with_steps
from harness.report.series import SEED

XLABEL = "learning rate / lr*  (lr* = 2/λmax of the MSE Hessian)"


def lr_table(runs: pd.DataFrame, metric: str, x: str = LR, floor: float | None = None) -> pd.DataFrame:
    """Per scenario (col), series (line) and learning rate (x, units of lr*): median, min and max
    over the runs with a finite value, their count, and the counts of runs, diverged and censored."""
    from harness.report.aggregate import line_label

    keys, line = scenario_keys(runs, x), series_keys(runs)
    y = pd.to_numeric(runs[metric], errors="coerce").astype(float)
    if floor is not None:
        y = y.where(~(y < floor), floor)
    df = runs.assign(_y=y, _u=edge_units(runs, x), _lv=pd.to_numeric(runs[x], errors="coerce"),
                     col=[scenario_label(r, keys) for _, r in runs.iterrows()],
                     line=[line_label(r, line) for _, r in runs.iterrows()])
    df["_div"] = df["status"].astype(str).eq("diverged") if "status" in df else False
    df["_cens"] = df[CENSORED].astype(bool) if CENSORED in df else False
    rows = []
    for (col, lab, lv), g in df.groupby(["col", "line", "_lv"], sort=True):
        v = g.loc[np.isfinite(g["_y"]), "_y"]
        rows.append(dict(row="", col=col, line=lab, x=float(g["_u"].median()), median=float(v.median()) if len(v) else np.nan,
                         lo=float(v.min()) if len(v) else np.nan, hi=float(v.max()) if len(v) else np.nan, n=len(v),
                         n_runs=len(g), n_diverged=int(g["_div"].sum()), n_censored=int(g["_cens"].sum())))
    return pd.DataFrame(rows, columns=["row", "col", "line", "x", "median", "lo", "hi", "n", "n_runs", "n_diverged",
                                       "n_censored"])


def lr_plot(table: pd.DataFrame, path: Path, *, ylabel: str, title: str, log_y: bool = False,
            budget: float | None = None) -> Path:
    """The learning-rate figure of the module doc, from an lr_table; saves PNG and CSV."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    path = Path(path)
    table.to_csv(path.with_suffix(".csv"), index=False)
    keys, nrows, ncols = plots._grid(table)
    fig, axes = plots._figure(nrows, ncols, w=4.6, h=3.4)
    lines = sorted(dict.fromkeys(table["line"]))
    cmap = plots.colors(lines)
    handles: dict = {}
    xs_all = table["x"].dropna()
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        p = table[(table["row"] == keys[i][0]) & (table["col"] == keys[i][1])]
        top = blended_transform_factory(ax.transData, ax.transAxes)
        for j, lab in enumerate(lines):
            d = p[p["line"] == lab].sort_values("x")
            if d.empty:
                continue
            nudge = 10 ** ((j - (len(lines) - 1) / 2) * 0.012)     # lines a little apart on log x
            ok = d[d["n"] > 0]
            err = np.vstack([(ok["median"] - ok["lo"]).clip(lower=0), (ok["hi"] - ok["median"]).clip(lower=0)])
            h = ax.errorbar(ok["x"] * nudge, ok["median"], yerr=err, color=cmap[lab], marker="o", ms=3.5, lw=1.5,
                            elinewidth=0.9, capsize=2, label=lab)
            handles.setdefault(lab, h)
            for r in d[d["n_diverged"] > 0].itertuples():
                ax.plot([r.x * nudge], [0.965 - 0.045 * j], marker="x", ms=6, mew=1.8, color=cmap[lab],
                        transform=top, clip_on=False, zorder=5)
                if r.n_diverged < r.n_runs:
                    ax.text(r.x * nudge, 0.925 - 0.045 * j, f"{r.n_diverged}/{r.n_runs}", transform=top, fontsize=6,
                            color=cmap[lab], ha="center", va="top")
            if budget is not None:
                c = d[d["n_censored"] > 0]
                if len(c):
                    ax.plot(c["x"] * nudge, [budget] * len(c), ls="none", marker="^", ms=6, mfc="none", mew=1.3,
                            color=cmap[lab], zorder=4)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
            plots._log_labels(ax)
        lo, hi = ax.get_ylim()       # room at the top for the x marks
        if not log_y:
            ax.set_ylim(lo, hi + (hi - lo) * 0.18)
        elif 0 < lo < hi:
            ax.set_ylim(lo, hi * (hi / lo) ** 0.22)
        ax.axvline(1.0, color="0.35", ls="--", lw=1.0, zorder=1)
        if budget is not None:
            ax.axhline(budget, color="0.5", ls=":", lw=1.0, zorder=1)
        ticks = [v for v in (0.01, 0.03, 0.1, 0.3, 0.5, 1, 2, 4) if xs_all.min() * 0.8 <= v <= xs_all.max() * 1.25]
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.xaxis.set_minor_formatter(plt_null())
        plots._label_panel(ax, i, keys[i], nrows, ncols, len(keys), XLABEL, textwrap.fill(ylabel, 48))
        ax.grid(alpha=0.3, which="major")
    handles["lr* (x = 1)"] = Line2D([], [], color="0.35", ls="--", lw=1.0)
    if (table["n_diverged"] > 0).any():
        handles["diverged (x at the top)"] = Line2D([], [], ls="none", marker="x", color="0.2", mew=1.8)
    if budget is not None and (table["n_censored"] > 0).any():
        handles[f"not reached in {budget:g} steps"] = Line2D([], [], ls="none", marker="^", mfc="none", color="0.2")
    order = [k for k in lines if k in handles] + [k for k in handles if k not in lines]
    plots._finish(fig, {k: handles[k] for k in order}, title, path, sort=False)
    return path.with_suffix(".png")


def plt_null():
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _seeds(runs: pd.DataFrame) -> str:
    n = runs[SEED].nunique() if SEED in runs else 1
    return f"median over {n} seeds, whiskers min–max" if n > 1 else "one seed"


@register_study_figure("lr_sweep")
def lr_sweep(runs: pd.DataFrame, args: dict, ctx: FigureContext) -> Figure | None:
    """A final metric against the learning rate in units of lr* (module doc)."""
    fam = MT.FAMILIES.get(str(runs["eval"].iloc[0])) if "eval" in runs and len(runs) else None
    metric = args.get("metric") or (fam.primary if fam else "test/rmse")
    x = args.get("x", LR)
    if metric not in runs or x not in runs:
        return None
    floor = args.get("floor")
    t = lr_table(runs, metric, x, None if floor is None else float(floor))
    if t["n"].sum() == 0:
        return None
    pos = t[t["n"] > 0]
    spread = [p["hi"].max() / p["lo"].min() if (p["lo"] > 0).all() else 0.0 for _, p in pos.groupby("col")]
    log_y = bool(args.get("log_y", max(spread, default=0.0) >= 30))   # by default: where a panel spans decades
    m = MT.metric(metric)
    title = f"{m.label} vs learning rate — {_seeds(runs)}"
    png = lr_plot(t, ctx.out / f"{ctx.prefix}{_slug(metric)}_vs_lr", ylabel=m.axis_label(), title=title, log_y=log_y)
    n_div = int(t["n_diverged"].sum())
    fl = f" Values below {float(floor):g} are drawn at {float(floor):g} (float rounding)." if floor is not None else ""
    return Figure(png, f"{title}. Learning rate in units of each data set's lr*; dashed line: lr* (x = 1). "
                       f"{n_div} diverged runs have no final value: an x at the top marks each learning rate where "
                       f"some did (k/n: only some of them).{fl}")


@register_study_figure("steps_to_target")
def steps_figure(runs: pd.DataFrame, args: dict, ctx: FigureContext) -> Figure | None:
    """Steps to reach L* + fraction (L0 - L*) against the learning rate (module doc), log-log."""
    x, frac = args.get("x", LR), float(args.get("fraction", 0.01))
    if x not in runs:
        return None
    try:
        withs = with_steps(runs, ctx.curves, frac)
    except ValueError:
        return None
    t = lr_table(withs, STEPS, x)
    if t["n"].sum() == 0:
        return None
    budget = pd.to_numeric(runs["train.steps"], errors="coerce").max() if "train.steps" in runs else None
    title = f"Steps to reach {100 * (1 - frac):g}% of the way to the optimal training loss — {_seeds(runs)}"
    png = lr_plot(t, ctx.out / f"{ctx.prefix}steps_to_target_vs_lr", ylabel="steps to target (log)", title=title,
                  log_y=True, budget=budget)
    return Figure(png, f"{title}. The target is L* + {frac:g} (L0 − L*): L0 the initial training loss, L* the loss at "
                       f"the exact optimum (final train/objective − opt/gap). Runs that never reached it in "
                       f"{budget:g} steps count at {budget:g} (a lower bound) and are marked ▲ on the dotted line; "
                       f"diverged runs (x at the top) have none. Dashed line: lr*.")


@register_study_figure("lr_curves")
def lr_curves(runs: pd.DataFrame, args: dict, ctx: FigureContext) -> Figure | None:
    """Training curves at a few learning rates (`at`, units of lr*): one panel per series (rows)
    and scenario (columns), one line per learning rate, the median over seeds with the
    inter-quartile band (plots.curve_plot); the first `steps` steps (default all)."""
    from harness.report.aggregate import line_label

    x, key = args.get("x", LR), args.get("metric", "train/loss")
    at = [float(v) for v in args.get("at") or []]
    if x not in runs or not at:
        return None
    u = edge_units(runs, x)
    pick = np.zeros(len(runs), bool)
    for v in at:
        pick |= np.isclose(u.to_numpy(float), v, rtol=1e-6)
    chosen = runs[pick].assign(_u=u[pick])
    if chosen.empty:
        return None
    chosen = chosen.sort_values([SEED] if SEED in chosen else ["run_id"]).head(MAX_RUNS)
    keys, line = scenario_keys(runs, x), series_keys(runs)
    hist = ctx.curves(chosen["run_id"].astype(str).tolist(), key)
    if hist.empty:
        return None
    lab = pd.DataFrame({"run_id": chosen["run_id"].astype(str),
                        "row": [line_label(r, line) for _, r in chosen.iterrows()],
                        "col": [scenario_label(r, keys) for _, r in chosen.iterrows()],
                        "line": [f"{v:g} lr*" for v in chosen["_u"]], "_u": chosen["_u"].to_numpy()})
    h = hist.merge(lab, on="run_id")
    if args.get("steps") is not None:
        h = h[h["step"] <= int(args["steps"])]
    g = h.groupby(["row", "col", "_u", "line", "step"], sort=True)["value"]
    t = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                      "n_runs": g.count()}).reset_index()
    # a line stops where its first run stopped (diverged): a median over fewer runs would jump
    whole = t.groupby(["row", "col", "_u"])["n_runs"].transform("max")
    t = t[t["n_runs"] == whole].drop(columns="_u")
    seeds = chosen[SEED].nunique() if SEED in chosen else 1
    title = (f"{MT.metric(key).label if key != 'train/loss' else 'Training loss'} at "
             f"{', '.join(f'{v:g}' for v in at)} × lr* — {'median over %d seeds' % seeds if seeds > 1 else 'one seed'}")
    png = plots.curve_plot(t, ctx.out / f"{ctx.prefix}{_slug(key)}_curves_by_lr", ylabel=MT.metric(key).label, title=title,
                           log_y=True)
    return Figure(png, f"{title}; shaded: inter-quartile range over seeds. Rows: losses (each in its own units); "
                       f"columns: data sets. A curve that stops has diverged where its first run did (its loss passed "
                       f"train.divergence_factor x the initial loss); one that levels off above the others has stalled (MAE, Huber above its "
                       f"own edge) or oscillates (MSE at lr*).")


MAX_RUNS = 300   # histories fetched for one curve figure, at most
