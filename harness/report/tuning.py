"""What a report says of the tuned protocol (harness/protocol.py): the setting each loss was
given (phase 1's choice, made again from MLflow with the sweeper's own `choose`), the tuning
curves behind it, and, beside a study's shared-lr sweep, whether its verdicts survive tuning."""
from __future__ import annotations

import pandas as pd

from harness import metric_table as MT
from harness.protocol import NOT_GROUPED, Tuning, choose
from harness.report import aggregate as A
from harness.report import plots
from harness.report.figures import Figure, FigureContext, x_label


def split(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(phase 1's runs, phase 2's runs) of a tuned sweep."""
    phase = runs["phase"] if "phase" in runs else pd.Series(None, index=runs.index)
    return runs[phase == "tune"].reset_index(drop=True), runs[phase == "final"].reset_index(drop=True)


def metric_of(tuning: Tuning, family: str) -> str:
    return tuning.metric or "val/" + MT.FAMILIES[family].primary.split("/", 1)[1]


def chosen(tune: pd.DataFrame, tuning: Tuning) -> pd.DataFrame:
    """Per group, the setting phase 1 chose: the group's varying params, the tuned keys, the
    validation metric's mean and its runs (diverged ones counted apart)."""
    parts = []
    for fam in A.families(tune):
        sub = tune[tune["eval"] == fam]
        metric = metric_of(tuning, fam)
        if metric not in sub:
            continue
        keys = [k for k in tuning.keys if k in sub]
        keep = [c for c in A.varying(sub) if c not in NOT_GROUPED and c not in keys] + keys
        params = sub[keep + [metric, "status"]]
        c = choose(params, [k for k in tuning.keys if k in sub], metric, bool(MT.higher_is_better(metric)))
        parts.append(c.drop(columns="index").assign(metric=metric))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def tuning_figure(tune: pd.DataFrame, tuning: Tuning, ctx: FigureContext) -> Figure | None:
    """The tuning curves: the validation metric (mean and 95% interval over the tuning seeds)
    against the first tuned key, one line per loss, one panel per scenario; log x."""
    x = next((k for k in tuning.keys if k in tune), None)
    fams = A.families(tune)
    if x is None or not fams:
        return None
    sub = tune[tune["eval"] == fams[0]]
    metric = metric_of(tuning, fams[0])
    if metric not in sub:
        return None
    r = A.roles(sub)
    facets = [c for c in ([r.x] if r.x else []) + r.scenario + r.tuning if c != x and c not in NOT_GROUPED]
    st = A.stats(sub, r.line + [x] + facets, [metric])
    from harness.report.figures import _plot_table

    t = _plot_table(st, metric, A.Roles(x, r.line, [], facets), facets)
    m = MT.metric(metric)
    title = f"Tuning (phase 1): {m.label} against {x_label(x, sub)} — mean ± 95% interval over {sub['seed'].nunique()} seeds"
    png = plots.metric_plot(t, ctx.out / f"{ctx.prefix}tuning_curves", ylabel=m.axis_label(), xlabel=x_label(x, sub),
                            title=title, log_x=True, bounds=m.bounds)
    return Figure(png, f"{title}. Each loss's chosen setting is the lowest point of its line (the best mean "
                       f"validation score, the fewest diverged runs first); the test split is not used here.")


def survival_rows(here: list[tuple[dict, object]], other: list[tuple[dict, object]], this: str, that: str) -> pd.DataFrame:
    """Claim by claim, the verdict of this sweep and of its counterpart (shared <-> tuned)."""
    theirs = {c.get("id"): v for c, v in other}
    rows = [{"claim": c.get("id"), this: v.verdict, that: theirs[c.get("id")].verdict if c.get("id") in theirs else "–",
             "same": ("yes" if c.get("id") in theirs and theirs[c.get("id")].verdict == v.verdict else "no")}
            for c, v in here]
    return pd.DataFrame(rows)
