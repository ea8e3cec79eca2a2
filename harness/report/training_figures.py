"""Study figures of the course of training: a loss beside the metrics it is judged by.

    figures:
      - kind: loss_and_metrics
        metrics: [train/loss, test/loss, test/accuracy, test/recall, test/ece]   # the columns
        rows: dataset.name          # one row of panels per value of this param (null: one row)
        where: {optimizer.lr: 1, regularization.weight: 0}   # which runs (default: all)
        labels: {custom: "0-1 loss (custom)"}                # series renamed in the figure
        name: loss_and_metrics      # the file name (PNG and CSV)
        log_x: true                 # steps on a (symmetric) log axis: the first steps and the long tail

One panel per (row, metric): each series (a loss and its own varying options, as every figure
names it) is the median over its runs at each step, the inter-quartile range shaded; the runs
of a series are its seeds, and every other setting the `where` leaves open. Each panel has its
own y scale: the columns are different quantities. Converged runs only (a diverged run's curve
stops where it did; they are counted in the caption). At most figures.MAX_CURVE_RUNS runs per
figure, the first seeds of each series and row.
"""
from __future__ import annotations

import pandas as pd

from harness import metric_table as MT
from harness.report import aggregate as A
from harness.report import plots
from harness.report.figures import MAX_CURVE_RUNS, Figure, FigureContext, _slug, register_study_figure

DEFAULT_METRICS = ("train/loss", "test/loss", "test/accuracy", "test/recall", "test/ece")


def _select(runs: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    from harness.report.claims import ClaimError, select

    try:
        return select(runs, where)
    except ClaimError:
        return runs.iloc[0:0]


def _column(metric: str) -> str:
    """A panel's title: the metric's label, direction and units (the losses': their own units)."""
    m = MT.metric(metric)
    return m.label.replace("(the run's own loss)", "(each loss's own units)")


def curve_table(runs: pd.DataFrame, args: dict, fetch) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the table curve_plot draws: row, col, line, step, median, q25, q75, n_runs; the runs drawn)."""
    metrics = list(args.get("metrics") or DEFAULT_METRICS)
    rows, labels = args.get("rows", "dataset.name"), dict(args.get("labels") or {})
    sub = _select(runs, args.get("where"))
    if "status" in sub:
        sub = sub[sub["status"] == "converged"]
    if sub.empty:
        return pd.DataFrame(), sub
    line = A.roles(sub).line if A.LOSS in sub else []
    for old, new in labels.items():
        plots.same_color(str(new), str(old))      # a renamed series keeps the report's colour
    lab = pd.DataFrame({"run_id": sub["run_id"].astype(str),
                        "row": sub[rows].map(A.value_text) if rows and rows in sub else "",
                        "line": sub.apply(lambda r: A.line_label(r, line), axis=1).map(lambda s: labels.get(s, s))})
    lab = lab.assign(_seed=sub[A.SEED].to_numpy() if A.SEED in sub else 0).sort_values("_seed", kind="stable")
    per = max(1, MAX_CURVE_RUNS // max(lab.groupby(["row", "line"]).ngroups, 1))
    lab = lab.groupby(["row", "line"], group_keys=False, sort=False).head(per).drop(columns="_seed")
    parts = []
    for m in metrics:
        h = fetch(lab["run_id"].tolist(), m)
        if h.empty:
            continue
        h = h.astype({"run_id": str}).merge(lab, on="run_id")
        g = h.groupby(["row", "line", "step"], sort=False)["value"]
        parts.append(pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                                   "n_runs": g.count()}).reset_index().assign(col=_column(m), metric=m))
    if not parts:
        return pd.DataFrame(), sub
    t = pd.concat(parts, ignore_index=True)
    order = {m: i for i, m in enumerate(metrics)}
    t = t.assign(_m=t["metric"].map(order)).sort_values(["row", "_m", "line", "step"], kind="stable").drop(columns="_m")
    drawn = sub[sub["run_id"].astype(str).isin(lab["run_id"])]
    return t[["row", "col", "line", "step", "median", "q25", "q75", "n_runs", "metric"]], drawn


@register_study_figure("loss_and_metrics")
def loss_and_metrics(runs: pd.DataFrame, args: dict, ctx: FigureContext) -> Figure | None:
    """The loss and the metrics side by side against the step (module doc)."""
    t, drawn = curve_table(runs, args, ctx.curves)
    if t.empty or t["step"].nunique() < 2:
        return None
    name = _slug(str(args.get("name", "loss_and_metrics")))
    where = args.get("where") or {}
    setting = ", ".join(f"{k}={A.value_text(v)}" for k, v in where.items())
    seeds = drawn[A.SEED].nunique() if A.SEED in drawn else 1
    n_div = int((_select(runs, where).get("status", pd.Series(dtype=str)) == "diverged").sum())
    over = f"median over {seeds} seeds" if seeds > 1 else "one seed"
    title = f"Loss beside the metrics during training — {over}" + (f" ({setting})" if setting else "")
    log_x = bool(args.get("log_x", True))
    png = plots.curve_plot(t, ctx.out / f"{ctx.prefix}{name}", ylabel="", title=title, log_y=False, sharey=False,
                           log_x=log_x)
    open_ = [k for k in A.roles(drawn).tuning if k not in where] if len(drawn) else []
    cap = (f"{title}; shaded: inter-quartile range over the runs of each series"
           + (f" (also over {', '.join(open_)}, which this figure leaves open)" if open_ else "")
           + f". Columns: {', '.join(dict.fromkeys(t['col']))}; each panel has its own y scale. The training and "
             "test losses are each loss in its own units: compare their shapes, not their heights, across losses. "
           + ("Steps on a log axis (linear up to the first evaluation). " if log_x else "")
           + f"Drawn from {len(drawn)} converged runs" + (f"; {n_div} diverged runs left out." if n_div else "."))
    return Figure(png, cap)
