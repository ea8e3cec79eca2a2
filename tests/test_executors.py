"""Stacks trained elsewhere (hydra.launcher.executor=ray|submitit) and Hydra's own per-job
launchers (joblib, submitit_local) write the same records as the local batched launcher; a
worker that dies is retried, a stack lost past its retries fails only its own jobs and a rerun
finishes them; a signal stops the sweep and leaves no remote work running. Real engines: a
local Ray with 2 CPUs, submitit's local processes, the published Hydra plugins, real sweeps
through the command line into real SQLite stores; workers really die (os._exit) and signals
are really sent."""
from __future__ import annotations

import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import harness, spec

from harness import schema as S

# 2 losses x 2 lr x 2 seeds x 2 ratios = 16 runs, in 4 stacks of 4 (a 1 MB memory budget)
GRID = ["-m", "loss=mse,huber", "optimizer.lr=0.01,0.1", "seed=0,1", "outliers.ratio=0,0.2", "train.steps=30",
        "hydra.launcher.memory_budget_mb=1"]
N, N_STACKS = 16, 4
SMALL = ["-m", "loss=mse,huber", "optimizer.lr=0.1", "seed=0", "outliers.ratio=0,0.2", "train.steps=30"]  # 4 runs
RAY = ["hydra.launcher.executor=ray", "hydra.launcher.ray.num_cpus=2"]
SUBMITIT = ["hydra.launcher.executor=submitit", "hydra.launcher.submitit.cluster=local", "hydra.launcher.submitit.workers=2"]
# what may differ between two sweeps of the same grid: which sweep, the command line, where it trained
FREE_TAGS = {S.SWEEP_TAG, S.PARENT_TAG, S.SOURCE_NAME_TAG, S.DEVICE_TAG}


@pytest.fixture(autouse=True)
def _ray_env(monkeypatch):
    # Ray 2.60 enables token authentication by default (and writes ~/.ray/auth_token)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _sweep(tmp: Path, name: str, *args: str, check: bool = True, env: dict | None = None):
    argv = [*args, f"tracking.uri=sqlite:///{tmp}/m.db", f"tracking.experiment={name}", f"hydra.sweep.dir={tmp}/{name}"]
    if env is None:
        return harness(*argv, cwd=tmp, check=check)
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=tmp, env={**os.environ, "CI": "1", **env},
                          capture_output=True, text=True, timeout=600)


