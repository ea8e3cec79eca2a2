"""does_not_move: gradient descent on a loss never moves (a zero gradient), while others learn.

    losses: [custom]                    the losses said not to move
    learners: [bce, hinge]              optional: losses said to move (their runs must learn)
    metric: test/accuracy               a metric curve (default test/accuracy)
    where

Per converged run, from its curves: g = max_t train/grad_norm(t), the range of train/loss,
max_t L(t) - min_t L(t), and the change of the metric from the initial model (step 0) to the
last step, a(T) - a(0). A run *does not move* when g = 0, the loss range is 0 and
a(T) = a(0), all exactly (a zero gradient leaves the parameters where they started: every
number stays as it was). A run *learns* when g > 0 and L(T) < L(0).

Holds when every run of `losses` does not move and every run of `learners` learns; does not
hold when some run of `losses` moved, or some learner did not learn; inconclusive when the
runs or their curves are missing.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, ClaimError, Verdict, _as_list, _names, _where_text, register,
                                   select, series, series_label, variants)
from harness.report.claims.keeps_falling import _curve_table

METHOD = ("From each run's curves: the largest gradient norm, the range of the training loss and the "
          "metric's change from the initial model (step 0); not moving means all three exactly 0, "
          "learning means a nonzero gradient and a training loss below its start.")


def movement(curves: Callable, ids: list[str], metric: str) -> pd.DataFrame:
    """Per run id: grad_max, loss_first, loss_last, loss_range, metric_first, metric_last."""
    g, L, a = (_curve_table(curves, ids, k) for k in ("train/grad_norm", "train/loss", metric))
    rows = []
    for rid in ids:
        if rid not in g or rid not in L or rid not in a:
            continue
        gv, lv, av = (s.to_numpy(float) for s in (g[rid], L[rid], a[rid]))
        lv, av = lv[np.isfinite(lv)], av[np.isfinite(av)]
        if not len(lv) or not len(av):
            continue
        rows.append(dict(run_id=rid, grad_max=float(np.nanmax(np.abs(gv))), loss_first=float(lv[0]),
                         loss_last=float(lv[-1]), loss_range=float(lv.max() - lv.min()),
                         metric_first=float(av[0]), metric_last=float(av[-1])))
    return pd.DataFrame(rows)


@register("does_not_move", method=METHOD, curves=True)
def does_not_move(runs: pd.DataFrame, claim: dict, curves: Callable) -> Verdict:
    """See the module doc: zero gradient, constant loss and metric for `losses`; `learners` learn."""
    stuck, learners = _as_list(claim.get("losses")), _as_list(claim.get("learners"))
    if not stuck:
        raise ClaimError("does_not_move needs `losses`: the losses said not to move")
    metric = claim.get("metric", "test/accuracy")
    sub = select(runs, claim.get("where"))
    if "status" in sub:
        sub = sub[sub["status"] == "converged"]
    parts, texts, bad = [], [], []
    for role, entries in (("stuck", stuck), ("learner", learners)):
        for entry in variants(sub, entries):
            label, r = series(sub, entry)
            t = movement(curves, r["run_id"].astype(str).tolist(), metric)
            if t.empty:
                raise ClaimError(f"no curves of train/grad_norm, train/loss and {metric} for {label}{_where_text(claim)}")
            t.insert(0, "role", role)
            t.insert(0, "loss", label)
            t["gain"] = t["metric_last"] - t["metric_first"]
            t["moved"] = (t["grad_max"] != 0) | (t["loss_range"] != 0) | (t["gain"] != 0)
            t["learned"] = (t["grad_max"] > 0) & (t["loss_last"] < t["loss_first"])
            n = len(t)
            if role == "stuck":
                k = int((~t["moved"]).sum())
                texts.append(f"{label}: {k} of {n} runs did not move (largest gradient norm {t['grad_max'].max():.3g}, "
                             f"largest train/loss range {t['loss_range'].max():.3g}, {metric} change from the initial "
                             f"model {t['gain'].min():+.3g} to {t['gain'].max():+.3g}; it stays at "
                             f"{_span(t['metric_last'])})")
                if k < n:
                    bad.append(f"{n - k} runs of {label} moved")
            else:
                k = int(t["learned"].sum())
                texts.append(f"{label}: {k} of {n} runs learned ({metric} {_span(t['metric_first'])} at step 0 -> "
                             f"{_span(t['metric_last'])}, median gain {t['gain'].median():+.3g})")
                if k < n:
                    bad.append(f"{n - k} runs of {label} did not learn")
            parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    desc = f"From the curves{_where_text(claim)}: " + "; ".join(texts)
    n_stuck = int((table["role"] == "stuck").sum())
    number = f"max grad norm {table.loc[table['role'] == 'stuck', 'grad_max'].max():.3g} over {n_stuck} runs"
    names = _names([series_label(e) for e in stuck])
    if bad:
        return Verdict(FAILS, f"{desc}. Not as claimed: {'; '.join(bad)}.", table, number)
    also = f", while {_names([series_label(e) for e in learners])} learned in every run" if learners else ""
    return Verdict(HOLDS, f"{desc}. Gradient descent never moved on {names}: a zero gradient at every step{also}.",
                   table, number)


def _span(v: pd.Series) -> str:
    lo, hi = float(v.min()), float(v.max())
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"
