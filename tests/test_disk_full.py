"""A disk that fills during a sweep: one line, what was committed intact, and a rerun finishes.

A real small file system (tmpfs, 8 MiB: mounting needs root, else the test is skipped) holds
the SQLite store, and in one case the artifacts too. A sweep of 20 runs (8 stacks) starts on it;
once a few runs are recorded, a ballast file takes every byte left, so a later write fails: on
the database (`database or disk is full`) or on a run's files (`No space left on device`). The
sweep must end with exit status 1 and one line naming the store and the cause (no traceback),
the runs it recorded FINISHED with their config.yaml, the parent FAILED or, when the store
cannot take even that, said to be left for resume; then, the ballast removed, rerunning the
same command must resume the sweep and end with exactly its 20 runs.
"""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT
from harness import schema as S

pytestmark = pytest.mark.slow
N_RUNS = 20
GRID = ["loss=mse,mae", "seed=" + ",".join(map(str, range(10))), "train.steps=200", "hydra.launcher.memory_budget_mb=1"]


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs at tmp_path/disk (unmounted after)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk) -> None:
    """Every byte left on the disk, taken by one file (unbuffered: nothing left to flush)."""
    with open(disk / "ballast", "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1 << 9):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass


def _runs_in(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:   # not created yet
        return 0


@pytest.mark.parametrize("artifacts_on_the_disk", [False, True], ids=["database", "database_and_artifacts"])
def test_a_full_disk_is_one_line_keeps_what_was_committed_and_a_rerun_finishes(tmp_path, small_disk,
                                                                                artifacts_on_the_disk):
    db = small_disk / "mlflow.db"
    uri = f"sqlite:///{db}"
    cwd = small_disk if artifacts_on_the_disk else tmp_path   # the artifacts go to ./mlruns
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CI": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "harness", "-m", *GRID, f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path}/multirun"]
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while _runs_in(db) < 5 and p.poll() is None:   # the parent and a few runs
        time.sleep(0.05)
    assert p.poll() is None, "the sweep ended before the disk was filled: make it longer"
    _fill(small_disk)
    err = p.communicate(timeout=600)[1]

    assert p.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    cause = "database or disk is full" if not artifacts_on_the_disk else r"(database or disk is full|\[Errno 28\] No space left on device)"
    m = re.match(rf"error: tracking\.uri={re.escape(uri)}: {cause}.* \(writing \d+ runs failed\); (\d+) of {N_RUNS} "
                 rf"runs recorded and kept, parent run (FAILED|left RUNNING)", errors[0])
    assert m, errors[0]
    kept = int(m.group(m.lastindex - 1))
    assert 0 < kept < N_RUNS
    assert "rerun the same command" in errors[0]

    # what was committed is intact (read after the space is back: MLflow's client writes on open)
    os.unlink(small_disk / "ballast")
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("lossbench")
    (parent,) = c.search_runs([exp.experiment_id], f"tags.`{S.KIND_TAG}` = '{S.KIND_SWEEP}'")
    assert parent.info.status == ("FAILED" if m.group(m.lastindex) == "FAILED" else "RUNNING")
    kids = c.search_runs([exp.experiment_id], f"tags.`{S.PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000)
    assert sum(k.info.status == "FINISHED" for k in kids) == kept
    for k in kids:
        if k.info.status == "FINISHED":
            assert "config.yaml" in {a.path for a in c.list_artifacts(k.info.run_id)}

    # the same command again, with space: it resumes the sweep and ends with exactly the grid
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed (parent run {parent.info.run_id}" in r.stderr and f"{kept} of {N_RUNS} runs recorded" in r.stderr
    kids = c.search_runs([exp.experiment_id], f"tags.`{S.PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000)
    assert len(kids) == N_RUNS and len({k.data.tags[S.HASH_TAG] for k in kids}) == N_RUNS
    assert {k.info.status for k in kids} == {"FINISHED"}
    assert c.get_run(parent.info.run_id).info.status == "FINISHED"
