"""The density task's figure: the target p and every run's fitted Gaussian q.

p comes from MLflow, as everything in a report: each density run records its target as the
artifact `target.json` (harness/tasks/density.py), a Gaussian mixture {weights, means, sds}:
two components for `mixture`, one per training sample for a kernel density estimate
(`faithful`). Its modes are the local maxima of p (those at least MIN_MODE of the highest);
a mode's extent is where p stays above exp(-2) of its peak (mean +- 2 sd for a lone Gaussian).
"""
from __future__ import annotations

import json
from math import erf, sqrt
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.report import aggregate as A
from harness.report import plots
from harness.report.figures import MAX_PANELS, Figure, _panels, register_figure

TARGET_FILE = "target.json"
DENSITY_GRID = 401
MODE_GRID = 20001
MIN_MODE = 0.05


def normal_pdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


def mixture_pdf(x: np.ndarray, mix: dict) -> np.ndarray:
    """p(x) = sum_j w_j N(x; m_j, s_j^2)."""
    x = np.asarray(x, dtype=float)
    return sum(w * normal_pdf(x, m, s) for w, m, s in zip(mix["weights"], mix["means"], mix["sds"]))


def mixture_text(mix: dict) -> str:
    w, m, s = mix["weights"], mix["means"], mix["sds"]
    if len(w) <= 4:
        return "p = " + " + ".join(f"{a:g}·N({b:g}, {c:g}²)" for a, b, c in zip(w, m, s))
    kde = len(set(w)) == 1 and len(set(s)) == 1
    return f"p = Gaussian kernel density of {len(w)} samples, bandwidth {s[0]:.3g}" if kde else \
        f"p = a mixture of {len(w)} Gaussians"


def span(mix: dict) -> tuple[float, float]:
    """From 4 sd below the lowest component to 4 sd above the highest."""
    m, s = np.asarray(mix["means"], float), np.asarray(mix["sds"], float)
    return float((m - 4 * s).min()), float((m + 4 * s).max())


def modes(mix: dict) -> list[tuple[float, float, float]]:
    """(peak, lo, hi) of each mode of p: local maxima of at least MIN_MODE of the highest, each
    with the interval around it where p stays above exp(-2) of that peak."""
    x = np.linspace(*span(mix), MODE_GRID)
    p = mixture_pdf(x, mix)
    top = (p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:]) & (p[1:-1] >= MIN_MODE * p.max())
    out = []
    for i in np.flatnonzero(top) + 1:
        floor = p[i] * np.exp(-2.0)
        lo, hi = i, i
        while lo > 0 and p[lo - 1] >= floor:
            lo -= 1
        while hi < len(p) - 1 and p[hi + 1] >= floor:
            hi += 1
        out.append((float(x[i]), float(x[lo]), float(x[hi])))
    return out


def fit_place(mu: float, sigma: float, where: list[tuple[float, float, float]]) -> str:
    """Where a fitted q = N(mu, sigma^2) sits among p's modes: `one mode` when it puts >= 80% of
    its mass in one mode's extent and < 10% near every other, `both modes` (`several modes`
    where p has more than two) when it puts >= 10% near two or more, `neither mode` (`no mode`)
    otherwise: a fit that has not found the data."""
    cdf = lambda z: 0.5 * (1 + erf((z - mu) / (sigma * sqrt(2))))
    near = sorted((cdf(hi) - cdf(lo) for _, lo, hi in where), reverse=True)
    two = len(where) <= 2
    if near and near[0] >= 0.8 and (len(near) == 1 or near[1] < 0.1):
        return "one mode"
    if len(near) >= 2 and near[1] >= 0.1:
        return "both modes" if two else "several modes"
    return "neither mode" if two else "no mode"


def _grid(mix: dict, fits: pd.DataFrame) -> np.ndarray:
    """p's span, widened to show each fit (mu +- 3 sigma) but never to more than three times it."""
    lo, hi = span(mix)
    width = hi - lo
    if len(fits):
        lo = max(min(lo, float((fits["fit/mu"] - 3 * fits["fit/sigma"]).min())), lo - width)
        hi = min(max(hi, float((fits["fit/mu"] + 3 * fits["fit/sigma"]).max())), hi + width)
    return np.linspace(lo, hi, DENSITY_GRID)