def _records(tmp: Path, name: str, deep: bool = True) -> tuple[dict, list]:
    """({config hash: (status, final metrics, params, tags but FREE_TAGS, curve length, artifacts,
    data sets)} of the experiment's runs, [its parent runs]); without `deep`, the curve length and
    artifacts (two queries a run) are None."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{tmp}/m.db")
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], max_results=10000)
    parents = [r for r in runs if r.data.tags.get(S.KIND_TAG) == S.KIND_SWEEP]
    out = {}
    for r in runs:
        if r.data.tags.get(S.KIND_TAG) != S.KIND_RUN:
            continue
        h = r.data.tags[S.HASH_TAG]
        assert h not in out, f"two runs of {h}"
        out[h] = (r.info.status, r.data.metrics, r.data.params, {k: v for k, v in r.data.tags.items() if k not in FREE_TAGS},
                  len(c.get_metric_history(r.info.run_id, "train/loss")) if deep else None,
                  sorted(a.path for a in c.list_artifacts(r.info.run_id)) if deep else None,
                  sorted((i.dataset.name, i.dataset.digest) for i in r.inputs.dataset_inputs))
    return out, parents


def _same(a: dict, b: dict) -> None:
    """Every run of `b` is recorded exactly as in `a` (final metrics bit for bit)."""
    assert set(b) <= set(a) and b
    for h, rb in b.items():
        ra = a[h]
        assert ra[0] == rb[0] == "FINISHED"
        assert ra[1].keys() == rb[1].keys(), h
        for m, va in ra[1].items():
            vb = rb[1][m]
            assert (math.isnan(va) and math.isnan(vb)) or va == vb, (h, m, va, vb)
        assert ra[2:] == rb[2:], h


def _finished(parents: list, n: int):
    (p,) = parents
    assert p.info.status == "FINISHED"
    assert p.data.metrics[S.SWEEP_RUNS] == n and p.data.metrics[S.SWEEP_MISSING] == 0 and p.data.metrics[S.SWEEP_FAILED] == 0
    return p


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The grid through the local executor (the default): the records the others must match."""
    tmp = tmp_path_factory.mktemp("executors")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _sweep(tmp, "local", *GRID)
    recs, parents = _records(tmp, "local")
    assert len(recs) == N
    _finished(parents, N)
    return tmp, recs


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("override, line", [
    ("hydra.launcher.executor=dask", "error: hydra.launcher.executor='dask': local, ray or submitit"),
    ("hydra.launcher.max_retries=-1", "error: hydra.launcher.max_retries=-1: an integer >= 0"),
    ("hydra.launcher.executor=submitit hydra.launcher.submitit.cluster=pbs",
     "error: hydra.launcher.submitit.cluster='pbs': null (SLURM if present, else local), slurm or local"),
    ("hydra.launcher.executor=ray +hydra.launcher.ray.adress=10.0.0.1:6379",
     "error: hydra.launcher.ray.adress='10.0.0.1:6379': one of address, num_cpus, num_gpus, cpus_per_stack, "
     "gpus_per_stack, runtime_env, in_flight"),
])
def test_a_bad_executor_option_is_one_line_before_anything_is_written(tmp_path, override, line):
    p = harness(*SMALL, *override.split(), f"tracking.uri=sqlite:///{tmp_path}/m.db", cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "m.db").exists()


def test_stack_results_pickle_to_numpy_and_plain_values_for_every_task():
    """What a worker sends back: a stack's RunResults pickle, hold no torch object (a CUDA tensor
    would not load on a driver without a GPU), and load back equal."""
    import numpy as np
    import torch

    from harness.executors import train_stack

    stacks = [
        [spec("loss=mse", "train.steps=3", "seed=0"), spec("loss=mse", "train.steps=3", "seed=1")],
        [spec("dataset=classification", "loss=bce", "train.steps=3")],
        [spec("dataset=blobs", "loss=cross_entropy", "model=mlp", "train.steps=3")],
        [spec("dataset=blobs", "loss=triplet", "model=mlp", "train.steps=3")],
        [spec("dataset=counts", "loss=poisson", "train.steps=3")],
        [spec("dataset=soft_targets", "loss=kl", "train.steps=3")],
        [spec("dataset=mixture", "loss=kl", "model=gaussian", "train.steps=3")],
    ]

    def torch_objects(o, seen, path="results"):
        if id(o) in seen:
            return []
        seen.add(id(o))
        if isinstance(o, (torch.Tensor, torch.device, torch.dtype, torch.nn.Module)):
            return [path]
        if isinstance(o, dict):
            return [p for k, v in o.items() for p in torch_objects(v, seen, f"{path}[{k!r}]")]
        if isinstance(o, (list, tuple)):
            return [p for i, v in enumerate(o) for p in torch_objects(v, seen, f"{path}[{i}]")]
        if hasattr(o, "__dict__") and not isinstance(o, (np.ndarray, type)):
            return [p for k, v in vars(o).items() for p in torch_objects(v, seen, f"{path}.{k}")]
        return []

    for specs in stacks:
        results, seconds = train_stack(specs)
        assert seconds > 0 and len(results) == len(specs)
        assert torch_objects(results, set()) == [], specs[0].task
        back = pickle.loads(pickle.dumps(results))
        for r, b in zip(results, back):
            assert b.status == r.status and b.final.keys() == r.final.keys()
            assert all((math.isnan(v) and math.isnan(b.final[k])) or v == b.final[k] for k, v in r.final.items())
            assert all(np.array_equal(c[1], b.curves[k][1], equal_nan=True) for k, c in r.curves.items())


