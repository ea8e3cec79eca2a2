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
(the families', its tasks', and those the study names under `figures:`; `default_figures:
false` keeps only the study's own, for a study whose axes are not loss x outlier ratio), the
table of final metrics. A study made of parts (the tour: `study.parts`) opens with a table of every claim of
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
from harness.report import search_figures
from harness.protocol import Tuning
from harness.report import tuning as T
from harness.report.figures import STUDY_FIGURES, Figure, FigureContext, make_figures, study_figures
from harness.schema import DIVERGED

MAX_TABLE_ROWS = 300


@dataclass
class Part:
    """One study's share of the report: its study block, its runs (of a tuned study: phase 2's),
    its files' prefix, and a tuned study's phase-1 runs."""

    study: dict
    runs: pd.DataFrame
    prefix: str = ""
    tune: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return str(self.study.get("name", ""))


def build_report(uri: str = "sqlite:///mlflow.db", experiment: str = "lossbench", sweep: str | None = None,
                 out: str | Path = "reports", attach: bool = True, compare: str | None = None) -> Path:
    """Builds the report of one sweep (default: the newest) and returns its folder; `compare`,
    a second sweep of the experiment, adds a section putting the two side by side.
    Bad input raises harness.errors.ConfigError naming the key, the value and what is allowed."""
    client = L.client_for(uri)
    sw = L.find_sweep(client, uri, experiment, sweep)
    _close_if_orphaned(client, sw)
    other = L.find_sweep(client, uri, experiment, compare) if compare else None
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
    ctx = FigureContext(folder, remembered(lambda ids, key: L.curves(client, ids, key, sources)),
                        lambda run_id, name: L.artifact_text(client, run_id, name))
    plots.reset_colors()  # one colour per series across the report's figures
    parts = _parts(sw, runs)
    results = []
    for p in parts:
        pctx = FigureContext(ctx.out, ctx.curves, ctx.artifact, p.prefix)
        default = p.study.get("default_figures", True)   # false: a study whose axes are not loss x outlier ratio
        figs = (((make_figures(p.runs, folder, ctx.curves, ctx.artifact, prefix=p.prefix) if default else [])
                 + study_figures(p.runs, p.study, pctx)) if len(p.runs) else [])
        if p.tune is not None and len(p.tune):   # tuned: the tuning curves first, which loss wins where last
            figs = [f for f in [T.tuning_figure(p.tune, Tuning.of(p.study), pctx)] if f is not None] + figs
            if not any(a.get("kind") == "performance_profile" for a in p.study.get("figures") or []):
                figs += [f for f in [STUDY_FIGURES["performance_profile"](p.runs, {}, pctx)] if f is not None]
        figs += search_figures.defaults(p.tune if p.tune is not None and len(p.tune) else p.runs, p.study, pctx)
        results.append((p, figs, check_claims(p.runs, p.study, ctx.curves)))
    _claims_csv(results, folder)
    survival = {p.name: _survival(client, sw, p, verdicts) for p, _, verdicts in results if len(parts) == 1}
    blocks = header_blocks(sw, runs, summ, parts)
    if (sw.study or {}).get("advise"):   # the answer first
        from harness.report import advise

        blocks += advise.blocks(parts[0].runs, sw.study)
    if len(parts) > 1:
        blocks += overview_blocks(results)
    if other is not None:
        from harness.report import compare as K

        b_parts = _parts(other, L.runs_table(client, other))
        b_verdicts = check_claims(b_parts[0].runs, b_parts[0].study) if len(b_parts) == 1 else []
        blocks += K.blocks(sw, other, parts[0].runs if len(parts) == 1 else runs,
                           b_parts[0].runs if len(b_parts) == 1 else L.runs_table(client, other),
                           results[0][2] if len(parts) == 1 else [], b_verdicts)
    for p, figs, verdicts in results:
        blocks += part_blocks(p, figs, verdicts, folder, level=3 if len(parts) > 1 else 2)
        blocks += survival.get(p.name) or []
    blocks.append(("p", "Files: `summary.csv` (per setting: mean, sd, 95% CI half-width per metric), `runs.csv` "
                        "(one row per run), and a CSV beside each figure with the numbers it shows."))
    title = f"lossbench report — {experiment} / {sw.sweep_id}"
    (folder / "report.md").write_text(render.markdown(blocks))
    (folder / "index.html").write_text(render.to_html(blocks, title))
    if attach:
        try:
            client.log_artifacts(sw.run_id, str(folder), "report")
            client.set_tag(sw.run_id, S.NOTE_TAG, description(sw, runs, results, folder))
        except Exception as e:  # the local report stands even where the artifact store refuses
            print(f"warning: report not attached to parent run {sw.run_id}: {e}", file=sys.stderr)
    return folder


def description(sw: L.Sweep, runs: pd.DataFrame, results, folder: Path) -> str:
    """The parent run's description in the MLflow UI (markdown): the question, each claim's
    verdict with the number that decides it, and where the report is."""
    study = sw.study or {}
    n_div = int((runs["status"] == DIVERGED).sum()) if len(runs) else 0
    lines = [f"**{study.get('name') or 'sweep'}** — {len(runs)} runs ({n_div} diverged), sweep `{sw.sweep_id}`.", ""]
    if study.get("question"):
        lines += [f"**Question.** {study['question']}", ""]
    rows = [(p, claim, v) for p, _, verdicts in results for claim, v in verdicts]
    if rows:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
        lines += ["| study | claim | verdict | deciding number |", "|---|---|---|---|"]
        lines += [f"| {cell(p.name or study.get('name', ''))} | {cell(c.get('id', ''))} | **{v.verdict}** | {cell(v.deciding)} |"
                  for p, c, v in rows]
        lines.append("")
    lines.append(f"Report: `{(folder / 'index.html').resolve()}`, also in this run's artifacts under `report/`.")
    return "\n".join(lines)


def remembered(fetch):
    """`fetch(run_ids, key)` (the long table run_id, step, value) with a memory: a run's history
    of one metric is read from MLflow once per report, however many claims and figures ask."""
    seen: dict[tuple[str, str], pd.DataFrame] = {}

    def curves(run_ids, key: str) -> pd.DataFrame:
        ids = list(dict.fromkeys(str(i) for i in run_ids))
        new = [i for i in ids if (i, key) not in seen]
        if new:
            got = fetch(new, key)
            by = {str(rid): g for rid, g in got.groupby("run_id", sort=False)} if len(got) else {}
            for i in new:
                seen[(i, key)] = by.get(i, got.iloc[0:0])
        parts = [seen[(i, key)] for i in ids]
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "step", "value"])
        return out.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)

    return curves