@register_figure("density_fits")
def density_figure(sub: pd.DataFrame, out: Path, tag: str, fam: str,
                   artifact: Callable[[str, str], str | None]) -> Figure | None:
    """The target p (thick, black) and each run's fitted q (thin, one colour per series), one
    panel per value of the other varying params; p is the first run's of each panel (runs whose
    data draws differ, such as a KDE of each seed's split, are said to). `artifact(run_id, name)`
    reads a run's text artifact. CSV: one row per grid point and run, columns row, col, line,
    seed, run_id, x, p, q (q empty for p's own rows, line = `target p`)."""
    if not {"fit/mu", "fit/sigma"} <= set(sub.columns):
        return None
    r = A.roles(sub)
    df = _panels(sub, ([r.x] if r.x else []) + r.facets)
    df["line"] = df.apply(lambda row: A.line_label(row, r.line), axis=1)
    ok = np.isfinite(df["fit/mu"].astype(float)) & np.isfinite(df["fit/sigma"].astype(float)) & (df["fit/sigma"] > 0)
    parts, places, mixed = [], [], 0
    for rk, ck in list(dict.fromkeys(zip(df["row"], df["col"])))[:MAX_PANELS]:
        p = df[(df["row"] == rk) & (df["col"] == ck)].sort_values([c for c in ("line", A.SEED) if c in df])
        texts = {rid: artifact(rid, TARGET_FILE) for rid in p["run_id"]}
        known = [t for t in texts.values() if t]
        if not known:
            continue
        mix = json.loads(known[0])
        mixed += len(set(known)) > 1
        fits, where, x = p[ok.loc[p.index]], modes(mix), None
        x = _grid(mix, fits)
        text, px = mixture_text(mix), mixture_pdf(x, mix)
        parts.append(pd.DataFrame({"row": rk, "col": ck, "line": plots.TARGET, "seed": np.nan, "run_id": "",
                                   "x": x, "p": px, "q": np.nan, "mixture": text}))
        for _, run in fits.iterrows():
            mu, sd = float(run["fit/mu"]), float(run["fit/sigma"])
            parts.append(pd.DataFrame({"row": rk, "col": ck, "line": run["line"], "seed": run.get(A.SEED, np.nan),
                                       "run_id": run["run_id"], "x": x, "p": px, "q": normal_pdf(x, mu, sd),
                                       "mixture": text}))
            place = fit_place(mu, sd, where)
            if place == "one mode":   # which one: the nearest mode's peak
                place += f" {min((m for m, _, _ in where), key=lambda m: abs(m - mu)):.3g}"
            places.append((run["line"], place))
    if not places:
        return None
    t = pd.concat(parts, ignore_index=True)
    title = "Target density p and fitted Gaussians q — " + "; ".join(_verdicts(places)) + fam
    png = plots.density_plot(t, out / f"{tag}density_fits", title=title)
    mixes = sorted(set(t["mixture"]))
    note = (f" In {mixed} panel{'s' * (mixed != 1)} the runs' targets differ (each seed draws its own data); "
            f"the first run's p is drawn." if mixed else "")
    return Figure(png, f"{title}. Black: the target density {mixes[0] if len(mixes) == 1 else '(per panel)'}; thin "
                       f"lines: the Gaussian each run fitted (fit/mu, fit/sigma at the last step), one per run. Forward "
                       f"KL(p‖q) is maximum likelihood: q must put mass wherever p has it, so it spreads over both "
                       f"modes (mode-covering). Reverse KL(q‖p) charges q for mass where p has little, so a narrow q "
                       f"on one mode can win (mode-seeking); it can also stay between symmetric modes when it starts "
                       f"near the middle. 'one mode': >= 80% of q's mass within one mode (where p stays above e^-2 "
                       f"of that mode's peak: mean ± 2 sd for a Gaussian component); 'both modes': >= 10% near "
                       f"each.{note}" + (f" {int((~ok).sum())} runs without a finite fit are not drawn." if (~ok).any() else ""))


def _verdicts(places: list[tuple[str, str]]) -> list[str]:
    out = []
    for line in sorted(dict.fromkeys(lab for lab, _ in places)):
        got = [pl for lab, pl in places if lab == line]
        one = sorted((pl for pl in got if pl.startswith("one mode")), key=lambda pl: float(pl.split()[-1]))
        at = [(pl.split()[-1], one.count(pl)) for pl in dict.fromkeys(one)]
        parts = [f"one mode in {len(one)}/{len(got)} runs ({', '.join(f'{n} at {m}' for m, n in at)})"] if one else []
        parts += [f"{k} in {got.count(k)}/{len(got)} runs" for k in ("both modes", "several modes", "neither mode", "no mode")
                  if k in got]
        out.append(f"{line}: q on " + ", ".join(parts))
    return out
