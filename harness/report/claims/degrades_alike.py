"""degrades_alike: the robust losses degrade like the reference.

    reference: loss, losses: [losses], at: max | all | value | [values],
    baseline: value (default: the smallest x), factor: 2

Per loss, its degradation: the mean change of the metric, in its worse direction (a rise of
RMSE, a fall of accuracy), from x = baseline to the x values `at` (max: the largest x; all:
every x but the baseline, averaged), with its 95% stratified-bootstrap CI (stats.degradation).
Holds when no loss of `losses` degrades clearly less than `reference`: for each, the CIs
overlap or its degradation is at least 1/factor of the reference's; does not hold when one
degrades less with the CIs apart and by more than the factor; inconclusive when the reference
itself does not degrade (CI reaching 0).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import (FAILS, HOLDS, UNSURE, ClaimError, Verdict, _as_list, _direction, _names,
                                   _prepare, _where_text, register, series, variants)
from harness.report.claims.stats import degradation

METHOD = ("Degradation = the change of the metric, in its worse direction, from the baseline x value "
          "to the compared ones (difference of means over seeds); 95% CIs from a bootstrap that "
          "resamples seeds within each x value.")


@register("degrades_alike", method=METHOD)
def degrades_alike(runs: pd.DataFrame, claim: dict) -> Verdict:
    """See the module doc: do `losses` degrade (from x = baseline to x in `at`) as much as
    `reference`, within overlapping CIs or a `factor`?"""
    ref, losses = claim.get("reference"), _as_list(claim.get("losses"))
    if ref is None or not losses:
        raise ClaimError("degrades_alike needs a `reference` loss and a `losses` list")
    metric, x = claim.get("metric"), claim.get("x")
    sub = _prepare(runs, claim, need_x=True)
    refs, losses = variants(sub, [ref]), variants(sub, losses)
    if len(refs) > 1:
        raise ClaimError(f"reference: {ref} has {len(refs)} variants in this sweep; name one, e.g. "
                         f"{{{', '.join(f'{k}: {v}' for k, v in refs[0].items())}}}")
    ref = refs[0]
    higher = _direction(claim)
    factor = float(claim.get("factor", 2.0))
    if factor < 1:
        raise ClaimError(f"factor: {factor:g}; needs a number >= 1")
    xs = np.sort(pd.to_numeric(sub[x], errors="coerce").dropna().unique())
    if len(xs) < 2:
        raise ClaimError(f"degrades_alike needs runs at two or more values of {x}")
    base = float(claim.get("baseline", xs[0]))
    if not np.isclose(xs, base).any():
        raise ClaimError(f"baseline: no runs at {x}={base:g} (values: {', '.join(f'{v:g}' for v in xs)})")
    rest = [float(v) for v in xs if not np.isclose(v, base)]
    at_arg = claim.get("at", "max")
    if at_arg == "max":
        at = [max(rest)]
    elif at_arg == "all":
        at = rest
    else:
        at = [float(v) for v in _as_list(at_arg)]
        missing = [v for v in at if not np.isclose(xs, v).any()]
        if missing:
            raise ClaimError(f"at: no runs at {x}={', '.join(f'{v:g}' for v in missing)} "
                             f"(values: {', '.join(f'{v:g}' for v in xs)})")
    sign = -1.0 if higher else 1.0
    rows = []
    for i, entry in enumerate([ref] + losses):
        label, r = series(sub, entry)
        xv, yv = pd.to_numeric(r[x], errors="coerce").to_numpy(float), r[metric].to_numpy(float)
        ok = np.isfinite(xv) & np.isfinite(yv)
        d, lo, hi = degradation(xv[ok], yv[ok], base, at, sign)
        rows.append(dict(loss=label, role="compared" if i else "reference", degradation=d, ci_lo=lo,
                         ci_hi=hi, baseline=base, at=",".join(f"{v:g}" for v in at), n=int(ok.sum()),
                         n_dropped=int((~ok).sum())))
    t = pd.DataFrame(rows)
    missing = t.loc[t["degradation"].isna(), "loss"].tolist()
    if missing:
        raise ClaimError(f"no degradation for {', '.join(missing)}: needs finite {metric} at {x}={base:g} and at "
                         f"{', '.join(f'{v:g}' for v in at)}{_where_text(claim) or ''}")
    word = "fall" if higher else "rise"
    to = f"{at[0]:g}" if len(at) == 1 else f"each of {', '.join(f'{v:g}' for v in at)} (averaged)"
    parts = [f"{r.loss} {r.degradation:+.3g} [{r.ci_lo:+.3g}, {r.ci_hi:+.3g}]" for r in t.itertuples()]
    dropped = int(t["n_dropped"].sum())
    desc = (f"{word.capitalize()} of {metric} from {x}={base:g} to {to}{_where_text(claim)}, 95% CI: "
            + "; ".join(parts) + (f"; {dropped} runs without a finite value left out" if dropped else ""))
    r0 = t.iloc[0]
    if r0.ci_lo <= 0:
        return Verdict(UNSURE, f"{desc}. The reference {r0.loss} does not clearly degrade (its CI reaches 0), so "
                               f"there is nothing to degrade alike.", t)
    ratios, smaller = [], []
    for r in t.iloc[1:].itertuples():
        ratio = r.degradation / r0.degradation
        ratios.append(f"{r.loss} {ratio:.2f}x")
        overlap = r.ci_hi >= r0.ci_lo and r.ci_lo <= r0.ci_hi
        if not overlap and ratio < 1 / factor:
            smaller.append(r.loss)
    t["vs_reference"] = t["degradation"] / r0.degradation
    rel = f"Relative to {r0.loss}: {', '.join(ratios)}"
    if smaller:
        return Verdict(FAILS, f"{desc}. {rel}. {_names(smaller)} degrade{'s' * (len(smaller) == 1)} clearly less "
                              f"than {r0.loss} (CIs apart, below 1/{factor:g} of its {word}).", t)
    return Verdict(HOLDS, f"{desc}. {rel}. None degrades clearly less than {r0.loss}: each CI overlaps "
                          f"{r0.loss}'s or its {word} is within a factor {factor:g} of it.", t)