def _parts(sw: L.Sweep, runs: pd.DataFrame) -> list[Part]:
    study = sw.study or {}
    if not study.get("parts"):
        parts = [Part(study, runs)]
    else:
        col = runs["study"] if "study" in runs else pd.Series("", index=runs.index)
        parts = [Part(p, runs[col == p["name"]].reset_index(drop=True), f"{_safe(p['name'])}_") for p in study["parts"]]
    for p in parts:
        if Tuning.of(p.study) is not None:        # compare the losses at their chosen settings
            p.tune, p.runs = T.split(p.runs)
    return parts


def _survival(client, sw: L.Sweep, p: Part, verdicts) -> list:
    """For a study with a `tune` block: its verdicts beside those of the newest sweep of the same
    study under the other protocol, when the experiment holds one (else how to run it)."""
    if not verdicts or not p.study.get("tune"):
        return []
    this = "tuned" if Tuning.of(p.study) is not None else "shared"
    that = "shared" if this == "tuned" else "tuned"
    other = L.counterpart(client, sw, p.name, that)
    b: list = [("h", 2, "Do the verdicts survive tuning?")]
    if other is None:
        cmd = f"python -m harness -m +experiment={p.name} study.protocol={that}"
        return b + [("p", f"No {that}-protocol sweep of {p.name} in this experiment yet: `{cmd}` runs one (each loss "
                          f"at {'its own tuned setting' if that == 'tuned' else 'the shared setting'}); this report "
                          "then compares the verdicts.")]
    runs = L.runs_table(client, other)
    if that == "tuned":
        runs = T.split(runs)[1]
    sources = dict(zip(runs["run_id"], runs["curves"])) if "curves" in runs else {}
    theirs = check_claims(runs, p.study, lambda ids, key: L.curves(client, ids, key, sources))
    rows = T.survival_rows(verdicts, theirs, f"{this} (this sweep)", f"{that} (sweep {other.sweep_id})")
    same = int((rows["same"] == "yes").sum())
    return b + [("p", f"{same} of {len(rows)} verdicts are the same under the {that} protocol "
                      f"(sweep `{other.sweep_id}`: {'each loss at its own tuned setting, new seeds' if that == 'tuned' else 'one shared setting'})."),
                ("table", rows)]


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
    b += completeness_blocks(sw, n)
    kv = [("sweep id", f"`{sw.sweep_id}`"), ("parent run", f"`{sw.run_id}`"), ("experiment", sw.experiment),
          ("tracking URI", f"`{sw.uri}`"), ("runs", f"{n} ({n_div} diverged) in {len(summ)} settings x {seeds} seeds"),
          ("swept", swept or "–"), ("families", ", ".join(A.families(runs)) or "–")]
    if len(parts) > 1:
        kv.append(("studies", ", ".join(f"{p.name} ({len(p.runs)} runs)" for p in parts)))
        if study.get("question"):
            kv.append(("question", str(study["question"])))
    b.append(("kv", kv))
    return b