# -- the same records, every engine ---------------------------------------------------------------
def test_ray_with_a_worker_killed_retries_its_stack_and_writes_the_local_records(baseline, tmp_path):
    """Through a local Ray with 2 CPUs; the worker of the first stack dies (os._exit) on its first
    attempt: the stack is sent again, and the sweep ends with every run, as the local one."""
    _, local = baseline
    kills = tmp_path / "kills"
    p = _sweep(tmp_path, "ray", *GRID, *RAY, env={"LOSSBENCH_TEST_KILL_WORKER": f"{kills}:1"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(os.listdir(kills)) == ["attempt-0", "attempt-1"]    # killed once, then trained
    assert "lost its worker" in p.stdout + p.stderr and "retry 1 of 2" in p.stdout + p.stderr
    recs, parents = _records(tmp_path, "ray")
    assert len(recs) == N
    _finished(parents, N)
    _same(local, recs)


def test_submitit_local_jobs_write_the_local_records(baseline, tmp_path):
    _, local = baseline
    p = _sweep(tmp_path, "submitit", *GRID, *SUBMITIT)
    assert f"submitit: {N_STACKS} stacks on 2 workers" in p.stdout + p.stderr
    recs, parents = _records(tmp_path, "submitit")
    assert len(recs) == N
    _finished(parents, N)
    _same(local, recs)
    jobs = [d for d in (tmp_path / "submitit" / ".submitit").iterdir() if d.name.isdigit()]
    assert len(jobs) == N_STACKS   # one job per stack


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_hydras_per_job_launchers_write_into_one_parent_the_local_records(baseline, tmp_path, launcher):
    """hydra/launcher=joblib|submitit_local (the published plugins): one process per job, each
    attaching its run to the sweep's parent through the environment the sweeper exports."""
    _, local = baseline
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    _sweep(tmp_path, launcher, *SMALL, f"hydra/launcher={launcher}", *extra)
    recs, parents = _records(tmp_path, launcher)
    assert len(recs) == 4
    parent = _finished(parents, 4)
    _same(local, recs)
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    kids = c.search_runs([parent.info.experiment_id], f"tags.`{S.KIND_TAG}` = '{S.KIND_RUN}'")
    assert {k.data.tags[S.PARENT_TAG] for k in kids} == {parent.info.run_id}


BIG = ["-m", "loss=mse,mae,huber", "optimizer.lr=0.001,0.01,0.1,1.0", "regularization.kind=l2",
       "regularization.weight=0,0.001,0.01", "outliers.ratio=0,0.05,0.1,0.2,0.3", "seed=0,1,2", "optimizer=gd",
       "train.steps=100"]   # the README's 540-run grid, shorter


@pytest.mark.slow
def test_the_540_run_grid_on_ray_and_on_submitit_writes_the_local_records(tmp_path):
    """The README's grid (540 runs, its stacks planned as the local executor plans them) on a
    local Ray of 2 CPUs and on 2 submitit local jobs at once: every run recorded as locally."""
    _sweep(tmp_path, "local", *BIG)
    local, parents = _records(tmp_path, "local", deep=False)
    assert len(local) == 540
    _finished(parents, 540)
    for name, engine in (("ray", RAY), ("submitit", SUBMITIT)):
        p = _sweep(tmp_path, name, *BIG, *engine)
        assert "stacks on 2 workers" in p.stdout + p.stderr, p.stderr[-2000:]
        recs, parents = _records(tmp_path, name, deep=False)
        assert len(recs) == 540
        _finished(parents, 540)
        _same(local, recs)


# -- failures, signals --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_stack_lost_past_its_retries_fails_its_jobs_alone_and_a_rerun_finishes_them(baseline, tmp_path):
    _, local = baseline
    kills = tmp_path / "kills"
    p = _sweep(tmp_path, "lost", *GRID, *SUBMITIT, check=False, env={"LOSSBENCH_TEST_KILL_WORKER": f"{kills}:99"})
    assert p.returncode != 0
    assert len(os.listdir(kills)) == 3                       # the first try and 2 retries
    assert "lost its worker 3 times" in p.stderr and "rerun the same command to train them" in p.stderr
    assert "Traceback" not in p.stderr and p.returncode == 1, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1].startswith("error: submitit: a stack of 4 runs lost its worker 3 times")
    assert f"{N - 4} of {N} runs recorded and kept, parent run FAILED" in p.stderr
    recs, (parent,) = _records(tmp_path, "lost")
    assert len(recs) == N - N // N_STACKS                    # the other stacks went on
    assert parent.info.status == "FAILED"
    assert parent.data.metrics[S.SWEEP_RUNS] == N - 4 and parent.data.metrics[S.SWEEP_FAILED] == 4
    assert parent.data.metrics[S.SWEEP_MISSING] == 4
    p = _sweep(tmp_path, "lost", *GRID, *SUBMITIT)           # the same command, no worker dies
    assert "resumed" in p.stderr and f"{N - 4} of {N} runs recorded; training the other 4" in p.stderr
    recs, parents = _records(tmp_path, "lost")
    assert len(recs) == N
    assert _finished(parents, N).info.run_id == parent.info.run_id
    _same(local, recs)


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds LOSSBENCH_TEST_MARK=marker (workers inherit it)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"LOSSBENCH_TEST_MARK={marker}".encode() in env.split(b"\0"):
            out.append(int(pid))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["submitit", "ray"])
