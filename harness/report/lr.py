"""Learning-rate quantities of a runs table, for the learning-rate study's claims and figures.

lr in units of lr* (`edge_units`). Every run logs data/lr_edge = lr* = 2 / lambda_max((2/n) A'A),
A = [1, X]: the stability edge of full-batch GD on MSE for a linear model of its training rows.
A run swept with `optimizer.lr_unit=edge` already has optimizer.lr in those units; one swept in
absolute units is divided by its own lr*:

    u = optimizer.lr                    (optimizer.lr_unit = edge)
    u = optimizer.lr / data/lr_edge     (otherwise)

Steps to a target loss (`steps_to_target`). For a converged run with training-loss curve L_t
(train/loss, logged every train.log_every steps):

    L0      = L at the first logged step (0: the initial parameters)
    L*      = final train/objective - final opt/gap: the objective at the exact optimum theta* of
              the run's own convex problem (train.optimum=true). Both final values are taken at the
              same, final parameters, so the difference is J(theta*) up to the float rounding of
              train/objective (float32: ~1e-7 relative), whatever the run did; with no penalty
              (regularization.weight = 0, required) the objective is the loss L.
    target  = L* + fraction (L0 - L*)            (fraction 0.01: 99% of the way from L0 to L*)
    steps   = the first logged step t with L_t <= target

A converged run that never gets there within train.steps is *censored* (steps NaN, censored True:
it needs more than the budget); a diverged run has no steps (NaN, censored False).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from harness.report.series import LOSS, SEED
from harness.schema import CONVERGED

LR, LR_UNIT, EDGE, DATA = "optimizer.lr", "optimizer.lr_unit", "data/lr_edge", "dataset.name"
STEPS = "train/steps_to_target"   # the derived quantity's column (claims: metric: train/steps_to_target)
CENSORED, TARGET = "steps/censored", "steps/target"   # beside it; names with a "/" are not params
FRACTION = 0.01

Curves = Callable[[list[str], str], pd.DataFrame]


def edge_units(runs: pd.DataFrame, x: str = LR) -> pd.Series:
    """`x` (a learning rate) in units of each run's lr* (module doc); NaN where a run in
    absolute units has no data/lr_edge."""
    lr = pd.to_numeric(runs[x], errors="coerce").astype(float)
    edge = pd.to_numeric(runs[EDGE], errors="coerce").astype(float) if EDGE in runs else pd.Series(np.nan, index=runs.index)
    rel = runs[LR_UNIT].astype(str) == "edge" if LR_UNIT in runs else pd.Series(False, index=runs.index)
    return lr.where(rel, lr / edge)


def scenario_keys(runs: pd.DataFrame, x: str) -> list[str]:
    """The params that tell the runs' conditions apart (the data set and its options, ...):
    every varying param but x, the seed, the loss and its options, without those that follow
    from the others (aggregate.independent), and dataset.name first where it varies (a data
    set's own options, NaN for the others, would tell them apart alone, but not by name)."""
    from harness.report.aggregate import independent
    from harness.report.load import param_columns

    keys = [c for c in param_columns(runs) if c not in (x, SEED, LR_UNIT) and not c.startswith("loss.")
            and runs[c].nunique(dropna=False) > 1]
    keys = independent(runs, keys) if keys else []
    if DATA in runs and runs[DATA].nunique(dropna=False) > 1 and DATA not in keys:
        keys = [DATA] + keys
    return sorted(keys, key=lambda c: c != DATA)


def scenario_label(row, keys: list[str]) -> str:
    """A scenario as the report names it: the data set, its options in brackets, as a series is
    named (series.series_name): `linear (correlation=0.9)`, `diabetes`; options a run does not
    have (NaN, "null") are left out."""
    from harness.report.series import series_name

    have = {c: row[c] for c in keys if c in row and pd.notna(row[c]) and str(row[c]) != "null"}
    if not have:
        return "all runs"
    first = str(have.pop(DATA)) if DATA in have else None
    if first is None:
        return ", ".join(f"{c}={v:g}" if isinstance(v, float) else f"{c}={v}" for c, v in have.items())
    return series_name(first, have)


# -- steps to a target loss -------------------------------------------------------------------
_CACHE: dict = {"fn": None, "key": None, "curves": {}}   # one report's histories, fetched once


def _histories(curves: Curves, ids: list[str], key: str) -> pd.DataFrame:
    """curves(ids, key), each run's history fetched once per curves function (a report's claims
    and figures ask for the same runs)."""
    if _CACHE["fn"] is not curves or _CACHE["key"] != key:
        _CACHE.update(fn=curves, key=key, curves={})
    have = _CACHE["curves"]
    missing = [i for i in ids if i not in have]
    if missing:
        got = curves(missing, key)
        for rid, part in got.groupby("run_id", sort=False):
            have[rid] = part
        for rid in missing:
            have.setdefault(rid, got.iloc[0:0])
    parts = [have[i] for i in ids]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "step", "value"])


