"""The statistics the claim checks decide on; numbers in, numbers out (no claims, no verdicts).

Slope (`slope`). Per series, the least-squares slope of the metric y against x:

    b = sum_i (x_i - xbar)(y_i - ybar) / sum_i (x_i - xbar)^2

It is linear in the level means: with n_l runs and mean ybar_l at the x value (level) l,
b = sum_l w_l ybar_l, w_l = n_l (x_l - xbar) / Sxx. Its 95% CI is a percentile bootstrap
(B = N_BOOT = 2000, fixed seed) that resamples runs within each x value, so every resample
keeps the design's x values: b* = sum_l w_l ybar*_l with ybar*_l the resampled mean at level l.

Degradation (`degradation`). The mean change of the metric, in its worse direction, from
x = baseline to the x values `at`:

    D = s * mean_{l in at}(ybar_l - ybar_baseline),   s = +1 (lower is better) or -1

also linear in the level means, with its CI from the same stratified bootstrap.

Paired difference (`paired_difference`). Over the seeds both sides ran (runs of one seed share
the data, outliers and init), d_k = s (a_k - b_k) with s = +1 when higher is better, and the
mean of d with its 95% t interval.

t interval (`t_ci95`). The half-width of the 95% t interval of a mean of n values with
standard deviation sd:

    t_{0.975, n-1} * sd / sqrt(n)          (NaN when n < 2)

Interval of a mean that respects the metric's bounds (`mean_interval`). A t interval of a
bounded metric can leave its range (a KL of 1e-5 +- 1e-4 reads [-0.0001, 0.0001]); for a metric
with a bound (harness/metric_table.py: an accuracy in [0, 1], a nonnegative error), the 95%
interval is a percentile bootstrap of the mean (B = N_BOOT resamples of the n values, fixed
seed), which never leaves [min, max] of the values and so never the bounds. It is narrower
than the t interval for very few values (n <= 4: resampling cannot see past the sample); the
t interval stays for unbounded metrics.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.series import SEED

N_BOOT = 2000
_DRAWS: dict[int, np.ndarray] = {}


def _draws(n: int) -> np.ndarray:
    """[N_BOOT, n] resample indices, the same for every group of n values (fixed seed)."""
    if n not in _DRAWS:
        _DRAWS[n] = np.random.default_rng(n).integers(0, n, size=(N_BOOT, n))
    return _DRAWS[n]


def mean_interval(values, bounds: tuple[float | None, float | None] = (None, None)) -> tuple[float, float]:
    """(lo, hi) of the 95% interval of the mean of the finite `values`: the t interval when the
    metric is unbounded, a percentile bootstrap when it has a bound (module doc); NaN for n < 2."""
    v = np.sort(np.asarray(values, dtype=float))      # sorted: the interval cannot depend on the rows' order
    v = v[np.isfinite(v)]
    n = len(v)
    if n < 2:
        return np.nan, np.nan
    if bounds == (None, None) or bounds is None:
        half = t_ci95(float(v.std(ddof=1)), n)
        return float(v.mean() - half), float(v.mean() + half)
    lo, hi = np.percentile(v[_draws(n)].mean(axis=1), [2.5, 97.5])
    return float(lo), float(hi)


def t_ci95(sd: pd.Series | float, n: pd.Series | float):
    """Half-width of the 95% t interval of a mean: t_{0.975, n-1} sd / sqrt(n); NaN for n < 2."""
    from scipy.stats import t

    n_arr = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(n_arr >= 2, t.ppf(0.975, np.maximum(n_arr - 1, 1)), np.nan)
        out = q * np.asarray(sd, dtype=float) / np.sqrt(n_arr)
    return pd.Series(out, index=sd.index) if isinstance(sd, pd.Series) else float(out)


def slope(x: np.ndarray, y: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """Least-squares slope of y on x and its 95% stratified-bootstrap CI (see module doc);
    NaN when x takes fewer than two values."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    levels, inv = np.unique(x, return_inverse=True)
    if len(levels) < 2:
        return np.nan, np.nan, np.nan
    n_l = np.bincount(inv)
    xbar = x.mean()
    w = n_l * (levels - xbar) / ((x - xbar) ** 2).sum()        # b = sum_l w_l ybar_l
    means = np.array([y[inv == i].mean() for i in range(len(levels))])
    b = float(w @ means)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(levels)))
    for i in range(len(levels)):
        yi = y[inv == i]
        boot[:, i] = yi[rng.integers(0, len(yi), size=(n_boot, len(yi)))].mean(axis=1)
    lo, hi = np.percentile(boot @ w, [2.5, 97.5])
    return b, float(lo), float(hi)


def degradation(x: np.ndarray, y: np.ndarray, baseline: float, at: list[float], sign: float,
                n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """D = sign * mean_{l in at}(ybar_l - ybar_baseline) and its 95% stratified-bootstrap CI
    (runs resampled within each x value, as for slopes). NaN when a level has no runs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    levels = [baseline] + list(at)
    groups = [y[np.isclose(x, v)] for v in levels]
    if any(len(g) == 0 for g in groups):
        return np.nan, np.nan, np.nan
    w = np.array([-1.0] + [1.0 / len(at)] * len(at)) * sign      # D = sum_l w_l ybar_l
    d = float(w @ np.array([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    boot = np.column_stack([g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(axis=1) for g in groups])
    lo, hi = np.percentile(boot @ w, [2.5, 97.5])
    return d, float(lo), float(hi)


def paired_difference(metric: str, a: pd.DataFrame, b: pd.DataFrame, higher: bool) -> dict | None:
    """Mean and 95% t interval of s * (a - b) over the seeds both have, s = +1 when higher is
    better (so positive means `a` is better); None unless each side has exactly one run per
    seed, the same seeds, at least two of them with finite values on both sides."""
    if SEED not in a or SEED not in b or a[SEED].duplicated().any() or b[SEED].duplicated().any():
        return None
    if set(a[SEED]) != set(b[SEED]):
        return None
    ya = a.set_index(SEED)[metric].astype(float)
    yb = b.set_index(SEED)[metric].astype(float).reindex(ya.index)
    d = ((ya - yb) * (1.0 if higher else -1.0)).to_numpy()
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None
    mean, half = float(d.mean()), float(t_ci95(float(d.std(ddof=1)), len(d)))
    return dict(n=len(d), n_dropped=len(ya) - len(d), mean=mean, ci_lo=mean - half, ci_hi=mean + half)
