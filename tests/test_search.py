"""Adaptive search (hydra.sweeper.search=optuna, harness/search/): real sweeps through the command
line into real SQLite stores, real Optuna studies beside them.

    the ask/tell loop finds the best learning rate of full-batch GD on MSE for a linear model,
    which is computable: from zero, theta_T = (I - (I - lr H)^T) theta_ls with H = (2/n) A'A the
    Hessian of the training rows; its validation RMSE over a fine grid of lr gives the best lr;
    a search ends with exactly `trials` trials, a space with fewer settings with those it holds;
    a search killed (kill -9, SIGTERM) mid-way and rerun ends with the same trials as one that
    was never stopped: one run per trial, every trial told once;
    bad options are one line and exit status 2 before anything runs.
"""
from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import harness, spec

from harness import schema as S

PROBLEM = ["dataset=linear", "dataset.correlation=0.9", "dataset.noise=0.3", "loss=mse", "optimizer=gd",
           "train.steps=25", "seed=0", "dataset.val_size=0.2"]


def _best_lr(overrides: list[str]) -> tuple[float, float, float]:
    """(best lr, its validation RMSE in the scaled target's units, the GD stability edge 2/lambda_max)
    of GD on MSE from zero for train.steps steps, in closed form over a fine log grid of lr."""
    from harness.data import load

    s = spec(*overrides)
    d = load(s.dataset, s.seed, s.outlier_tuple())
    steps = s.train["steps"]
    A = np.column_stack([np.ones(len(d.X_train)), d.X_train])
    H, g = 2 / len(A) * A.T @ A, 2 / len(A) * A.T @ d.y_train
    lam, V = np.linalg.eigh(H)
    theta = np.linalg.solve(H, g)
    Av = np.column_stack([np.ones(len(d.X_test)), d.X_test])

    def val(lr: float) -> float:
        t = V @ ((1 - (1 - lr * lam) ** steps) * (V.T @ theta))
        return float(np.sqrt(np.mean((Av @ t - d.y_test) ** 2)))

    lrs = np.exp(np.linspace(np.log(1e-3), np.log(2 / lam[-1]), 4000))
    vals = np.array([val(x) for x in lrs])
    return float(lrs[vals.argmin()]), float(vals.min()), float(2 / lam[-1])


def _kids(db: Path, experiment: str = "lossbench"):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{db}")
    e = c.get_experiment_by_name(experiment)
    every = c.search_runs([e.experiment_id], max_results=50000)
    return [r for r in every if r.data.tags.get(S.KIND_TAG) == S.KIND_RUN], \
           [r for r in every if r.data.tags.get(S.KIND_TAG) == S.KIND_SWEEP]


def _studies(db: Path) -> dict[str, dict[str, int]]:
    """{study name: {trial state: count}} of the Optuna storage."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    out = {}
    for s in optuna.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=s.study_name, storage=storage).get_trials(deepcopy=False)
        out[s.study_name] = {st: sum(t.state.name == st for t in trials) for st in ("COMPLETE", "FAIL", "RUNNING", "PRUNED")}
    return out


def test_the_search_finds_the_computable_best_lr_of_gd_on_mse(tmp_path):
    best, _, edge = _best_lr(PROBLEM)
    assert 0.5 * edge < best < edge   # a sharp optimum inside the range, not at its end
    p = harness("-m", *PROBLEM, "optimizer.lr=tag(log,interval(0.005,0.2))", "hydra.sweeper.search=optuna",
                "hydra.sweeper.trials=16", "hydra.sweeper.round=4", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                cwd=tmp_path)
    assert p.stderr.count("search round") == 4, p.stderr
    kids, parents = _kids(tmp_path / "mlflow.db")
    assert len(kids) == 16 and len(parents) == 1
    assert sorted(int(k.data.tags[S.TRIAL_TAG]) for k in kids) == list(range(16))
    assert all(k.data.tags[S.PHASE_TAG] == "search" and "test/rmse" in k.data.metrics for k in kids)
    scored = [k for k in kids if math.isfinite(k.data.metrics.get("val/rmse", math.nan))]
    found = min(scored, key=lambda k: k.data.metrics["val/rmse"])
    lr = float(found.data.params["optimizer.lr"])
    # within 15% of the best lr; at 0.7x the best the validation RMSE is ~20% worse (the test's teeth)
    assert abs(math.log(lr / best)) < math.log(1.15), (lr, best, edge)
    # the search's numbers are the engine's: the run at the found lr scores what the closed form says
    ys = float(found.data.metrics["val/rmse"])
    closed = _closed_val(PROBLEM, lr)
    assert ys == pytest.approx(closed, rel=2e-3), (ys, closed)
    # the studies live beside the store, one per group, every counted trial complete
    st = _studies(tmp_path / "optuna.db")
    assert len(st) == 1 and next(iter(st.values()))["COMPLETE"] == 16


def _closed_val(overrides: list[str], lr: float) -> float:
    """The validation RMSE at `lr` in the target's own units (the engine reports unscaled RMSE)."""
    from harness.data import load

    s = spec(*overrides)
    d = load(s.dataset, s.seed, s.outlier_tuple())
    A = np.column_stack([np.ones(len(d.X_train)), d.X_train])
    H, g = 2 / len(A) * A.T @ A, 2 / len(A) * A.T @ d.y_train
    lam, V = np.linalg.eigh(H)
    t = V @ ((1 - (1 - lr * lam) ** s.train["steps"]) * (V.T @ np.linalg.solve(H, g)))
    Av = np.column_stack([np.ones(len(d.X_test)), d.X_test])
    return float(np.sqrt(np.mean((Av @ t - d.y_test) ** 2)) * d.y_scale)


