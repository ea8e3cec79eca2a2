"""never_diverges: no run of some losses diverged over a range of x.

    losses: [losses], x: optimizer.lr, range: [lo, hi], x_unit: edge (range in units of lr*,
    harness/report/lr.py) | as_is (default)

Holds when every run of the named losses with x in the range converged (status converged: its
loss never passed train.divergence_factor x max(initial loss, 1), nor turned NaN/inf); does not
hold when any diverged (the text names the loss, data set, x and seed of the first few);
inconclusive when some named loss has no run in the range. The text also gives, per loss, the
largest final training loss among those runs, a sign of how far a bounded gradient let them
wander (a loss that oscillates stays finite, one that blows up does not).

    - id: bounded_gradients_do_not_blow_up
      check: never_diverges
      losses: [mae, huber]
      x: optimizer.lr
      x_unit: edge
      range: [1.01, 4]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, ClaimError, Verdict, _as_list, _where_text, register,
                                   select, series, variants)
from harness.report.lr import edge_units, scenario_keys, scenario_label
from harness.report.series import SEED
from harness.schema import DIVERGED

METHOD = ("No divergence: every run of the named losses with x in the range must have converged (never passed "
          "the divergence threshold); one diverged run is enough to fail.")


@register("never_diverges", method=METHOD)
def never_diverges(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: did any run of `losses` diverge with x in `range`?"""
    x, losses = claim.get("x", "optimizer.lr"), _as_list(claim.get("losses"))
    rng = _as_list(claim.get("range"))
    if not losses or len(rng) != 2 or rng[0] > rng[1]:
        raise ClaimError("never_diverges needs `losses` and `range: [lo, hi]`, lo <= hi")
    lo, hi = map(float, rng)
    if x not in runs or "status" not in runs:
        raise ClaimError(f"x: no column {x!r} (or no status) in the runs")
    unit = claim.get("x_unit", "as_is")
    if unit not in ("edge", "as_is"):
        raise ClaimError(f"x_unit {unit!r}: edge or as_is")
    sub = select(runs, claim.get("where"))
    keys = scenario_keys(sub, x) if len(sub) else []
    in_unit = " x lr*" if unit == "edge" else ""
    rows = []
    for entry in variants(sub, losses):
        label, r = series(sub, entry)
        u = edge_units(r, x) if unit == "edge" else pd.to_numeric(r[x], errors="coerce").astype(float)
        r = r.assign(_u=u)[(u >= lo * (1 - 1e-9)) & (u <= hi * (1 + 1e-9))]   # assign first: an empty frame would take u's index
        if r.empty:
            raise ClaimError(f"no runs of {label} with {x} in [{lo:g}, {hi:g}]{in_unit}{_where_text(claim)}")
        div = r["status"].astype(str).eq(DIVERGED)
        final = pd.to_numeric(r.get("train/loss"), errors="coerce") if "train/loss" in r else pd.Series(np.nan, index=r.index)
        rows.append(dict(loss=label, n=len(r), n_diverged=int(div.sum()), x_min=float(r["_u"].min()),
                         x_max=float(r["_u"].max()), max_final_train_loss=float(final[~div].max()) if (~div).any() else np.nan))
    t = pd.DataFrame(rows)
    per = "; ".join(f"{r.loss}: {r.n_diverged} of {r.n} diverged, largest final train/loss {r.max_final_train_loss:.3g} (its own units)"
                    for r in t.itertuples())
    desc = f"Runs with {x} in [{lo:g}, {hi:g}]{in_unit}{_where_text(claim)}: {per}"
    n_div, n = int(t["n_diverged"].sum()), int(t["n"].sum())
    number = f"{n_div}/{n} diverged"
    if n_div:
        return Verdict(FAILS, f"{desc}. Diverged: {'; '.join(_diverged(sub, x, unit, lo, hi, keys, losses)[:5])}.",
                       t, number)
    return Verdict(HOLDS, f"{desc}. None of the {n} runs diverged.", t, number)


def _diverged(sub: pd.DataFrame, x: str, unit: str, lo: float, hi: float, keys: list[str],
              losses: list) -> list[str]:
    """Where the diverged runs are: loss, data set, x (in the claim's unit) and seed."""
    out = []
    for entry in variants(sub, losses):
        label, r = series(sub, entry)
        u = edge_units(r, x) if unit == "edge" else pd.to_numeric(r[x], errors="coerce").astype(float)
        hit = r[(u >= lo * (1 - 1e-9)) & (u <= hi * (1 + 1e-9)) & r["status"].astype(str).eq(DIVERGED)]
        for i, row in hit.iterrows():
            out.append(f"{label}, {scenario_label(row, keys)}, {x}={u[i]:g}{' x lr*' if unit == 'edge' else ''}, "
                       f"seed {row.get(SEED)}")
    return out
