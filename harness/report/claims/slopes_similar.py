"""slopes_similar: two or more losses' metric changes with x alike.

    losses: [two or more losses]

Holds when the slopes of metric on x share a sign and lie within a factor 2 of each other,
max|b| / min|b| <= 2, or when every pair of 95% CIs overlaps; does not hold otherwise. The
slopes are those of slope_greater (its `slopes` table).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.claims import FAILS, HOLDS, ClaimError, Verdict, register, select, variants
from harness.report.claims.slope_greater import SLOPES, describe, slopes


@register("slopes_similar", method=SLOPES)
def slopes_similar(runs: pd.DataFrame, claim: dict, factor: float = 2.0) -> Verdict:
    """Holds when the slopes of `losses` share a sign and lie within `factor` (2) of each other,
    max|b| / min|b| <= 2, or when every pair of 95% CIs overlaps; does not hold otherwise."""
    losses = variants(select(runs, claim.get("where")), list(claim.get("losses", [])))
    if len(losses) < 2:
        raise ClaimError("slopes_similar needs a `losses` list of two or more losses")
    t = slopes(runs, claim, losses)
    b = t["slope"].to_numpy()
    same_sign = (b > 0).all() or (b < 0).all()
    ratio = np.abs(b).max() / np.abs(b).min() if same_sign else np.inf
    overlap = all(max(p.ci_lo, q.ci_lo) <= min(p.ci_hi, q.ci_hi)
                  for i, p in enumerate(t.itertuples()) for q in list(t.itertuples())[i + 1:])
    desc = describe(t, claim) + "."
    if ((t["ci_lo"] <= 0) & (t["ci_hi"] >= 0)).all():
        desc += " No slope differs from 0: none of them shows a linear trend in x."
    ratio_txt = f"Largest/smallest slope = {ratio:.2f}" if np.isfinite(ratio) else "The slopes differ in sign"
    if ratio <= factor or overlap:
        why = f"within a factor of {factor:g}" if ratio <= factor else "all CIs overlap"
        return Verdict(HOLDS, f"{desc} {ratio_txt}; {why}.", t)
    return Verdict(FAILS, f"{desc} {ratio_txt} (not within a factor of {factor:g}) and not all CIs overlap.", t)
