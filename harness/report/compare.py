"""Two sweeps side by side (`python -m harness.report sweep=A compare=B`): the report of sweep A
with a section comparing it to sweep B (of the same experiment, or `compare.experiment`).

A setting is a combination of the params both sweeps have, but the seed (and a tuned protocol's
phase and validation size): the settings they share are compared on each family's primary metric,

    difference = mean over the seeds both ran of s * (a_k - b_k)   (s = +1 when higher is better:
                 positive means A is better), with its 95% t interval (stats.paired_difference);

where the seeds do not pair, the difference of the means, with both means' 95% intervals. Claims
of a study both sweeps answer are shown verdict by verdict. Every number comes from MLflow.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import metric_table as MT
from harness.protocol import NOT_GROUPED
from harness.report import aggregate as A
from harness.report.claims.stats import mean_interval, paired_difference


def shared_settings(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The params that name a setting in both tables: varying in either, present in both."""
    cols = (set(A.varying(a)) | set(A.varying(b))) & set(a.columns) & set(b.columns)
    return sorted(c for c in cols if c not in NOT_GROUPED)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per shared setting and family: both means, the difference (module doc), how paired."""
    rows = []
    for fam in sorted(set(A.families(a)) & set(A.families(b))):
        metric = MT.FAMILIES[fam].primary
        sa, sb = a[a["eval"] == fam], b[b["eval"] == fam]
        if metric not in sa or metric not in sb:
            continue
        keys = shared_settings(sa, sb)
        higher = bool(MT.higher_is_better(metric))
        name = lambda df: df[keys].astype(str).apply(tuple, axis=1) if keys else pd.Series([()] * len(df), index=df.index)
        na, nb = name(sa), name(sb)      # as text: a missing option (NaN) matches a missing one
        for key in dict.fromkeys(na):
            ra, rb = sa[na == key], sb[nb == key]
            if rb.empty:
                continue
            ya, yb = pd.to_numeric(ra[metric], errors="coerce"), pd.to_numeric(rb[metric], errors="coerce")
            d = paired_difference(metric, ra, rb, higher)
            la, ha = mean_interval(ya.to_numpy(), MT.metric(metric).bounds)
            lb, hb = mean_interval(yb.to_numpy(), MT.metric(metric).bounds)
            row = {k: ra[k].iloc[0] for k in keys}
            row.update({"metric": metric, "A": f"{ya.mean():.4g} [{la:.4g}, {ha:.4g}]",
                        "B": f"{yb.mean():.4g} [{lb:.4g}, {hb:.4g}]"})
            if d is not None:
                row.update({"A better by": f"{d['mean']:+.3g} [{d['ci_lo']:+.3g}, {d['ci_hi']:+.3g}]",
                            "paired": f"{d['n']} seeds",
                            "verdict": "A" if d["ci_lo"] > 0 else "B" if d["ci_hi"] < 0 else "tied"})
            else:
                s = 1.0 if higher else -1.0
                row.update({"A better by": f"{s * (ya.mean() - yb.mean()):+.3g}", "paired": "no (other seeds)",
                            "verdict": ("A" if s * (la - hb) > 0 and s > 0 or s < 0 and ha < lb else
                                        "B" if s > 0 and ha < lb or s < 0 and la > hb else "tied")})
            rows.append(row)
    return pd.DataFrame(rows)


def blocks(a_sweep, b_sweep, a_runs: pd.DataFrame, b_runs: pd.DataFrame, a_verdicts, b_verdicts) -> list:
    t = compare(a_runs, b_runs)
    head = [("h", 2, f"Compared with sweep {b_sweep.sweep_id}"),
            ("p", f"A = this sweep (`{a_sweep.sweep_id}`, {len(a_runs)} runs), B = `{b_sweep.sweep_id}` "
                  f"({len(b_runs)} runs, experiment {b_sweep.experiment}). Settings both ran, by each family's primary "
                  "metric; paired by seed where both ran the same seeds (positive: A better).")]
    if t.empty:
        return head + [("p", "The two sweeps share no setting (no params in common with a metric of one family).")]
    counts = t["verdict"].value_counts()
    head.append(("p", f"{len(t)} shared settings: A better on {counts.get('A', 0)}, B better on {counts.get('B', 0)}, "
                      f"tied on {counts.get('tied', 0)}."))
    out = head + [("table", t)]
    if a_verdicts and b_verdicts:
        theirs = {c.get("id"): v for c, v in b_verdicts}
        rows = [{"claim": c.get("id"), "A": v.verdict, "B": theirs[c.get("id")].verdict if c.get("id") in theirs else "–"}
                for c, v in a_verdicts]
        out += [("p", "Claims of the study, verdict by verdict:"), ("table", pd.DataFrame(rows))]
    return out
