"""`build_report(uri, experiment, sweep, out)`: one sweep's comparison report, from MLflow only.

Writes `<out>/<experiment>/<sweep_id>/`:

    runs.csv        one row per run: tags, params, final metrics (load.runs_table)
    summary.csv     one row per group of runs differing only in seed (aggregate.summary)
    claims.csv      per claim and loss: the numbers its check compares, with 95% CIs (when the
                    sweep has a study)
    *.png + *.csv   the figures and the tables they were drawn from (figures.py)
    report.md, index.html

and attaches the folder to the sweep's parent run as artifacts under `report/`.

A sweep of one study reports it whole: its question, its claims with their verdicts, figures
(the families', its tasks', and those the study names under `figures:`; only the latter with
`family_figures: false`), the table of final
metrics. A study made of parts (the tour: `study.parts`) opens with a table of every claim of
every part, its verdict, the number that decides it and a link to its part's section; then a
section per part, built from that part's runs alone (tag lossbench.study), file names
prefixed by the part's name.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import schema as S
from harness.report import aggregate as A
from harness.report import claims as C
from harness.report import load as L
from harness.report import plots
from harness.report import render
from harness.report.figures import Figure, FigureContext, make_figures, study_figures
from harness.schema import DIVERGED

MAX_TABLE_ROWS = 300


@dataclass
class Part:
    """One study's share of the report: its study block, its runs, its files' prefix."""

    study: dict
    runs: pd.DataFrame
    prefix: str = ""

    @property
    def name(self) -> str:
        return str(self.study.get("name", ""))


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
    ctx = FigureContext(folder, lambda ids, key: L.curves(client, ids, key, sources),
                        lambda run_id, name: L.artifact_text(client, run_id, name))
    plots.reset_colors()  # one colour per series across the report's figures
    parts = _parts(sw, runs)
    results = []
    for p in parts:
        pctx = FigureContext(ctx.out, ctx.curves, ctx.artifact, p.prefix)
        family = p.study.get("family_figures", True)   # false: only the figures the study names
        figs = ((make_figures(p.runs, folder, ctx.curves, ctx.artifact, prefix=p.prefix) if family else [])
                + study_figures(p.runs, p.study, pctx) if len(p.runs) else [])
        results.append((p, figs, check_claims(p.runs, p.study, ctx.curves)))
    _claims_csv(results, folder)
    blocks = header_blocks(sw, runs, summ, parts)
    if len(parts) > 1:
        blocks += overview_blocks(results)
    for p, figs, verdicts in results:
        blocks += part_blocks(p, figs, verdicts, folder, level=3 if len(parts) > 1 else 2)
    blocks.append(("p", "Files: `summary.csv` (per setting: mean, sd, 95% CI half-width per metric), `runs.csv` "
                        "(one row per run), and a CSV beside each figure with the numbers it shows."))
    title = f"lossbench report — {experiment} / {sw.sweep_id}"
    (folder / "report.md").write_text(render.markdown(blocks))
    (folder / "index.html").write_text(render.to_html(blocks, title))
    if attach:
        try:
            client.log_artifacts(sw.run_id, str(folder), "report")
        except Exception as e:  # the local report stands even where the artifact store refuses
            print(f"warning: report not attached to parent run {sw.run_id}: {e}", file=sys.stderr)
    return folder


def _parts(sw: L.Sweep, runs: pd.DataFrame) -> list[Part]:
    study = sw.study or {}
    if not study.get("parts"):
        return [Part(study, runs)]
    col = runs["study"] if "study" in runs else pd.Series("", index=runs.index)
    return [Part(p, runs[col == p["name"]].reset_index(drop=True), f"{_safe(p['name'])}_") for p in study["parts"]]


def check_claims(runs: pd.DataFrame, study: dict | None, curves=None) -> list[tuple[dict, C.Verdict]]:
    """Each claim of the study with its verdict."""
    if not study or not study.get("claims"):
        return []
    return [(claim, C.evaluate(runs, claim, curves)) for claim in study["claims"]]


def _claims_csv(results, folder: Path) -> None:
    """claims.csv: per claim, the table its check decided on (a `part` column for a tour)."""
    tables = []
    for p, _, verdicts in results:
        for i, (claim, v) in enumerate(verdicts):
            if not v.table.empty:
                t = v.table.assign(claim=claim.get("id", f"claim{i}"), verdict=v.verdict)
                tables.append(t.assign(part=p.name) if p.prefix else t)
    if tables:
        t = pd.concat(tables, ignore_index=True)
        first = [c for c in ("part", "claim", "verdict") if c in t]
        t[first + [c for c in t.columns if c not in first]].to_csv(folder / "claims.csv", index=False)


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


def header_blocks(sw: L.Sweep, runs: pd.DataFrame, summ: pd.DataFrame, parts: list[Part]) -> list:
    n = len(runs)
    n_div = int((runs["status"] == DIVERGED).sum()) if n else 0
    seeds = runs[A.SEED].nunique() if A.SEED in runs else 0
    swept = "; ".join(f"{S.swept_key(k)}={v}" for k, v in sorted(sw.params.items()) if S.swept_key(k) is not None)
    study = sw.study or {}
    name = study.get("name") or sw.tags.get(L.STUDY_TAG) or sw.sweep_id
    b: list = [("h", 1, f"lossbench report: {name}")]
    kv = [("sweep id", f"`{sw.sweep_id}`"), ("parent run", f"`{sw.run_id}`"), ("experiment", sw.experiment),
          ("tracking URI", f"`{sw.uri}`"), ("runs", f"{n} ({n_div} diverged) in {len(summ)} settings x {seeds} seeds"),
          ("swept", swept or "–"), ("families", ", ".join(A.families(runs)) or "–")]
    if len(parts) > 1:
        kv.append(("studies", ", ".join(f"{p.name} ({len(p.runs)} runs)" for p in parts)))
        if study.get("question"):
            kv.append(("question", str(study["question"])))
    b.append(("kv", kv))
    return b


def overview_blocks(results) -> list:
    """The table of every claim of every part: claim, verdict, the deciding number, its section."""
    rows = []
    for p, _, verdicts in results:
        for claim, v in verdicts:
            rows.append({"study": render.Link(p.name, f"#{render.anchor(p.name)}"),
                         "claim": str(claim.get("text") or claim.get("id")), "verdict": v.verdict,
                         "deciding number": v.deciding})
    if not rows:
        return []
    counts = pd.Series([r["verdict"] for r in rows]).value_counts()
    tally = ", ".join(f"{counts.get(k, 0)} {k}" for k in (C.HOLDS, C.FAILS, C.UNSURE))
    return [("h", 2, "Claims of the article"), ("p", f"{len(rows)} claims: {tally}. Each links to its study's "
                                                   "section, where the numbers and figures behind it are."),
            ("table", pd.DataFrame(rows))]


def part_blocks(p: Part, figs: list[Figure], verdicts, folder: Path, level: int = 2) -> list:
    """One study's question, claims, figures and table of final metrics."""
    runs, study = p.runs, p.study
    b: list = []
    if level > 2:
        b.append(("h", 2, p.name))
    if study.get("question"):
        b += [("h", level, "Question"), ("p", str(study["question"]))]
    if verdicts:
        b.append(("h", level, "Claims"))
        for claim, v in verdicts:
            b.append(("verdict", str(claim.get("id", "claim")), v.verdict, str(claim.get("text", "")), v.text))
        used = dict.fromkeys(C.METHODS[c] for c in (claim.get("check") for claim, _ in verdicts) if c in C.METHODS)
        b.append(("p", " ".join(used) + " Per-loss numbers in `claims.csv`."))
    if figs:
        b.append(("h", level, "Figures"))
        b += [("img", f.png.relative_to(folder).as_posix(), f.caption) for f in figs]
    if len(runs):
        summ = A.summary(runs)
        fams = A.families(runs)
        for fam in fams or [None]:
            sub = runs if fam is None else runs[runs["eval"] == fam]
            part = summ if fam is None or "eval" not in summ else summ[summ["eval"] == fam]
            which = f" — {fam}" if len(fams) > 1 else ""
            b.append(("h", level, f"Final test metrics{which} (mean ± sd over seeds)"))
            t = results_table(part, table_keys(sub), A.task_metrics(sub))
            if len(t) > MAX_TABLE_ROWS:
                b.append(("p", f"First {MAX_TABLE_ROWS} of {len(t)} settings; all of them in `summary.csv`."))
                t = t.head(MAX_TABLE_ROWS)
            b.append(("table", t))
    return b


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)
