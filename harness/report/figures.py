"""Which figures a sweep gets, and the tables behind them (drawn by plots.py).

Per metric family (the runs' `eval` column) present in the sweep; file names get a `<family>_`
prefix when the sweep holds more than one family:

  1. the family's primary metric (metric_info.PRIMARY: test RMSE, accuracy, recall@1, KL) vs
     outlier ratio (label-noise ratio for classification data): mean +- 95% CI over seeds, one
     line per series (the loss and its varying settings: `kl (reverse)`), one panel per value
     of the other varying params (at most MAX_PANELS panels); without a varying ratio, one point
     per series;
  2. when tuning params vary (optimizer.*, regularization.*, train.*): the same, keeping per
     series, ratio and scenario only the best setting, selected on the test metric itself
     (an optimistic, oracle choice, and labelled so);
  3. density family: the target mixture p and every run's fitted Gaussian q (one thin line per
     run: averaging mu over seeds that settled on opposite modes would draw a Gaussian no run
     fitted), titled with where each series' fits sit (both modes covered / one mode);
  4. curves, median over seeds per series, panels = scenario (rows) x a few ratios (columns):
     the primary metric at each eval point where the family logs it as a curve
     (metric_info.CURVE_METRICS), and train/loss. Histories are fetched only for the runs drawn,
     at most MAX_CURVE_RUNS per figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.metric_info import BOUNDS, CURVE_METRICS, HIGHER_IS_BETTER, LABELS, PRIMARY
from harness.report import aggregate as A
from harness.report import plots

MAX_PANELS = 12
MAX_CURVE_ROWS, MAX_CURVE_COLS = 4, 5
MAX_CURVE_RUNS = 300

CLASSIFICATION = {"binary", "multiclass"}
MIXTURE = {"weight": "dataset.weight", "mean1": "dataset.mean1", "mean2": "dataset.mean2", "sd1": "dataset.sd1",
           "sd2": "dataset.sd2"}   # harness/data/synthetic.py Mixture: p = w N(mean1, sd1^2) + (1-w) N(mean2, sd2^2)
DENSITY_GRID = 401


def x_label(x: str | None, runs: pd.DataFrame) -> str:
    """The x axis: the ratio of corrupted training rows, said as label noise where the data
    are classification data (the `task` column, also for embedding losses trained on labels)."""
    if x == A.X_DEFAULT:
        tasks = set(runs["task"].dropna()) if "task" in runs else set()
        if tasks and tasks <= CLASSIFICATION:
            return "label-noise ratio (fraction of training labels changed)"
        return "outlier ratio (fraction of training rows corrupted)"
    return {"optimizer.lr": "learning rate"}.get(x, x or "loss")


def short_x(x: str | None, runs: pd.DataFrame) -> str:
    return x_label(x, runs).split(" (")[0] if x else ""


@dataclass
class Figure:
    png: Path
    caption: str


def metric_label(m: str) -> str:
    better = {True: "higher is better", False: "lower is better"}.get(HIGHER_IS_BETTER.get(m))
    base = LABELS.get(m, m)
    return f"{base}, {better}" if better else base


def make_figures(runs: pd.DataFrame, out: Path,
                 fetch_curves: Callable[[list[str], str], pd.DataFrame]) -> list[Figure]:
    """All figures for the sweep's runs, written into `out`; `fetch_curves(run_ids, key)` returns
    the long table run_id, step, value of metric `key` (train/loss, test/accuracy, ...)."""
    figs: list[Figure] = []
    fams = A.families(runs) or [None]
    for fam in fams:
        sub = runs if fam is None else runs[runs["eval"] == fam]
        tag, suffix = (f"{fam}_", f" ({fam})") if len(fams) > 1 else ("", "")
        metric = PRIMARY.get(fam or "regression")
        if metric in sub and np.isfinite(sub[metric].astype(float)).any():
            figs += primary_figures(_with_baseline(runs, sub, fam, metric), metric, out, tag, suffix)
        if fam == "density":
            d = density_figure(sub, out, tag, suffix)
            if d is not None:
                figs.append(d)
        if metric in CURVE_METRICS.get(fam or "", []):
            c = curve_figure(sub, out, fetch_curves, metric, tag, suffix)
            if c is not None:
                figs.append(c)
        c = curve_figure(sub, out, fetch_curves, "train/loss", tag, suffix)
        if c is not None:
            figs.append(c)
    return figs


def _with_baseline(runs: pd.DataFrame, sub: pd.DataFrame, fam: str | None, metric: str) -> pd.DataFrame:
    """The embedding family's runs plus, as a baseline, the multiclass runs that logged the same
    retrieval metric (cross-entropy on an MLP: the hidden representation's recall@1)."""
    if fam != "embedding" or "eval" not in runs:
        return sub
    base = runs[(runs["eval"] == "multiclass") & np.isfinite(pd.to_numeric(runs.get(metric), errors="coerce"))]
    if base.empty:
        return sub
    base = base.assign(**{A.LOSS: base[A.LOSS].astype(str) + " (hidden layer)"}) if A.LOSS in base else base
    return pd.concat([sub, base], ignore_index=True)


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


def _over_seeds(seeds: int) -> str:
    if seeds <= 1:
        return "one seed, so no interval"
    return f"mean ± 95% CI over {seeds} seeds"


def _interval_note(seeds: int) -> str:
    if seeds <= 1:
        return "One seed per setting: points are single runs, without error bars."
    note = "Error bars: t interval over seeds"
    if seeds == 2:
        note += " (with 2 seeds t = 12.7, so the bars are wide by construction)"
    return note + "."


def primary_figures(sub: pd.DataFrame, metric: str, out: Path, tag: str, fam: str) -> list[Figure]:
    r = A.roles(sub)
    seeds = sub[A.SEED].nunique() if A.SEED in sub else 1
    xl = x_label(r.x, sub)
    slug = f"{tag}{_slug(metric)}_vs_{_slug(r.x or 'loss')}"
    st = A.stats(sub, r.line + ([r.x] if r.x else []) + r.facets, [metric])
    t, note = _cap_panels(_plot_table(st, metric, r, r.facets))
    if len(t) < 2:
        return []      # one setting: nothing to compare, the table has its numbers
    what = f"{LABELS.get(metric, metric)} vs {short_x(r.x, sub)}" if r.x else LABELS.get(metric, metric)
    title = f"{what} — {_over_seeds(seeds)}{fam}"
    if "eval" in sub and sub["eval"].nunique() > 1:
        base = sorted(sub.loc[sub["eval"] != sub["eval"].iloc[0], A.LOSS].astype(str).unique()) if A.LOSS in sub else []
        note += (f" Baseline{'s' * (len(base) != 1)} {', '.join(base)}: a classifier's hidden representation "
                 f"(the layer before its output), scored by the same retrieval metric.")
    png = plots.metric_plot(t, out / slug, ylabel=metric_label(metric), xlabel=xl, title=title,
                            bounds=BOUNDS.get(metric, (None, None)))
    n_div = int(t["n_diverged"].sum())
    figs = [Figure(png, f"{title}. {_interval_note(seeds)} Diverged runs ({n_div}) are left out of the means.{note}")]
    if r.tuning:
        figs.append(_best_figure(sub, metric, r, out, slug, xl, what, seeds))
    return figs


def _best_figure(sub, metric, r: A.Roles, out: Path, slug: str, xl: str, what: str, seeds: int) -> Figure:
    by = r.line + ([r.x] if r.x else []) + r.scenario
    st = A.stats(sub, by + r.tuning, [metric])
    best = A.best_settings(st, metric, bool(HIGHER_IS_BETTER.get(metric, False)), by)
    best["setting"] = best.apply(lambda row: A.facet_label(row, r.tuning), axis=1)
    t, note = _cap_panels(_plot_table(best, metric, r, r.scenario))
    tuned = ", ".join(r.tuning)
    title = f"{what}: best {tuned} per loss — selected on test metric (optimistic)"
    png = plots.metric_plot(t, out / f"{slug}_best", ylabel=metric_label(metric), xlabel=xl, title=title,
                            bounds=BOUNDS.get(metric, (None, None)))
    return Figure(png, f"{title}. For each loss{', ' + short_x(r.x, sub) if r.x else ''} and panel, the setting "
                       f"of {tuned} with the best mean test value over {seeds} seed{'s' * (seeds != 1)}; selected "
                       f"on the same test metric it reports, so it flatters every loss. Chosen settings: column "
                       f"`setting` of {slug}_best.csv.{note}")


# -- density: the target mixture and the fitted Gaussians ------------------------------------
def normal_pdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


def mixture_of(row: pd.Series | dict) -> dict[str, float] | None:
    """The target mixture from a run's params (None when a parameter is missing)."""
    try:
        mix = {k: float(row[c]) for k, c in MIXTURE.items()}
    except (KeyError, TypeError, ValueError):
        return None
    return mix if all(np.isfinite(v) for v in mix.values()) else None


def mixture_pdf(x: np.ndarray, mix: dict[str, float]) -> np.ndarray:
    w = mix["weight"]
    return w * normal_pdf(x, mix["mean1"], mix["sd1"]) + (1 - w) * normal_pdf(x, mix["mean2"], mix["sd2"])


def mixture_text(mix: dict[str, float]) -> str:
    w = mix["weight"]
    return (f"p = {w:g}·N({mix['mean1']:g}, {mix['sd1']:g}²) + {1 - w:g}·N({mix['mean2']:g}, {mix['sd2']:g}²)")


def fit_place(mu: float, sigma: float, mix: dict[str, float]) -> str:
    """Where a fitted q = N(mu, sigma^2) sits: `one mode` when it puts >= 80% of its mass within
    2 sd of one mode's mean and < 10% near the other, `both modes` when it puts >= 10% near
    each, `neither mode` otherwise (a fit that has not found the data)."""
    from math import erf, sqrt

    cdf = lambda z: 0.5 * (1 + erf((z - mu) / (sigma * sqrt(2))))
    near = [cdf(mix[f"mean{j}"] + 2 * mix[f"sd{j}"]) - cdf(mix[f"mean{j}"] - 2 * mix[f"sd{j}"]) for j in (1, 2)]
    if max(near) >= 0.8 and min(near) < 0.1:
        return "one mode"
    if min(near) >= 0.1:
        return "both modes"
    return "neither mode"


def _density_grid(mix: dict[str, float], fits: pd.DataFrame) -> np.ndarray:
    """From 4 sd below the lower mode to 4 sd above the upper one, widened to show each fit
    (mu +- 3 sigma) but never to more than three times the mixture's own span."""
    lo = min(mix["mean1"] - 4 * mix["sd1"], mix["mean2"] - 4 * mix["sd2"])
    hi = max(mix["mean1"] + 4 * mix["sd1"], mix["mean2"] + 4 * mix["sd2"])
    span = hi - lo
    if len(fits):
        lo = max(min(lo, float((fits["fit/mu"] - 3 * fits["fit/sigma"]).min())), lo - span)
        hi = min(max(hi, float((fits["fit/mu"] + 3 * fits["fit/sigma"]).max())), hi + span)
    return np.linspace(lo, hi, DENSITY_GRID)


def density_figure(sub: pd.DataFrame, out: Path, tag: str, fam: str) -> Figure | None:
    """The target mixture p (thick, black) and each run's fitted q (thin, one colour per series),
    one panel per value of the other varying params. CSV: one row per grid point and run,
    columns row, col, line, seed, run_id, x, p, q (q empty for p's own rows, line = `target p`)."""
    if not {"fit/mu", "fit/sigma", *MIXTURE.values()} <= set(sub.columns):
        return None
    r = A.roles(sub)
    facets = ([r.x] if r.x else []) + r.facets
    df = _panels(sub, facets)
    df["line"] = df.apply(lambda row: A.line_label(row, r.line), axis=1)
    ok = np.isfinite(df["fit/mu"].astype(float)) & np.isfinite(df["fit/sigma"].astype(float)) & (df["fit/sigma"] > 0)
    keys = list(dict.fromkeys(zip(df["row"], df["col"])))[:MAX_PANELS]
    parts, places = [], []
    for rk, ck in keys:
        p = df[(df["row"] == rk) & (df["col"] == ck)]
        mix = mixture_of(p.iloc[0])
        if mix is None:
            continue
        fits = p[ok.loc[p.index]]
        x = _density_grid(mix, fits)
        parts.append(pd.DataFrame({"row": rk, "col": ck, "line": "target p", "seed": np.nan, "run_id": "",
                                   "x": x, "p": mixture_pdf(x, mix), "q": np.nan, "mixture": mixture_text(mix)}))
        for _, run in fits.sort_values([c for c in ("line", A.SEED) if c in fits]).iterrows():
            mu, sd = float(run["fit/mu"]), float(run["fit/sigma"])
            parts.append(pd.DataFrame({"row": rk, "col": ck, "line": run["line"], "seed": run.get(A.SEED, np.nan),
                                       "run_id": run["run_id"], "x": x, "p": mixture_pdf(x, mix),
                                       "q": normal_pdf(x, mu, sd), "mixture": mixture_text(mix)}))
            place = fit_place(mu, sd, mix)
            if place == "one mode":   # which one: the nearer mode's mean
                place += f" {min((mix['mean1'], mix['mean2']), key=lambda m: abs(m - mu)):g}"
            places.append((run["line"], place))
    if not places:
        return None
    t = pd.concat(parts, ignore_index=True)
    verdicts = []
    for line in sorted(dict.fromkeys(lab for lab, _ in places)):
        got = [pl for lab, pl in places if lab == line]
        one = sorted((pl for pl in got if pl.startswith("one mode")), key=lambda pl: float(pl.split()[-1]))
        at = [(pl.split()[-1], one.count(pl)) for pl in dict.fromkeys(one)]
        parts = [f"one mode in {len(one)}/{len(got)} runs ({', '.join(f'{n} at {m}' for m, n in at)})"] if one else []
        parts += [f"{k} in {got.count(k)}/{len(got)} runs" for k in ("both modes", "neither mode") if k in got]
        verdicts.append(f"{line}: q on " + ", ".join(parts))
    n_bad = int((~ok).sum())
    title = "Target mixture p and fitted Gaussians q — " + "; ".join(verdicts) + fam
    png = plots.density_plot(t, out / f"{tag}density_fits", title=title)
    mixes = sorted(set(t["mixture"]))
    return Figure(png, f"{title}. Black: the target density {mixes[0] if len(mixes) == 1 else '(per panel)'}; thin "
                       f"lines: the Gaussian each run fitted (fit/mu, fit/sigma at the last step), one per run. Forward "
                       f"KL(p‖q) is maximum likelihood: q must put mass wherever p has it, so it spreads over both "
                       f"modes (mode-covering). Reverse KL(q‖p) charges q for mass where p has little, so a narrow q "
                       f"on one mode can win (mode-seeking); it can also stay between symmetric modes when it starts "
                       f"near the middle. 'one mode': >= 80% of q's mass within 2 sd of one mode's mean; 'both "
                       f"modes': >= 10% near each."
                       + (f" {n_bad} runs without a finite fit are not drawn." if n_bad else ""))


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
    what = "Training loss (each loss in its own units)" if train else f"{LABELS.get(key, key)} during training"
    title = f"{what} — {over}{sel}{fam}"
    positive = bool((t["q25"].dropna() > 0).all() and (t["median"].dropna() > 0).all())
    spread = t["median"].max() / t["median"].min() if positive and t["median"].min() > 0 else 1.0
    log_y = positive and (train or (HIGHER_IS_BETTER.get(key) is False and spread >= 10))
    name = "train_loss_curves" if train else f"{_slug(key)}_curves"
    png = plots.curve_plot(t, out / f"{tag}{name}", ylabel=LABELS.get(key, key) if train else metric_label(key),
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