def test_sigterm_stops_a_remote_sweep_in_one_line_and_cancels_its_workers(tmp_path, executor):
    """Long stacks (4,000 steps, ~10 s each here) on 2 workers: SIGTERM 2 s after the first is
    written, when the next stack has just started. The sweep ends in one line with the parent
    KILLED, and within 4 s no worker process of it trains on (submitit's local jobs would run
    to their end: they outlive the driver unless cancelled)."""
    args = [*GRID[:-2], "train.steps=4000", "hydra.launcher.memory_budget_mb=1", *(RAY if executor == "ray" else SUBMITIT)]
    argv = [*args, f"tracking.uri=sqlite:///{tmp_path}/m.db", f"hydra.sweep.dir={tmp_path}/sweep"]
    mark = f"{tmp_path}-{executor}"
    env = {**os.environ, "CI": "1", "PYTHONUNBUFFERED": "1", "LOSSBENCH_TEST_MARK": mark}
    # files, not pipes: the workers inherit them, and reading a pipe to its end would wait for them too
    log = tmp_path / "err.txt"
    with open(tmp_path / "out.txt", "w") as out, open(log, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=tmp_path, env=env, stdout=out, stderr=err)
    db = tmp_path / "m.db"
    t0 = time.time()
    while time.time() - t0 < 300 and p.poll() is None and _count(db) == 0:
        time.sleep(0.1)
    time.sleep(2)
    assert p.poll() is None, log.read_text()[-3000:]
    assert _processes_with(mark), "no worker runs"
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    deadline = time.time() + 4   # a killed process takes a moment to go
    while _processes_with(mark) and time.time() < deadline:
        time.sleep(0.2)
    left = _processes_with(mark)
    err = log.read_text()
    assert p.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err, err[-5000:]
    n = _count(db)
    assert f"interrupted (SIGTERM): {n} of {N} runs recorded, parent run KILLED" in err
    assert 0 < n < N
    assert left == []


def _count(db: Path) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from runs r join tags t on t.run_uuid = r.run_uuid where t.key = ? "
                               "and r.status = 'FINISHED'", (S.PARENT_TAG,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0
