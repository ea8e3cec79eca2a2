"""The performance-profile figure kind (`figures: [{kind: performance_profile, ...}]`; the
advise and tuned reports draw it by default): harness/report/profile.py computes it."""
from __future__ import annotations

import pandas as pd

from harness import metric_table as MT
from harness.report import aggregate as A
from harness.report import charts
from harness.report import profile as P
from harness.report.figures import Figure, FigureContext, register_study_figure


@register_study_figure("performance_profile")
def performance_profile(runs: pd.DataFrame, args: dict, ctx: FigureContext) -> Figure | None:
    """args: metric (default the family's primary), problems (default [dataset.name, seed] where
    present, plus the other scenario params the sweep varies)."""
    fams = A.families(runs)
    if runs.empty or not fams:
        return None
    metric = args.get("metric") or MT.FAMILIES[fams[0]].primary
    if metric not in runs:
        return None
    r = A.roles(runs)
    default = [c for c in ["dataset.name"] + ([r.x] if r.x else []) + r.scenario + [A.SEED] if c in runs]
    problems = list(dict.fromkeys(args.get("problems") or default))
    rt = P.ratios(runs, metric, problems, r.line)
    if rt["line"].nunique() < 2:
        return None
    t = P.profile(rt, problems)
    n = rt.groupby(problems, dropna=False).ngroups
    wins = t[t["tau"] == 1.0].set_index("line")["rho"].sort_values(ascending=False)
    lead = ", ".join(f"{k} {v:.0%}" for k, v in wins.items())
    title = f"Performance profile of {MT.metric(metric).label} over {n} problems ({' x '.join(problems)})"
    png = charts.profile_plot(t, ctx.out / f"{ctx.prefix}performance_profile", title=title)
    rt.to_csv(ctx.out / f"{ctx.prefix}performance_profile_ratios.csv", index=False)
    return Figure(png, f"{title}. For each loss, the share of problems on which its cost is within a factor τ of "
                       f"the best loss's on that problem (Dolan-Moré); at τ = 1, the share it wins: {lead}. Cost: "
                       f"{'1 - ' if MT.metric(metric).higher_is_better and MT.metric(metric).bounds[1] == 1.0 else ''}"
                       f"{metric}, averaged where several runs share a problem and a loss. Ratios per problem in "
                       f"{ctx.prefix}performance_profile_ratios.csv.")
