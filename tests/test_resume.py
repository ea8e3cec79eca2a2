"""Nothing lost, nothing duplicated: sweeps killed (kill -9, SIGTERM, SIGINT) at any instant and
resumed by rerunning their command end with exactly their grid, one run per configuration, every
run complete (curves and config.yaml), no run left RUNNING. Real sweeps through the command line
into a real SQLite store; the processes are really killed."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import schema as S

# 3 losses x 4 lr x 4 ratios x 3 seeds x 2 data sets = 288 runs, in 54 stacks of a few runs
# (a tiny memory budget), so that a sweep writes many times and a kill lands between writes; 3,000
# steps make a stack last ~1.5 s (~85 s the sweep on 2 idle cores), long enough for 22 kills
GRID = ["-m", "loss=mse,mae,huber", "optimizer.lr=0.01,0.05,0.1,0.2", "outliers.ratio=0,0.1,0.2,0.3",
        "seed=0,1,2", "dataset=linear,friedman1", "hydra.launcher.memory_budget_mb=1", "train.steps=3000",
        "train.log_every=50", "train.eval_every=500"]
N_GRID = 288


def _start(tmp: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness", *GRID, *extra], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _recorded(tmp: Path) -> int:
    """FINISHED child runs in the store now (read beside the writer, as mlflow ui would)."""
    db = tmp / "mlflow.db"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
                               "where t.key = ? and r.status = 'FINISHED' and r.lifecycle_stage = 'active'",
                               (S.PARENT_TAG,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _wait_for_progress(tmp: Path, p: subprocess.Popen, above: int, timeout: float = 120) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout and p.poll() is None:
        n = _recorded(tmp)
        if n > above:
            return n
        time.sleep(0.05)
    return _recorded(tmp)


def _store_state(tmp: Path) -> dict:
    """What MLflow's public client reads back: the sweeps, their children, their completeness."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name("lossbench")
    every = client.search_runs([exp.experiment_id], max_results=50000)
    parents = [r for r in every if r.data.tags.get(S.KIND_TAG) == S.KIND_SWEEP]
    kids = [r for r in every if r.data.tags.get(S.KIND_TAG) == S.KIND_RUN]
    return dict(client=client, parents=parents, kids=kids, running=[r for r in every if r.info.status == "RUNNING"])


def _check_complete(tmp: Path, curves_sample: int = 40) -> None:
    st = _store_state(tmp)
    assert len(st["parents"]) == 1, [p.data.tags.get(S.SWEEP_TAG) for p in st["parents"]]
    parent = st["parents"][0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[S.SWEEP_RUNS] == N_GRID and parent.data.metrics[S.SWEEP_MISSING] == 0
    kids = st["kids"]
    assert len(kids) == N_GRID
    assert len({k.data.tags[S.HASH_TAG] for k in kids}) == N_GRID
    assert all(k.data.tags[S.PARENT_TAG] == parent.info.run_id for k in kids)
    assert all(k.info.status == "FINISHED" for k in kids) and not st["running"]
    client = st["client"]
    for k in kids:   # every run has its config.yaml
        assert S.CONFIG_ARTIFACT in [a.path for a in client.list_artifacts(k.info.run_id)], k.info.run_id
    for k in random.Random(0).sample(kids, min(curves_sample, len(kids))):   # and its curves
        assert len(client.get_metric_history(k.info.run_id, "train/loss")) == 61


@pytest.mark.slow
def test_twenty_kill_9s_at_random_instants_then_a_rerun_leave_exactly_the_grid(tmp_path):
    rng = random.Random(1234)
    landed_mid_sweep, counts = 0, []
    for i in range(22):
        before = _recorded(tmp_path)
        p = _start(tmp_path)
        if i % 2 == 0:   # at a random instant: often during start-up, validation, the parent's creation
            time.sleep(rng.uniform(0.5, 9.0))
        else:            # just after a stack was written: inside the next write, or between two
            _wait_for_progress(tmp_path, p, before)
            time.sleep(rng.uniform(0.0, 0.4))
        if p.poll() is not None:
            out, err = p.communicate()
            assert p.returncode == 0, err
            break   # the sweep finished before its kill
        p.send_signal(signal.SIGKILL)
        p.communicate()
        after = _recorded(tmp_path)
        counts.append(after)
        landed_mid_sweep += 0 < after < N_GRID
    assert len(counts) >= 20, f"the sweep finished after {len(counts)} kills: make it longer"
    assert landed_mid_sweep >= 5, counts
    p = _start(tmp_path)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert "resumed" in err
    _check_complete(tmp_path)


def _sweep_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("sweep ")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_sweep_in_one_line_parent_killed_counts_right_and_a_rerun_finishes_it(tmp_path, sig):
    p = _start(tmp_path)
    _wait_for_progress(tmp_path, p, 0)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + int(sig), err
    assert "Traceback" not in err
    line = _sweep_lines(err)[-1]
    n = _recorded(tmp_path)
    assert 0 < n < N_GRID
    assert f"interrupted ({sig.name}): {n} of {N_GRID} runs recorded, parent run KILLED" in line
    st = _store_state(tmp_path)
    (parent,) = st["parents"]
    assert parent.info.status == "KILLED" and parent.data.metrics[S.SWEEP_RUNS] == n
    assert parent.data.metrics[S.SWEEP_MISSING] == N_GRID - n and not st["running"]

    # its report says it is incomplete, first
    rep = subprocess.run([sys.executable, "-m", "harness.report"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "CI": "1"})
    assert rep.returncode == 0, rep.stderr
    md = next((tmp_path / "reports" / "lossbench").glob("*/report.md")).read_text()
    assert f"Incomplete sweep: {n} of {N_GRID} runs recorded, {N_GRID - n} missing" in md

    # python -m harness.resume finds it by its id and reruns its command
    sweep_id = parent.data.tags[S.SWEEP_TAG]
    res = subprocess.run([sys.executable, "-m", "harness.resume", sweep_id], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "CI": "1", "OMP_NUM_THREADS": "1"}, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"sweep {sweep_id} resumed" in res.stderr and f"{n} of {N_GRID} runs recorded" in res.stderr
    _check_complete(tmp_path)


@pytest.mark.slow
def test_a_finished_sweep_rerun_is_a_new_sweep_and_never_resume_forces_one(tmp_path):
    from conftest import harness

    small = ["-m", "loss=mse,mae", "seed=0,1", "train.steps=20"]
    harness(*small, cwd=tmp_path)
    harness(*small, cwd=tmp_path)   # finished: a new sweep of the same grid
    p = harness(*small, "hydra.sweeper.resume=never", cwd=tmp_path)
    assert "resumed" not in p.stderr
    bad = harness(*small, "hydra.sweeper.resume=nosuchsweep", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: hydra.sweeper.resume='nosuchsweep'")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    eid = client.get_experiment_by_name("lossbench").experiment_id
    parents = client.search_runs([eid], f"tags.`{S.KIND_TAG}` = 'sweep'")
    assert len(parents) == 3 and len({p.data.tags[S.SWEEP_KEY_TAG] for p in parents}) == 1
    assert all(p.data.metrics[S.SWEEP_RUNS] == 4 for p in parents)