def _close_if_orphaned(client, sw: L.Sweep) -> None:
    """A parent left RUNNING by a process that is gone (kill -9, a lost machine) is marked KILLED:
    no sweep stays RUNNING for ever once reported."""
    from harness.resume import alive

    if sw.status == "RUNNING" and alive(sw.tags.get(S.OWNER_TAG)) is False and S.OWNER_TAG in sw.tags:
        client.set_tag(sw.run_id, S.SWEEP_STATUS_TAG, "killed")
        client.set_terminated(sw.run_id, "KILLED")
        sw.status = "KILLED"


def completeness_blocks(sw: L.Sweep, n: int) -> list:
    """A sweep that holds fewer runs than its grid says so first: how many are missing, why,
    and the command that trains them."""
    expected = sw.expected
    if expected is None or n >= expected:
        return []
    why = {"RUNNING": "it is still running", "KILLED": "it was interrupted",
           "FAILED": "it failed"}.get(sw.status, f"its status is {sw.status}")
    return [("p", f"**Incomplete sweep: {n:,} of {expected:,} runs recorded, {expected - n:,} missing** ({why}). "
                  f"The verdicts below rest on the runs present. To train the missing ones, rerun the sweep's "
                  f"command or `python -m harness.resume {sw.sweep_id}`.")]


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
    tuning = Tuning.of(study)
    if tuning is not None and p.tune is not None:
        ch = T.chosen(p.tune, tuning)
        b += [("h", level, "Protocol: each loss at its own tuned setting"),
              ("p", f"Phase 1 ({len(p.tune)} runs, seeds {', '.join(map(str, tuning.seeds))}) tuned "
                    f"{', '.join(tuning.keys)} on a validation split of {tuning.val_size:g} of the training rows (the "
                    f"test split unread); phase 2 ({len(runs)} runs, new seeds {', '.join(map(str, tuning.final_seeds))}) "
                    "reran each loss at its chosen setting on the whole training split: the claims, figures and "
                    "table below are phase 2's, on the test split. Chosen settings:")]
        if len(ch):
            b.append(("table", ch))
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
