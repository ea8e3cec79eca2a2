"""How fast a search finds what a grid finds: `python -m harness.search.bench`.

For each problem, one grid over the learning rate and two searches of the same range (random,
the baseline; TPE), of --trials trials each (default: as many as the grid has settings), and
with --prune each of the three again with train.prune=halving (pruned runs cost the steps they
ran and are never a trial's result; the target stays the unpruned grid's best), each a
real sweep through the command line into one SQLite store (their own folder); then, per loss,
from MLflow:

    grid best      the grid's best validation score (the mean over its seeds)
    run-steps      the run-steps each spent until its best first matched it (a grid: all of
                   them, since its best is known only once every setting has run; also the
                   run-steps of its settings in ascending order up to the best)
    reached        its best came within --rel (a fraction; 0: matched or beat it) of the grid's best
    wall s         seconds from the sweep's start (its parent run) to the end of the round that
                   matched it (a grid: to its last run), and the whole process
    trials         how many trials that took, of how many

Prints a markdown table and writes it as CSV (--out). Problems: regression (diabetes, MSE, MAE,
Huber; the metric val/rmse) and classification (breast_cancer, BCE, hinge; val/log_loss, a
smooth score: accuracy ties too often to say which trial reached the grid's best first).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

PROBLEMS = {
    "regression": dict(args=["dataset=diabetes", "loss=mse,mae,huber"], metric="val/rmse", higher=False),
    "classification": dict(args=["dataset=breast_cancer", "loss=bce,hinge"], metric="val/log_loss", higher=False),
}
LRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]


def _sweep(folder: Path, args: list[str]) -> tuple[str, float]:
    """Runs one sweep; (its sweep id, the process's wall seconds)."""
    env = {**os.environ, "CI": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "harness", "-m", *args, "tracking.uri=sqlite:///mlflow.db"],
                       cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"sweep failed ({p.returncode}): {' '.join(args)}\n{p.stderr[-3000:]}")
    return re.search(r"^sweep (\S+):", p.stderr, re.M).group(1), wall


def _runs(folder: Path, sweep_id: str) -> pd.DataFrame:
    """The sweep's runs table, with each run's end (seconds after the parent's start)."""
    from harness.report import load as L

    client = L.client_for(f"sqlite:///{folder}/mlflow.db")
    sw = L.find_sweep(client, f"sqlite:///{folder}/mlflow.db", "lossbench", sweep_id)
    runs = L.runs_table(client, sw)
    start = client.get_run(sw.run_id).info.start_time
    ends = {r.info.run_id: (r.info.end_time - start) / 1000 for r in
            client.search_runs([sw.experiment_id], f"tags.`mlflow.parentRunId` = '{sw.run_id}'", max_results=50000)}
    return runs.assign(_end=runs["run_id"].map(ends))


def measure(problem: str, root: Path, trials: int, round: int, steps: int, seeds: str, rel: float = 0.0,
            prune: bool = False) -> pd.DataFrame:
    from harness.search.progress import progress, to_reach

    spec = PROBLEMS[problem]
    folder = root / problem
    folder.mkdir(parents=True, exist_ok=True)
    common = [*spec["args"], f"train.steps={steps}", f"seed={seeds}", "dataset.val_size=0.2",
              "hydra.launcher.progress=false"]
    lo, hi = LRS[0], LRS[-1]
    sweeps = {"grid": common + [f"optimizer.lr={','.join(map(str, LRS))}"]}
    for sampler in ("random", "tpe"):
        sweeps[sampler] = common + [f"optimizer.lr=tag(log,interval({lo},{hi}))", "hydra.sweeper.search=optuna",
                                    f"hydra.sweeper.trials={trials}", f"hydra.sweeper.round={round}",
                                    f"hydra.sweeper.sampler={sampler}"]
    if prune:   # each again with successive halving inside its stacks (a search: inside each round)
        sweeps.update({f"{k}+halving": [*v, "train.prune=halving"] for k, v in list(sweeps.items())})
    rows, target = [], None
    for kind, args in sweeps.items():
        sweep_id, wall = _sweep(folder, args)
        runs = _runs(folder, sweep_id)
        table = progress(runs, spec["metric"], spec["higher"])
        if kind.startswith("grid"):
            table["series"] = table["series"].str.replace("loss.name=", "loss=", regex=False)   # as the searches label them
        if kind == "grid":
            target = {s: float(g["best"].iloc[-1]) for s, g in table.groupby("series")}
        reach = to_reach(table, target, spec["higher"], rel)
        for _, r in reach.iterrows():
            part = table[table["series"] == r["series"]]
            if kind.startswith("grid"):
                steps_to, trials_to, t_to = r["total_run_steps"], r["total_trials"], float(runs["_end"].max())
                in_order = r["run_steps"]
            else:
                hit = part[part["order"] == r["trials"] - 1] if r["reached"] else part.iloc[:0]
                done = runs[(runs["search"] == r["series"]) & runs["trial"].astype(float).isin(hit["trial"].astype(float))]
                steps_to, trials_to, in_order = r["run_steps"], r["trials"], math.nan
                t_to = float(done["_end"].max()) if len(done) else math.nan
            rows.append(dict(problem=problem, loss=r["series"], kind=kind, grid_best=r["target"], best=r["best"],
                             reached=bool(r["reached"]), run_steps_to_reach=steps_to, grid_order_run_steps=in_order,
                             total_run_steps=r["total_run_steps"], trials_to_reach=trials_to, trials=r["total_trials"],
                             wall_s_to_reach=t_to, process_wall_s=wall))
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="regression,classification")
    ap.add_argument("--trials", type=int, default=len(LRS))
    ap.add_argument("--round", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--rel", type=float, default=0.0, help="reached: within this fraction of the grid's best")
    ap.add_argument("--prune", action="store_true", help="also each with train.prune=halving (grid+halving, ...)")
    ap.add_argument("--root", default="bench-search")
    ap.add_argument("--out", default="bench-search/search_bench.csv")
    a = ap.parse_args(argv)
    root = Path(a.root).resolve()
    frames = [measure(p, root, a.trials, a.round, a.steps, a.seeds, a.rel, a.prune) for p in a.problems.split(",")]
    df = pd.concat(frames, ignore_index=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False)
    cols = ["problem", "loss", "kind", "grid_best", "best", "reached", "run_steps_to_reach", "grid_order_run_steps",
            "trials_to_reach", "trials", "wall_s_to_reach", "process_wall_s"]
    print(markdown(df[cols]))


def markdown(df: pd.DataFrame) -> str:
    """A markdown table, numbers to 4 significant digits (pandas' to_markdown needs tabulate)."""
    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
