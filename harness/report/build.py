"""`build_report(uri, experiment, sweep, out)`: one sweep's comparison report, from MLflow only.

Writes `<out>/<experiment>/<sweep_id>/`:

    runs.csv        one row per run: tags, params, final metrics (load.runs_table)
    summary.csv     one row per group of runs differing only in seed (aggregate.summary)
    claims.csv      per claim and loss: the numbers its check compares, with 95% CIs (when the
                    sweep has a study)
    *.png + *.csv   the figures and the tables they were drawn from (figures.py)
    report.md, index.html

and attaches the folder to the sweep's parent run as artifacts under `report/`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from harness.schema import DIVERGED

from harness import schema as S
from harness.report import aggregate as A
from harness.report import claims as C
from harness.report import load as L
from harness.report import plots
from harness.report import render
from harness.report.figures import Figure, make_figures

MAX_TABLE_ROWS = 300


def build_report(uri: str = "sqlite:///mlflow.db", experiment: str = "lossbench", sweep: str | None = None,
                 out: str | Path = "reports", attach: bool = True) -> Path:
    """Builds the report of one sweep (default: the newest) and returns its folder.
    Bad input raises harness.errors.ConfigError naming the key, the value and what is allowed."""
    client = L.client_for(uri)
    sw = L.find_sweep(client, uri, experiment, sweep)
    runs = L.runs_table(client, sw)
    folder = Path(out) / _safe(experiment) / _safe(sw.sweep_id)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # a rebuild must not leave figures of an earlier build behind
        if old.is_file() and old.suffix in (".png", ".csv", ".md", ".html"):
            old.unlink()

    keys = A.group_keys(runs) if len(runs) else []
    order = [c for c in ["eval"] + keys + [A.SEED] if c in runs]
    runs.sort_values(order or ["run_id"], kind="stable").to_csv(folder / "runs.csv", index=False)
    summ = A.summary(runs) if len(runs) else pd.DataFrame()
    summ.to_csv(folder / "summary.csv", index=False)

    sources = dict(zip(runs["run_id"], runs["curves"])) if "curves" in runs else {}
    fetch = lambda ids, key: L.curves(client, ids, key, sources)
    plots.reset_colors()  # one colour per series across the report's figures
    artifact = lambda run_id, name: L.artifact_text(client, run_id, name)
    figs = make_figures(runs, folder, fetch, artifact) if len(runs) else []
    verdicts = check_claims(runs, sw.study, folder)
    blocks = report_blocks(sw, runs, summ, figs, verdicts, folder)
    title = f"lossbench report — {experiment} / {sw.sweep_id}"
    (folder / "report.md").write_text(render.markdown(blocks))
    (folder / "index.html").write_text(render.to_html(blocks, title))
    if attach:
        try:
            client.log_artifacts(sw.run_id, str(folder), "report")
        except Exception as e:  # the local report stands even where the artifact store refuses
            print(f"warning: report not attached to parent run {sw.run_id}: {e}", file=sys.stderr)
    return folder


def check_claims(runs: pd.DataFrame, study: dict | None, folder: Path) -> list[tuple[dict, C.Verdict]]:
    """Each claim of the study with its verdict; the slope tables go to claims.csv."""
    if not study or not study.get("claims"):
        return []
    out = [(claim, C.evaluate(runs, claim)) for claim in study["claims"]]
    tables = [v.table.assign(claim=claim.get("id", f"claim{i}"), verdict=v.verdict)
              for i, (claim, v) in enumerate(out) if not v.table.empty]
    if tables:
        t = pd.concat(tables, ignore_index=True)
        t[["claim", "verdict"] + [c for c in t.columns if c not in ("claim", "verdict")]].to_csv(folder / "claims.csv", index=False)
    return out


def table_keys(runs: pd.DataFrame) -> list[str]:
    """Report table columns of one family's runs: scenario and tuning params first
    (outliers.kind), then the loss and its own settings, then x; the loss name always."""
    keys = A.independent(runs, A.group_keys(runs))
    r = A.roles(runs)
    first = [k for k in r.scenario + r.tuning if k in keys]
    rest = [k for k in keys if k not in first]
    if A.LOSS in runs and A.LOSS not in rest:
        rest = [A.LOSS] + rest
    return first + rest


def results_table(summ: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """The report's table: one row per group, each metric as `mean ± sd` over seeds, sorted by
    `keys`."""
    keys = [k for k in keys if k in summ]
    summ = summ.sort_values(keys, kind="stable") if keys else summ
    t = summ[keys].copy()
    t["runs"] = summ["n_runs"]
    t["diverged"] = summ["n_diverged"]
    for m in metrics:
        mean, sd = summ[f"{m} mean"], summ[f"{m} sd"]
        t[m] = [("–" if pd.isna(a) else f"{a:.4g}" + ("" if pd.isna(b) else f" ± {b:.2g}")) for a, b in zip(mean, sd)]
    return t


def report_blocks(sw: L.Sweep, runs: pd.DataFrame, summ: pd.DataFrame, figs: list[Figure],
                  verdicts: list[tuple[dict, C.Verdict]], folder: Path) -> list:
    n = len(runs)
    n_div = int((runs["status"] == DIVERGED).sum()) if n else 0
    seeds = runs[A.SEED].nunique() if A.SEED in runs else 0
    swept = "; ".join(f"{S.swept_key(k)}={v}" for k, v in sorted(sw.params.items()) if S.swept_key(k) is not None)
    study = sw.study or {}
    name = study.get("name") or sw.tags.get(L.STUDY_TAG) or sw.sweep_id
    fams = A.families(runs)
    b: list = [("h", 1, f"lossbench report: {name}")]
    b.append(("kv", [("sweep id", f"`{sw.sweep_id}`"), ("parent run", f"`{sw.run_id}`"), ("experiment", sw.experiment),
                     ("tracking URI", f"`{sw.uri}`"), ("runs", f"{n} ({n_div} diverged) in {len(summ)} settings x {seeds} seeds"),
                     ("swept", swept or "–"), ("families", ", ".join(fams) or "–")]))
    if study.get("question"):
        b += [("h", 2, "Question"), ("p", str(study["question"]))]
    if verdicts:
        b.append(("h", 2, "Claims"))
        for claim, v in verdicts:
            b.append(("verdict", str(claim.get("id", "claim")), v.verdict, str(claim.get("text", "")), v.text))
        used = dict.fromkeys(C.METHODS[c] for c in (claim.get("check") for claim, _ in verdicts) if c in C.METHODS)
        b.append(("p", " ".join(used) + " Per-loss numbers in `claims.csv`."))
    if figs:
        b.append(("h", 2, "Figures"))
        b += [("img", f.png.relative_to(folder).as_posix(), f.caption) for f in figs]
    if len(summ):
        for fam in fams or [None]:
            sub = runs if fam is None else runs[runs["eval"] == fam]
            part = summ if fam is None or "eval" not in summ else summ[summ["eval"] == fam]
            which = f" — {fam}" if len(fams) > 1 else ""
            b.append(("h", 2, f"Final test metrics{which} (mean ± sd over seeds)"))
            t = results_table(part, table_keys(sub), A.task_metrics(sub))
            if len(t) > MAX_TABLE_ROWS:
                b.append(("p", f"First {MAX_TABLE_ROWS} of {len(t)} settings; all of them in `summary.csv`."))
                t = t.head(MAX_TABLE_ROWS)
            b.append(("table", t))
    b.append(("p", "Files: `summary.csv` (per setting: mean, sd, 95% CI half-width per metric), `runs.csv` "
                   "(one row per run), and a CSV beside each figure with the numbers it shows."))
    return b


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)