def steps_to_target(runs: pd.DataFrame, curves: Curves, fraction: float = FRACTION,
                    key: str = "train/loss") -> pd.DataFrame:
    """Per run (the index of `runs`): L0, L_star, target, steps, censored, budget (module doc).
    A ValueError when a run has a penalty or lacks train/objective and opt/gap (train.optimum)."""
    if not 0 < fraction < 1:
        raise ValueError(f"target fraction {fraction!r}: a number in (0, 1)")
    for col in ("train/objective", "opt/gap"):
        if col not in runs:
            raise ValueError(f"steps to target need final {col} (sweep with train.optimum=true)")
    if "regularization.weight" in runs and (pd.to_numeric(runs["regularization.weight"], errors="coerce").fillna(0) > 0).any():
        raise ValueError("steps to target need runs without a penalty (regularization.weight=0): "
                         "train/loss is then the objective whose optimum opt/gap measures")
    out = pd.DataFrame(index=runs.index, columns=["L0", "L_star", "target", "steps"], dtype=float)
    out["budget"] = pd.to_numeric(runs["train.steps"], errors="coerce") if "train.steps" in runs else np.nan
    out["censored"] = False
    ok = runs["status"].astype(str).eq(CONVERGED) & np.isfinite(runs["train/objective"].astype(float)) \
        & np.isfinite(runs["opt/gap"].astype(float))
    if not ok.any():
        return out
    ids = runs.loc[ok, "run_id"].astype(str)
    h = _histories(curves, ids.tolist(), key).sort_values(["run_id", "step"], kind="stable")
    first = h.groupby("run_id")["value"].first()
    lstar = (runs.loc[ok, "train/objective"].astype(float) - runs.loc[ok, "opt/gap"].astype(float))
    out.loc[ok, "L_star"] = lstar
    out.loc[ok, "L0"] = ids.map(first).astype(float)
    out["target"] = out["L_star"] + fraction * (out["L0"] - out["L_star"])
    tgt = pd.Series(out.loc[ok, "target"].to_numpy(float), index=ids.to_numpy())
    below = h[h["value"].to_numpy(float) <= h["run_id"].map(tgt).to_numpy(float)]
    reached = below.groupby("run_id")["step"].min()
    out.loc[ok, "steps"] = ids.map(reached).astype(float)
    out["censored"] = ok & out["steps"].isna() & out["L0"].notna()
    return out


def with_steps(runs: pd.DataFrame, curves: Curves, fraction: float = FRACTION) -> pd.DataFrame:
    """`runs` plus the columns STEPS (censored runs: their budget, a lower bound), CENSORED and
    TARGET (steps_to_target's)."""
    s = steps_to_target(runs, curves, fraction)
    return runs.assign(**{STEPS: s["steps"].where(~s["censored"], s["budget"]), CENSORED: s["censored"].astype(bool),
                          TARGET: s["target"]})


def series_keys(runs: pd.DataFrame) -> list[str]:
    """The loss and its own varying options: what names a series (figures and claims alike)."""
    return [LOSS] + [c for c in runs.columns if c.startswith("loss.") and c != LOSS and runs[c].nunique(dropna=True) > 1]
