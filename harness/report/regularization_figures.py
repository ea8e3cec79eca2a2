"""Study figures of a penalty's effect (experiments/regularization.yaml names them under `figures:`).

    coefficient_paths   each final coefficient (weights/w<j>, train.log_weights) against the
                        penalty weight, one run per setting (one seed: w* is drawn per seed, so
                        coefficients of different seeds do not average), one panel per `panels`
                        value (regularization.kind); true nonzero coefficients in one colour and
                        true zeros in another where the runs' data say which (dataset.nonzero:
                        the first k of w* are nonzero), else one colour per coefficient, named
                        by `names` (the features, in column order) where given
    metric_vs_weight    mean +- 95% CI over seeds of a final metric, or of the difference of two
                        (`minus`), against the weight, one line per `line` value, one panel per
                        `panels` value; the weights as categories in numeric order (a log grid
                        with 0 reads evenly)
    lr_weight_heatmap   the mean final metric per (weight, learning rate) cell, panels by `rows`
                        and `cols` params; diverged cells marked

Every figure takes `where` ({param: value}) to pick its runs and saves its PNG with the CSV it
was drawn from (plots.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.report import charts, plots
from harness.report.claims import select
from harness.report.claims.stats import t_ci95
from harness.report.figures import Figure, _slug, register_study_figure
from harness.report.series import SEED

WEIGHT, KIND = "regularization.weight", "regularization.kind"


def _label(param: str, v) -> str:
    short = param.split(".", 1)[-1]
    return f"{short} {v:g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v)


def _name(args: dict, default: str) -> str:
    return _slug(args.get("name") or default)


def _where_words(where: dict) -> str:
    return ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in (where or {}).items())


def _runs(runs: pd.DataFrame, args: dict) -> pd.DataFrame:
    sub = select(runs, args.get("where"))
    x = args.get("x", WEIGHT)
    if sub.empty or x not in sub:
        return sub.iloc[0:0]
    return sub.assign(_x=pd.to_numeric(sub[x], errors="coerce").astype(float))


def _facet(sub: pd.DataFrame, param: str | None) -> pd.Series:
    if not param or param not in sub:
        return pd.Series("", index=sub.index)
    return sub[param].map(lambda v: _label(param, v))


def _order(sub: pd.DataFrame, param: str | None, labels: pd.Series) -> list[str]:
    """Facet labels in the param's own (numeric where it is a number) order."""
    if not param or param not in sub:
        return [""]
    key = pd.to_numeric(sub[param], errors="coerce")
    frame = pd.DataFrame({"label": labels, "key": key if key.notna().all() else sub[param].astype(str)})
    return list(frame.sort_values("key")["label"].drop_duplicates())


@register_study_figure("coefficient_paths")
def coefficient_paths(runs: pd.DataFrame, args: dict, ctx) -> Figure | None:
    sub = _runs(runs, args)
    cols = sorted((c for c in sub.columns if c.startswith("weights/w")), key=lambda c: int(c.rsplit("w", 1)[1]))
    if sub.empty or not cols:
        return None
    seed = args.get("seed", sorted(sub[SEED].unique())[0] if SEED in sub else None)
    if seed is not None and SEED in sub:
        sub = sub[pd.to_numeric(sub[SEED], errors="coerce") == float(seed)]
    panels = args.get("panels", KIND)
    k = pd.to_numeric(sub.get("dataset.nonzero"), errors="coerce").dropna().unique() if "dataset.nonzero" in sub else []
    known = len(k) == 1
    group = (lambda j: "true nonzero" if j < int(k[0]) else "true zero") if known else (lambda j: "coefficient")
    names = list(args.get("names") or [])         # feature names, in column order (w0, w1, ...)
    label = lambda j: f"w{j} {names[j]}" if j < len(names) else f"w{j}"
    rows = []
    for _, r in sub.assign(_col=_facet(sub, panels)).iterrows():
        for c in cols:
            j = int(c.rsplit("w", 1)[1])
            rows.append(dict(row="", col=r["_col"], group=group(j), line=label(j), j=j, x=r["_x"], value=r[c]))
    t = pd.DataFrame(rows).dropna(subset=["value"])
    if t.empty:
        return None
    t = t.groupby(["row", "col", "group", "line", "j", "x"], sort=False, as_index=False)["value"].mean()
    order = {lab: i for i, lab in enumerate(_order(sub, panels, _facet(sub, panels)))}
    keys = pd.DataFrame({"c": t["col"].map(order), "g": t["group"].map({"true nonzero": 0, "true zero": 1}).fillna(2),
                         "j": t["j"], "x": t["x"]})
    t = t.loc[keys.sort_values(["c", "g", "j", "x"]).index].reset_index(drop=True).drop(columns="j")
    x = args.get("x", WEIGHT)
    where = _where_words(args.get("where"))
    title = (f"Regularization paths: final coefficients against the penalty weight ({where}; seed {seed})"
             if where else f"Regularization paths: final coefficients against the penalty weight (seed {seed})")
    png = charts.path_plot(t, ctx.out / f"{ctx.prefix}{_name(args, 'coefficient_paths')}", title=title,
                          xlabel=f"{x} (log scale; 0 at the left)", ylabel="final coefficient (original units)")
    truth = (f"Red: the {int(k[0])} truly nonzero weights (w0..w{int(k[0]) - 1}); grey: the true zeros. "
             if known else "The true weights are not known for these data. ")
    return Figure(png, f"{title}. {truth}One run per weight, all of seed {seed} (each seed's data, and a synthetic "
                       "set's true weights, are its own, so coefficients are not averaged over seeds). GD on an L1 "
                       "penalty is a subgradient method: it never sets a weight exactly to 0, so zeros end near 0, "
                       "not at it (a schedule that takes the step to 0 makes that residue small).")