def test_trial_counts_per_loss_and_a_space_smaller_than_trials(tmp_path):
    p = harness("-m", "loss=mse,huber", "dataset=linear", "dataset.n_train=200", "train.steps=10", "seed=0,1",
                "optimizer.lr=tag(log,interval(0.01,0.5))", "regularization.kind=l2", "regularization.weight=0,0.01",
                "hydra.sweeper.search=optuna", "hydra.sweeper.trials=7", "hydra.sweeper.round=3",
                "hydra.sweeper.sampler=random", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    kids, _ = _kids(tmp_path / "mlflow.db")
    assert len(kids) == 2 * 7 * 2   # 2 losses (a study each) x 7 trials x 2 seeds
    per = {}
    for k in kids:
        per.setdefault(k.data.tags[S.SEARCH_TAG], set()).add(k.data.tags[S.TRIAL_TAG])
    assert {s: len(t) for s, t in per.items()} == {"loss=mse": 7, "loss=huber": 7}
    assert "note: dataset.val_size=0.2" in p.stderr
    # a categorical space of 3 settings: 3 trials however many are asked for
    tmp2 = tmp_path / "small"
    tmp2.mkdir()
    p = harness("-m", "loss=mse", "dataset=linear", "dataset.n_train=200", "train.steps=5",
                "optimizer.lr=0.01,0.1,0.3", "hydra.sweeper.search=optuna", "hydra.sweeper.trials=10",
                f"tracking.uri=sqlite:///{tmp2}/mlflow.db", cwd=tmp2)
    kids, parents = _kids(tmp2 / "mlflow.db")
    assert sorted(float(k.data.params["optimizer.lr"]) for k in kids) == [0.01, 0.1, 0.3]
    assert parents[0].info.status == "FINISHED" and "3 trials" in p.stderr


SEARCH = ["-m", "loss=mse,huber", "dataset=linear", "train.steps=200", "seed=0,1",
          "optimizer.lr=tag(log,interval(0.005,0.5))", "hydra.sweeper.search=optuna", "hydra.sweeper.trials=12",
          "hydra.sweeper.round=2", "hydra.launcher.progress=false"]
N_RUNS = 2 * 12 * 2


def _start(tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness", *SEARCH, "tracking.uri=sqlite:///mlflow.db"], cwd=tmp,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _recorded(tmp: Path) -> int:
    db = tmp / "mlflow.db"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from runs r join tags t on t.run_uuid = r.run_uuid where t.key = ? "
                               "and r.status = 'FINISHED' and r.lifecycle_stage = 'active'", (S.PARENT_TAG,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _check_whole(tmp: Path) -> None:
    kids, parents = _kids(tmp / "mlflow.db")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics[S.SWEEP_RUNS] == N_RUNS
    assert len(kids) == N_RUNS and len({k.data.tags[S.HASH_TAG] for k in kids}) == N_RUNS
    assert all(k.info.status == "FINISHED" and S.TRIAL_TAG in k.data.tags for k in kids)
    per = {}
    for k in kids:
        per.setdefault(k.data.tags[S.SEARCH_TAG], set()).add(k.data.tags[S.TRIAL_TAG])
    assert {s: len(t) for s, t in per.items()} == {"loss=mse": 12, "loss=huber": 12}
    studies = _studies(tmp / "optuna.db")
    assert len(studies) == 2 and all(s["COMPLETE"] == 12 and s["RUNNING"] == 0 for s in studies.values()), studies


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_search_rerun_ends_with_the_trials_of_an_uninterrupted_one(tmp_path, sig):
    whole = tmp_path / "whole"
    whole.mkdir()
    p = _start(whole)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    _check_whole(whole)
    cut = tmp_path / "cut"
    cut.mkdir()
    kills = 0
    for _ in range(3):   # killed after its first runs are written, mid-search, more than once
        before = _recorded(cut)
        p = _start(cut)
        t0 = time.time()
        while time.time() - t0 < 300 and p.poll() is None and _recorded(cut) <= before:
            time.sleep(0.05)
        time.sleep(0.3)
        if p.poll() is not None:
            break
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        kills += 1
        if sig == signal.SIGTERM:
            assert p.returncode != 0 and "interrupted" in err, err
        assert 0 < _recorded(cut) < N_RUNS
    assert kills >= 2
    p = _start(cut)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert "resumed" in err
    _check_whole(cut)


@pytest.mark.parametrize("args, line", [
    (["hydra.sweeper.search=bayes"], "error: hydra.sweeper.search='bayes': grid or optuna"),
    (["hydra.sweeper.search=optuna", "hydra.sweeper.sampler=cma"], "error: hydra.sweeper.sampler='cma': tpe or random"),
    (["hydra.sweeper.search=optuna", "hydra.sweeper.trials=0"], "error: hydra.sweeper.trials=0: an integer >= 1"),
    (["hydra.sweeper.trials=5"], "error: hydra.sweeper.trials=5: only with hydra.sweeper.search=optuna"),
    ([], "error: optimizer.lr='tag(log,interval(0.01,1))': a comma list of values; a range is searched with "
         "hydra.sweeper.search=optuna"),
    (["hydra.sweeper.search=optuna", "hydra.sweeper.metric=test/rmse"], "error: hydra.sweeper.metric='test/rmse': "
                                                                       "a validation metric"),
    (["hydra.sweeper.search=optuna", "loss=choice(mse,mae)"], "error: loss='choice(mse,mae)': a comma list under "
                                                             "hydra.sweeper.search=optuna"),
])
def test_bad_search_options_are_one_line_and_status_2_before_anything_runs(tmp_path, args, line):
    p = harness("-m", "optimizer.lr=tag(log,interval(0.01,1))", *args, f"tracking.uri=sqlite:///{tmp_path}/m.db",
                cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(line), p.stderr
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "optuna.db").exists()


def test_a_tuned_study_searches_its_first_phase(tmp_path):
    """study.tune.search: optuna: phase 1 is the search of tune.grid's range (trials on the
    validation split, no test metric), phase 2 trains each loss's best trial at the final seeds."""
    import pandas as pd

    from harness.protocol import choose

    study = ('study={name:tiny,protocol:tuned,tune:{search:optuna,trials:4,round:2,'
             'grid:{optimizer.lr:"tag(log,interval(0.01,1))"},final_seeds:"10,11,12,13,14"}}')
    p = harness("-m", "loss=mse,mae", "optimizer.lr=0.1", "train.steps=40", study, "hydra.sweeper.report=true",
                f"tracking.uri=sqlite:///{tmp_path}/m.db", cwd=tmp_path)
    kids, parents = _kids(tmp_path / "m.db")
    tune = [k for k in kids if k.data.tags[S.PHASE_TAG] == "tune"]
    final = [k for k in kids if k.data.tags[S.PHASE_TAG] == "final"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(tune) == 2 * 4 * 2 and len(final) == 2 * 5, p.stderr
    assert all(S.TRIAL_TAG in k.data.tags and not any(m.startswith("test/") for m in k.data.metrics) for k in tune)
    for loss in ("mse", "mae"):   # searched, 4 settings a loss, not the study's 0.1
        lrs = {k.data.params["optimizer.lr"] for k in tune if k.data.params["loss.name"] == loss}
        assert len(lrs) == 4 and "0.1" not in lrs
    table = pd.DataFrame([{"loss.name": k.data.params["loss.name"], "optimizer.lr": k.data.params["optimizer.lr"],
                           "seed": k.data.params["seed"], "val/rmse": k.data.metrics.get("val/rmse", math.nan),
                           "status": k.data.tags[S.STATUS_TAG]} for k in tune])
    want = choose(table, ["optimizer.lr"], "val/rmse", higher=False)
    got = {(k.data.params["loss.name"], k.data.params["optimizer.lr"]) for k in final}
    assert got == set(zip(want["loss.name"], want["optimizer.lr"]))
    report = next((tmp_path / "reports" / "lossbench").iterdir())
    assert (report / "search_progress.png").exists() and "search_progress.png" in (report / "report.md").read_text()
