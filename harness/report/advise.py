"""The advise study's answer (experiments/advise.yaml): which loss to train with on this data.

From phase 2 of the tuned protocol (each loss at its own tuned setting, new seeds, the test
split): the best loss by the mean of the answer's metric (`study.metric`, default the family's
primary), its 95% interval over seeds; the losses statistically tied with it, paired by seed
(the 95% t interval of their paired difference includes 0: stats.paired_difference); the rest
ranked; and the facts of the training data that explain it (train.facts: data/outlier_share,
data/minority_share, data/label_noise).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.report import aggregate as A
from harness.report.claims.stats import mean_interval, paired_difference
from harness.report.series import LOSS


def answer(runs: pd.DataFrame, study: dict) -> tuple[pd.DataFrame, str] | None:
    """(ranking table, answer sentence) from phase 2's runs, or None without them."""
    fams = A.families(runs)
    if runs.empty or not fams or LOSS not in runs:
        return None
    metric = study.get("metric") or MT.FAMILIES[fams[0]].primary
    if metric not in runs:
        return None
    higher = bool(MT.higher_is_better(metric))
    line = A.roles(runs).line
    runs = runs.assign(_series=runs.apply(lambda r: A.line_label(r, line), axis=1))
    rows = []
    for name, r in runs.groupby("_series", sort=False):
        y = pd.to_numeric(r[metric], errors="coerce")
        lo, hi = mean_interval(y.to_numpy(), MT.metric(metric).bounds)
        rows.append({"loss": name, "mean": float(y.mean()), "ci_lo": lo, "ci_hi": hi, "n": int(y.notna().sum()),
                     "diverged": int(y.isna().sum())})
    t = pd.DataFrame(rows).sort_values("mean", ascending=not higher, na_position="last").reset_index(drop=True)
    best = t.at[0, "loss"]
    diffs = []
    for name in t["loss"]:
        d = paired_difference(metric, runs[runs["_series"] == best], runs[runs["_series"] == name], higher) \
            if name != best else None
        diffs.append(d)
    t["the best is better by"] = ["–" if d is None else f"{d['mean']:+.3g} [{d['ci_lo']:+.3g}, {d['ci_hi']:+.3g}]" for d in diffs]
    t["tied"] = ["best" if i == 0 else ("yes" if d is not None and d["ci_lo"] <= 0 <= d["ci_hi"] else
                                          "no" if d is not None else "?") for i, d in enumerate(diffs)]
    tied = [n for n, flag in zip(t["loss"], t["tied"]) if flag == "yes"]
    m = MT.metric(metric)
    b = t.iloc[0]
    text = (f"Use {best}: {m.label} {b['mean']:.4g} [{b['ci_lo']:.4g}, {b['ci_hi']:.4g}] over {b['n']} new seeds, each "
            f"loss at its own tuned setting ({'higher' if higher else 'lower'} is better). "
            + (f"Statistically tied with it (paired by seed, the 95% interval of the difference includes 0): "
               f"{', '.join(tied)}." if tied else "No other loss is tied with it: every paired difference's 95% "
                                                   "interval excludes 0."))
    return t, text


def facts_text(runs: pd.DataFrame) -> list[str]:
    """What the data's facts say, one sentence each."""
    out = []
    value = lambda k: float(pd.to_numeric(runs[k], errors="coerce").mean()) if k in runs else np.nan
    o = value("data/outlier_share")
    if np.isfinite(o):
        out.append(f"{o:.1%} of the training rows have a residual beyond 3 robust sd of a first least-squares fit "
                   + ("(Gaussian noise gives ~0.3%): gross outliers, which pull MSE hardest and losses that grow at "
                      "most linearly (MAE, Huber, log-cosh, quantile) least." if o > 0.01 else
                      "(Gaussian noise gives ~0.3%): no sign of gross outliers, where MSE's assumption holds."))
    q = value("data/minority_share")
    if np.isfinite(q):
        out.append(f"The rarest class is {q:.1%} of the training labels" + (": imbalanced, where accuracy flatters a "
                                                                            "majority guess." if q < 0.2 else "."))
    n = value("data/label_noise")
    if np.isfinite(n):
        out.append(f"A cross-validated logistic regression predicts {n:.1%} of the training labels otherwise (an upper "
                   "bound on label noise: it counts its own errors too)"
                   + ("; bounded losses (MAE on probabilities, GCE) resist noisy labels." if n > 0.1 else "."))
    return out


def blocks(runs: pd.DataFrame, study: dict) -> list:
    got = answer(runs, study)
    if got is None:
        return [("h", 2, "Answer"), ("p", "No final runs with a test metric to answer from.")]
    t, text = got
    out = [("h", 2, "Answer"), ("p", f"**{text}**")]
    facts = facts_text(runs)
    if facts:
        out.append(("p", "Why, from the data: " + " ".join(facts)))
    shown = t.assign(**{"mean [95% interval]": [f"{a:.4g} [{lo:.4g}, {hi:.4g}]" for a, lo, hi in
                                                 zip(t["mean"], t["ci_lo"], t["ci_hi"])]})
    out.append(("table", shown[["loss", "mean [95% interval]", "the best is better by", "tied", "n", "diverged"]]))
    return out