def _summary(sub: pd.DataFrame, y: pd.Series, keys: list[str]) -> pd.DataFrame:
    d = sub.assign(_y=y, _div=sub["status"].eq("diverged") if "status" in sub else False)
    g = d.groupby(keys, sort=False, dropna=False)
    return pd.DataFrame({"mean": g["_y"].mean(), "sd": g["_y"].std(ddof=1), "n": g["_y"].count(),
                         "n_runs": g["_y"].size(), "n_diverged": g["_div"].sum()}).reset_index()


@register_study_figure("metric_vs_weight")
def metric_vs_weight(runs: pd.DataFrame, args: dict, ctx) -> Figure | None:
    sub = _runs(runs, args)
    metric, minus = args.get("metric", "test/rmse"), args.get("minus")
    if sub.empty or metric not in sub or (minus and minus not in sub):
        return None
    y = pd.to_numeric(sub[metric], errors="coerce").astype(float)
    if minus:
        y = y - pd.to_numeric(sub[minus], errors="coerce").astype(float)
    line, panels = args.get("line", KIND), args.get("panels")
    sub = sub.assign(line=_facet(sub, line), col=_facet(sub, panels), row="")
    t = _summary(sub, y, ["row", "col", "line", "_x"]).rename(columns={"_x": "weight"})
    t["ci95"] = t_ci95(t["sd"], t["n"])
    order = {lab: i for i, lab in enumerate(_order(sub, panels, sub["col"]))}
    t = t.sort_values(["col", "weight", "line"], key=lambda s: s.map(order) if s.name == "col" else s)
    t["x"] = t["weight"].map(lambda v: f"{v:g}")
    t = t[["row", "col", "line", "x", "weight", "mean", "ci95", "n", "n_runs", "n_diverged", "sd"]]
    what = f"{MT.metric(metric).label} - {MT.metric(minus).label}" if minus else MT.metric(metric).label
    seeds = sub[SEED].nunique() if SEED in sub else 1
    where = _where_words(args.get("where"))
    title = f"{what} against the penalty weight — mean ± 95% CI over {seeds} seeds" + (f" ({where})" if where else "")
    ylabel = f"{metric} - {minus}" if minus else plots_label(metric)
    png = plots.metric_plot(t, ctx.out / f"{ctx.prefix}{_name(args, 'metric_vs_weight')}", ylabel=ylabel,
                            xlabel=f"{args.get('x', WEIGHT)} (log grid, 0 first)", title=title,
                            bounds=(None, None) if minus else MT.metric(metric).bounds)
    return Figure(png, f"{title}. One line per {line}, one panel per {panels or 'sweep'}; the weights are "
                       f"evenly spaced categories (a log grid). The bars are the spread between seeds, whose data "
                       f"differ; the claims compare weights within a seed (paired), which is much tighter. "
                       f"Diverged runs ({int(t['n_diverged'].sum())}) are left out of the means.")


def plots_label(metric: str) -> str:
    return MT.metric(metric).axis_label()


@register_study_figure("lr_weight_heatmap")
def lr_weight_heatmap(runs: pd.DataFrame, args: dict, ctx) -> Figure | None:
    sub = _runs(runs, args)
    metric, ykey = args.get("metric", "test/rmse"), args.get("y", "optimizer.lr")
    if sub.empty or metric not in sub or ykey not in sub:
        return None
    rows, cols = args.get("rows"), args.get("cols", KIND)
    sub = sub.assign(row=_facet(sub, rows), col=_facet(sub, cols), _lr=pd.to_numeric(sub[ykey], errors="coerce"))
    y = pd.to_numeric(sub[metric], errors="coerce").astype(float)
    t = _summary(sub, y, ["row", "col", "_x", "_lr"]).rename(columns={"_x": "x", "_lr": "y"})
    r_order = {lab: i for i, lab in enumerate(_order(sub, rows, sub["row"]))}
    t = t.sort_values(["row", "col", "y", "x"], key=lambda s: s.map(r_order) if s.name == "row" else s)
    higher = MT.metric(metric).higher_is_better
    edge = "optimizer.lr_unit" in sub and (sub["optimizer.lr_unit"].astype(str) == "edge").all()
    where = _where_words(args.get("where"))
    seeds = sub[SEED].nunique() if SEED in sub else 1
    title = (f"Mean final {MT.metric(metric).label} over {seeds} seeds: learning rate x penalty weight"
             + (f" ({where})" if where else ""))
    png = charts.heatmap_plot(t, ctx.out / f"{ctx.prefix}{_name(args, 'lr_weight_heatmap')}", title=title,
                             xlabel=args.get("x", WEIGHT), ylabel=f"{ykey} (x lr*)" if edge else ykey,
                             label=plots_label(metric),
                             higher_is_better=higher)
    unit = (" The learning rate is in units of each run's lr* = 2 / lambda_max, the stability edge of GD on "
            "MSE alone (optimizer.lr_unit=edge).") if edge else ""
    return Figure(png, f"{title}. One colour scale per row of panels; the red box marks each panel's best cell; "
                       f"grey cells: every run diverged; `k/n div`: k of the n runs diverged and the mean is of "
                       f"the others (a biased mean).{unit} GD on MSE + weight x |w|^2 is stable only below "
                       f"2 / (lambda_max + 2 weight): a large L2 weight lowers the largest stable rate below lr*.")
