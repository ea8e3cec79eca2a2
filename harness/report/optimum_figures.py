"""Study figures about how close training gets to a convex problem's exact optimum
(train.optimum=true: opt/distance, opt/gap; harness/optimum.py). Two kinds, named in a study's
`figures:`:

  loglog_vs_x    {kind, metric (opt/distance), x (optimizer.lr), lines ([optimizer.name,
                 optimizer.schedule]), panels (dataset.name), rows (a param, optional),
                 order ({param: [values]}: panel and row order, else sorted), reference ({slope:
                 1, through: {params}, x_range: [lo, hi]})}: the metric against x on log-log
                 axes, one line per combination of `lines` (colour by the last of them, line
                 style by the first when there are two or more), one panel per value of
                 `panels` (and of `rows`). Each point is the geometric mean over seeds,
                 exp(mean log y), with the 95% t interval of the mean log, exp(mean log y +- t
                 sd(log y) / sqrt(n)): the scale the log-log slope checks fit on. In each panel
                 the reference is a guide of the given slope through that panel's runs of
                 `through` in `x_range`: y = c x^slope, log c their mean of log y - slope log x.
  gap_curves     {kind, at ({optimizer.lr: 0.1}), lines, panels, rows, order}: the objective gap during
                 training, J(theta_t) - J*, median over seeds (inter-quartile band), for the runs
                 at `at`. J(theta_t) is the curve train/objective (every train.eval_every steps);
                 J* = final train/objective - opt/gap, the run's own exact optimum, so the last
                 point of each curve is its opt/gap. A value <= 0 (J* met to rounding) has no
                 place on the log axis and is left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.report import charts, plots
from harness.report.claims import select
from harness.report.claims.stats import t_ci95
from harness.report.claims.settings import label, numeric
from harness.report.figures import Figure, _slug, register_study_figure, x_label
from harness.report.series import SEED, value_text

LINES = ["optimizer.name", "optimizer.schedule"]


def _keys(runs: pd.DataFrame, args: dict) -> tuple[list[str], str | None, str | None]:
    lines = [c for c in (args.get("lines") or LINES) if c in runs]
    panels, rows = args.get("panels", "dataset.name"), args.get("rows")
    return lines, (panels if panels in runs else None), (rows if rows in runs else None)


def _with_labels(runs: pd.DataFrame, args: dict) -> pd.DataFrame:
    """Adds row, col (the values of `rows` and `panels`), line (`gd (cosine)`), hue (the last
    line param's value) and dash (the first's, when there are two or more), in the panel and row
    order of `order` (else sorted)."""
    lines, panel, row = _keys(runs, args)
    out = runs.copy()
    for name, param in (("row", row), ("col", panel)):
        out[name] = out[param].map(value_text) if param else ""
        if param:
            known = [value_text(v) for v in (args.get("order") or {}).get(param, [])]
            rank = {v: i for i, v in enumerate(known + sorted(set(out[name]) - set(known)))}
            out[f"_{name}_rank"] = out[name].map(rank)
        else:
            out[f"_{name}_rank"] = 0
    out["line"] = [label(dict(zip(lines, vals))) for vals in out[lines].itertuples(index=False)] if lines else "runs"
    out["hue"] = out[lines[-1]].map(value_text) if lines else "runs"
    out["dash"] = out[lines[0]].map(value_text) if len(lines) > 1 else ""
    return out.sort_values(["_row_rank", "_col_rank"], kind="stable")


def loglog_table(runs: pd.DataFrame, args: dict) -> tuple[pd.DataFrame, dict[str, float]]:
    """The table loglog_plot draws (mean = geometric mean over seeds, lo/hi its 95% interval,
    n runs with a positive finite value, n_runs in all) plus the reference guide's rows, and
    the fitted log-log slope of each panel's reference runs (keyed `row col`)."""
    metric, x = args.get("metric", "opt/distance"), args.get("x", "optimizer.lr")
    df = _with_labels(runs, args)
    df["_x"], df["_y"] = numeric(df[x]), numeric(df[metric])
    df = df[df["_x"] > 0]
    ok = np.isfinite(df["_y"]) & (df["_y"] > 0)
    df = df.assign(_log=np.where(ok, np.log(df["_y"].where(ok, 1.0)), np.nan))
    keys = ["_row_rank", "_col_rank", "row", "col", "line", "hue", "dash", "_x"]
    g = df.groupby(keys, sort=True)["_log"]
    t = pd.DataFrame({"m": g.mean(), "sd": g.std(ddof=1), "n": g.count(), "n_runs": g.size()}).reset_index()
    half = t_ci95(t["sd"], t["n"])
    t = t.assign(mean=np.exp(t["m"]), lo=np.exp(t["m"] - half), hi=np.exp(t["m"] + half)).rename(columns={"_x": "x"})
    cols = ["row", "col", "line", "hue", "dash", "x", "mean", "lo", "hi", "n", "n_runs"]
    ref = args.get("reference") or {}
    slopes: dict[str, float] = {}
    rows = []
    if ref:
        b = float(ref.get("slope", 1.0))
        rr = select(df, ref.get("through")) if ref.get("through") else df
        xr = ref.get("x_range") or [None, None]
        lo_x = -np.inf if xr[0] is None else float(xr[0])
        hi_x = np.inf if xr[1] is None else float(xr[1])
        rr = rr[(rr["_x"] >= lo_x) & (rr["_x"] <= hi_x) & rr["_log"].notna()]
        name = f"{charts.REFERENCE}{b:g} (∝ {x_label(x, runs)}{'^' + format(b, 'g') if b != 1 else ''})"
        for (rk, ck, row, col), p in rr.groupby(["_row_rank", "_col_rank", "row", "col"], sort=True):
            u, v = np.log(p["_x"].to_numpy()), p["_log"].to_numpy()
            if len(np.unique(u)) >= 2:
                slopes[f"{row} {col}".strip()] = float(np.polyfit(u, v, 1)[0])
            c = float(np.mean(v - b * u))
            xs = np.sort(df.loc[(df["row"] == row) & (df["col"] == col), "_x"].unique())
            rows += [dict(_row_rank=rk, _col_rank=ck, row=row, col=col, line=name, hue="", dash="", x=xv,
                          mean=float(np.exp(c) * xv ** b), lo=np.nan, hi=np.nan, n=0, n_runs=0) for xv in xs]
    if rows:
        t = pd.concat([t, pd.DataFrame(rows)], ignore_index=True)
    t = t.sort_values(["_row_rank", "_col_rank"], kind="stable")
    return t[cols].reset_index(drop=True), slopes


