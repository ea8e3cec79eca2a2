"""divergence_edge: where runs start to diverge as the learning rate grows lies in a given band.

    x: optimizer.lr, within: [lo, hi] (in units of lr*, harness/report/lr.py: edge_units),
    losses: [losses] (default: every run that `where` keeps)

Per data group (the runs of one scenario -- data set and its options -- and one seed, so one
training set; a loss entry that stands for several variants gives a group per variant) the
runs are ordered by x in units of that group's lr*, and the divergence edge e is bracketed by

    a = the largest x such that every run at x' <= x converged     (-inf when the first diverged)
    b = the smallest x such that every run at x' >= x diverged     (+inf when the last converged)

so that e lies in (a, b]; where statuses interleave (a diverged run below a converged one)
the bracket spans the whole mixed region. A group

    holds           when lo <= a and b <= hi: the edge is inside the band
    does not hold   when b < lo or a >= hi: the edge is below or above the band, whatever lies
                    between the grid's points (a group whose every run diverged, with the
                    smallest x below lo; or whose every run converged, with the largest x at or
                    above hi)
    inconclusive    otherwise: the bracket straddles an end of the band (the grid is too coarse
                    there) or the grid never reaches the band

The claim holds when every group holds, does not hold when some group does not, and is
inconclusive otherwise. Example (MSE, full-batch GD, where 1.01 lr* grows the top eigendirection
by 1.02 a step):

    - id: mse_edge
      check: divergence_edge
      x: optimizer.lr
      within: [1.0, 1.05]
      losses: [mse]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _where_text, register,
                                   select, series, variants)
from harness.report.lr import edge_units, scenario_keys, scenario_label
from harness.report.series import SEED
from harness.schema import DIVERGED

METHOD = ("Divergence edge: per data group (data set and seed), the bracket (a, b] between the largest "
          "learning rate below which every run converged and the smallest above which every run diverged, "
          "in units of that data's lr*; holds when every bracket lies inside the claimed band.")


def bracket(x: np.ndarray, diverged: np.ndarray) -> tuple[float, float]:
    """(a, b] of the module doc, for one group's runs: x values and whether each diverged."""
    order = np.argsort(x, kind="stable")
    x, dv = np.asarray(x, float)[order], np.asarray(diverged, bool)[order]
    levels = np.unique(x)
    any_div = np.array([dv[x == v].any() for v in levels])
    all_div = np.array([dv[x == v].all() for v in levels])
    clean = ~np.cumsum(any_div).astype(bool)                    # every run at or below converged
    a = float(levels[clean][-1]) if clean.any() else -np.inf
    tail = np.flip(np.cumprod(np.flip(all_div))).astype(bool)  # every run at or above diverged
    b = float(levels[tail][0]) if tail.any() else np.inf
    return a, b


@register("divergence_edge", method=METHOD)
def divergence_edge(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: is every data group's divergence bracket inside `within`?"""
    x = claim.get("x", "optimizer.lr")
    band = _as_list(claim.get("within"))
    if len(band) != 2 or not all(isinstance(v, (int, float)) for v in band) or band[0] > band[1]:
        raise ClaimError("divergence_edge needs `within: [lo, hi]`, lo <= hi, in units of lr*")
    lo, hi = map(float, band)
    if x not in runs or "status" not in runs:
        raise ClaimError(f"x: no column {x!r} (or no status) in the runs")
    sub = select(runs, claim.get("where"))
    if sub.empty:
        raise ClaimError(f"no runs{_where_text(claim)} in this sweep")
    entries = variants(sub, _as_list(claim.get("losses"))) or [None]
    keys = scenario_keys(sub, x)
    rows = []
    for entry in entries:
        label, r = series(sub, entry) if entry is not None else ("all runs", sub)
        u = edge_units(r, x)
        if u.isna().all():
            raise ClaimError(f"{label}: no learning rate in units of lr* (no {x} with lr_unit=edge, nor data/lr_edge)")
        r = r.assign(_u=u, _div=r["status"].astype(str).eq(DIVERGED))
        for k, g in r.groupby(keys + [SEED] if SEED in r else keys, dropna=False, sort=True):
            g = g[g["_u"].notna()]
            if g.empty:
                continue
            a, b = bracket(g["_u"].to_numpy(), g["_div"].to_numpy())
            if lo <= a and b <= hi:
                v = HOLDS
            elif b < lo or a >= hi:
                v = FAILS
            else:
                v = UNSURE
            first = g.iloc[0]
            rows.append(dict(loss=label, group=scenario_label(first, keys), seed=first.get(SEED), a=a, b=b,
                             n=len(g), n_diverged=int(g["_div"].sum()), x_min=float(g["_u"].min()),
                             x_max=float(g["_u"].max()), verdict=v))
    if not rows:
        raise ClaimError(f"no runs with a learning rate in units of lr*{_where_text(claim)}")
    t = pd.DataFrame(rows)
    names = ", ".join(dict.fromkeys(t["loss"]))
    spans = t.groupby(["a", "b"], sort=True).size()
    found = "; ".join(f"({_g(a)}, {_g(b)}] in {n} of {len(t)} groups" for (a, b), n in spans.items())
    desc = (f"Divergence bracket (a, b] in units of lr* per data group (data set and seed) of {names}"
            f"{_where_text(claim)}: {found}; claimed band [{lo:g}, {hi:g}]")
    bad, unsure = t[t["verdict"] == FAILS], t[t["verdict"] == UNSURE]
    number = f"edge in {'; '.join(f'({_g(a)}, {_g(b)}]' for a, b in spans.index)} x lr*"
    if len(bad):
        where = "; ".join(f"{r.group}, seed {r.seed}: ({_g(r.a)}, {_g(r.b)}]" for r in bad.head(5).itertuples())
        return Verdict(FAILS, f"{desc}. Outside the band in {len(bad)} of {len(t)} groups: {where}.", t, number)
    if len(unsure):
        where = "; ".join(f"{r.group}, seed {r.seed}: ({_g(r.a)}, {_g(r.b)}]" for r in unsure.head(5).itertuples())
        return Verdict(UNSURE, f"{desc}. In {len(unsure)} of {len(t)} groups the bracket straddles an end of the band "
                               f"or the grid does not reach it (too coarse to tell): {where}.", t, number)
    return Verdict(HOLDS, f"{desc}. Every bracket lies inside the band: on every group the runs converged up to at "
                          f"least {_g(t['a'].min())} lr* and diverged from {_g(t['b'].max())} lr* at the latest.", t, number)


def _g(v: float) -> str:
    return "-inf" if v == -np.inf else "inf" if v == np.inf else f"{v:g}"
