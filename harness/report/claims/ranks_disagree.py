"""ranks_disagree: ranking runs by their final loss and by a metric disagree.

    metric: test/accuracy    the metric (its better direction: metric_table.py)
    loss: test/loss          the final loss column (lower is better; default test/loss)
    within: [dataset.name, loss.name, seed]   runs are ranked only against runs of their own group
    min_flips: 0.1           "disagree": at least this share of the ordered pairs flip
    losses / where           optional: which runs

Runs are comparable only within a group (`within`): one data set and split (the seed draws it),
one loss (losses differ in units), differing in the settings one would select among (learning
rate, regularization). In a group, each pair of runs (i, j) ordered by both the loss and the
metric (a tie in either leaves the pair out, counted) is *concordant* when the run with the
lower loss has the better metric, *discordant* (a rank flip) otherwise. Per group: C, D, ties,
Kendall's tau-b of (loss, -metric) (scipy.stats.kendalltau: +1 when the rankings agree) and
whether the run of lowest loss is among those of the best metric (selection by the loss picks
a best model by the metric).

The pooled flip share F = sum_g D_g / sum_g (C_g + D_g) gets a 95% interval from a bootstrap
over groups (B = 2000, fixed seed: groups resampled with replacement, F recomputed). Holds when
the interval's lower end is above `min_flips` (the rankings disagree), does not hold when its
upper end is below it (they agree up to a few flips), inconclusive in between, or with fewer
than two groups or no ordered pair.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _where_text,
                                   register)
from harness.report.claims.keeps_falling import runs_of

N_BOOT = 2000
METHOD = ("Within each group of comparable runs (one data set, split and loss), pairs of runs ordered "
          "by both the final loss and the metric are concordant or flipped; Kendall's tau-b per group; "
          "the pooled share of flips with a 95% bootstrap interval over groups, against min_flips.")


def pair_counts(loss: np.ndarray, metric: np.ndarray) -> tuple[int, int, int]:
    """(concordant, discordant, tied) pairs: a pair is concordant when the lower loss goes with
    the higher metric (pass the metric as higher-is-better), tied when either ties."""
    i, j = np.triu_indices(len(loss), 1)
    s = np.sign(loss[j] - loss[i]) * np.sign(metric[i] - metric[j])   # +1: agree, -1: flip, 0: tie
    return int((s > 0).sum()), int((s < 0).sum()), int((s == 0).sum())


def flip_share_ci(c: np.ndarray, d: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of sum(d) / sum(c + d) over groups resampled with replacement."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(c), size=(n_boot, len(c)))
    num, den = d[pick].sum(1), (c + d)[pick].sum(1)
    f = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    lo, hi = np.nanpercentile(f, [2.5, 97.5])
    return float(lo), float(hi)


@register("ranks_disagree", method=METHOD)
def ranks_disagree(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: do the rankings of comparable runs by final loss and by the metric
    disagree in at least `min_flips` of the pairs?"""
    from scipy.stats import kendalltau

    metric, loss = claim.get("metric"), claim.get("loss", "test/loss")
    within = _as_list(claim.get("within")) or ["dataset.name", "loss.name", "seed"]
    min_flips = float(claim.get("min_flips", 0.1))
    for col in [metric, loss, *within]:
        if col not in runs:
            raise ClaimError(f"ranks_disagree: no column {col!r} in the runs")
    sign = 1.0 if _direction(claim) else -1.0
    sub = runs_of(runs, claim)
    y, m = sub[loss].to_numpy(float), sub[metric].to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(m)
    n_out, sub = int((~ok).sum()), sub[ok]
    rows = []
    for key, g in sub.groupby(within, dropna=False, sort=True):
        if len(g) < 2:
            continue
        yl, mg = g[loss].to_numpy(float), sign * g[metric].to_numpy(float)
        c, d, ties = pair_counts(yl, mg)
        tau = kendalltau(yl, -mg).statistic if c + d else np.nan
        best = bool(mg[np.argmin(yl)] >= mg.max())
        rows.append({**dict(zip(within, key if isinstance(key, tuple) else (key,))), "n_runs": len(g),
                     "concordant": c, "flips": d, "tied": ties, "flip_share": d / (c + d) if c + d else np.nan,
                     "kendall_tau": float(tau), "lowest_loss_is_best": best})
    t = pd.DataFrame(rows)
    if t.empty or int((t["concordant"] + t["flips"]).sum()) == 0:
        raise ClaimError(f"ranks_disagree: no group{_where_text(claim)} (by {', '.join(within)}) has two runs "
                         f"ordered by both {loss} and {metric}")
    C, D, T = int(t["concordant"].sum()), int(t["flips"].sum()), int(t["tied"].sum())
    F, G = D / (C + D), len(t)
    same = int(t["lowest_loss_is_best"].sum())
    desc = (f"Ranking runs by final {loss} and by {metric}{_where_text(claim)}, within groups of "
            f"{', '.join(within)} ({G} groups of {t['n_runs'].min()}-{t['n_runs'].max()} runs): {D} of {C + D} "
            f"ordered pairs flip ({F:.0%}; {T} pairs tied in one of them left out); Kendall's tau-b per group "
            f"median {t['kendall_tau'].median():.2f} (range {t['kendall_tau'].min():.2f} to "
            f"{t['kendall_tau'].max():.2f}); the run of lowest {loss} has the best {metric} in {same} of {G} groups"
            + (f"; {n_out} runs without a finite value left out" if n_out else ""))
    if G < 2:
        return Verdict(UNSURE, f"{desc}. One group: no interval over groups.", t, f"{F:.0%} of pairs flip")
    lo, hi = flip_share_ci(t["concordant"].to_numpy(), t["flips"].to_numpy())
    desc += f"; the flip share's 95% bootstrap CI over groups [{lo:.0%}, {hi:.0%}]"
    number = f"{F:.0%} flips [{lo:.0%}, {hi:.0%}] vs {min_flips:.0%}; tau {t['kendall_tau'].median():.2f}"
    if lo > min_flips:
        return Verdict(HOLDS, f"{desc}. The rankings disagree: the CI lies above {min_flips:.0%} of the pairs.", t, number)
    if hi < min_flips:
        return Verdict(FAILS, f"{desc}. The rankings agree up to a few flips: the CI lies below {min_flips:.0%}.",
                       t, number)
    return Verdict(UNSURE, f"{desc}. The CI includes {min_flips:.0%}, so neither is established.", t, number)