@register_study_figure("loglog_vs_x")
def loglog_vs_x(runs: pd.DataFrame, args: dict, ctx) -> Figure | None:
    metric, x = args.get("metric", "opt/distance"), args.get("x", "optimizer.lr")
    if metric not in runs or x not in runs or not np.isfinite(numeric(runs[metric])).any():
        return None
    t, slopes = loglog_table(runs, args)
    if t.empty:
        return None
    seeds = runs[SEED].nunique() if SEED in runs else 1
    m = MT.metric(metric)
    xl = x_label(x, runs)
    title = f"{m.label} vs {xl} (log-log) — geometric mean over {seeds} seed{'s' * (seeds != 1)}"
    png = charts.loglog_plot(t, ctx.out / f"{ctx.prefix}{_slug(metric)}_vs_{_slug(x)}_loglog", ylabel=m.label,
                            xlabel=xl, title=title)
    ref = args.get("reference") or {}
    cap = (f"{title}. Bars: 95% t interval of the mean log value over seeds (the scale the log-log slope claims "
           f"fit on); runs without a positive finite value are left out of a point (column n of the CSV).")
    if ref:
        through = ", ".join(f"{k}={v}" for k, v in (ref.get("through") or {}).items()) or "all runs"
        xr = ref.get("x_range")
        span = f" with {x} in [{xr[0]}, {xr[1]}]" if xr else ""
        cap += (f" Dashed grey: slope {float(ref.get('slope', 1)):g}, through the runs of {through}{span}; their "
                f"fitted log-log slope: " + ", ".join(f"{k or 'all'} {v:.2f}" for k, v in slopes.items()) + ".")
    return Figure(png, cap)


@register_study_figure("gap_curves")
def gap_curves(runs: pd.DataFrame, args: dict, ctx) -> Figure | None:
    need = ("train/objective", "opt/gap", "run_id")
    if any(c not in runs for c in need):
        return None
    at = args.get("at") or {}
    sub = select(runs, at)
    sub = sub[np.isfinite(numeric(sub["train/objective"])) & np.isfinite(numeric(sub["opt/gap"]))]
    if sub.empty:
        return None
    lab = _with_labels(sub, args)
    best = (numeric(lab["train/objective"]) - numeric(lab["opt/gap"])).rename("J*")
    hist = ctx.curves(lab["run_id"].tolist(), "train/objective")
    if hist.empty or hist["step"].nunique() < 2:
        return None
    h = hist.merge(pd.concat([lab[["run_id", "_row_rank", "_col_rank", "row", "col", "line"]], best], axis=1),
                   on="run_id")
    h["value"] = h["value"] - h["J*"]
    n_nonpos = int((h["value"] <= 0).sum())
    h = h[h["value"] > 0]
    g = h.groupby(["_row_rank", "_col_rank", "row", "col", "line", "step"], sort=True)["value"]
    t = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                      "n_runs": g.count()}).reset_index().drop(columns=["_row_rank", "_col_rank"])
    seeds = sub[SEED].nunique() if SEED in sub else 1
    where = ", ".join(f"{k}={v}" for k, v in at.items())
    title = f"Objective gap J(θ_t) − J* during training{' at ' + where if where else ''} — median over {seeds} seeds"
    tag = "_".join(_slug(value_text(v)) for v in at.values())
    png = plots.curve_plot(t, ctx.out / f"{ctx.prefix}objective_gap_curves{'_' + tag if tag else ''}",
                           ylabel="J(θ_t) − J*", title=title, log_y=True)
    cap = (f"{title}; shaded: inter-quartile range over seeds. J(θ_t) is train/objective (every train.eval_every "
           f"steps), J* each run's exact optimum (final train/objective − opt/gap), so each curve ends at its "
           f"opt/gap.")
    if n_nonpos:
        cap += f" {n_nonpos} points at or below 0 (the optimum met to rounding) are left out of the log axis."
    return Figure(png, cap)
