"""A team's tracking server: a real `mlflow server` on a real PostgreSQL backend store with an
artifact root, as the README's team guide starts it; several sweeps write to it at once (over
HTTP, and straight into the database through the bulk writer) and nothing is lost."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import schema as S
from mlflowserver import Server


@pytest.fixture(params=["app", "rest"])
def team_server(postgres_store, tmp_path, request):
    """`mlflow server [--app-name lossbench] --backend-store-uri postgresql://...
    --artifacts-destination DIR` on loopback: with lossbench's app (stacks in one request, as the
    README starts it), and plain (MLflow's REST calls)."""
    server = Server(tmp_path, backend=postgres_store, workers=2, app="lossbench" if request.param == "app" else None).start()
    yield server.uri, postgres_store, tmp_path / "artifacts"
    server.kill()


def _sweep(uri: str, experiment: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness", "-m", "loss=mse,mae", "seed=0,1,2", "train.steps=20",
                             f"tracking.uri={uri}", f"tracking.experiment={experiment}", f"hydra.sweep.dir={cwd}/{experiment}"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sweeps_over_http_and_into_the_database_at_once_all_land(team_server, tmp_path):
    url, database, artifacts = team_server
    MlflowClient(url).create_experiment("team")   # made through the server: its artifacts live there
    # three sweeps over HTTP (two into one experiment), two straight into PostgreSQL (the bulk
    # writer) into experiments of their own, all at once
    jobs = [(url, "team"), (url, "team"), (url, "team-b"), (database, "team-c"), (database, "team-d")]
    procs = [_sweep(uri, exp, tmp_path) for uri, exp in jobs]
    # straight into the database but into the server's experiment: refused before any work
    refused = _sweep(database, "team", tmp_path)
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 2 and err.strip().splitlines()[-1].startswith(f"error: tracking.uri={database!r}"), err[-2000:]
    assert "keeps its artifacts on a tracking server" in err
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    client = MlflowClient(url)   # everything read back through the server, as a teammate would
    for name, sweeps in {"team": 2, "team-b": 1, "team-c": 1, "team-d": 1}.items():
        exp = client.get_experiment_by_name(name)
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        parents = [r for r in runs if r.data.tags.get(S.KIND_TAG) == S.KIND_SWEEP]
        kids = [r for r in runs if r.data.tags.get(S.KIND_TAG) == S.KIND_RUN]
        assert len(parents) == sweeps and all(p.info.status == "FINISHED" for p in parents), name
        assert len(kids) == 6 * sweeps and all(k.info.status == "FINISHED" for k in kids), name
        for p in parents:
            mine = [k for k in kids if k.data.tags[S.PARENT_TAG] == p.info.run_id]
            assert len({k.data.tags[S.HASH_TAG] for k in mine}) == 6 and p.data.metrics[S.SWEEP_RUNS] == 6
        k = kids[0]
        assert len(client.get_metric_history(k.info.run_id, "train/loss")) == 21
        assert S.CONFIG_ARTIFACT in [a.path for a in client.list_artifacts(k.info.run_id)]
    # the HTTP sweeps' artifacts went to the server's artifact root
    assert any(artifacts.rglob(S.CONFIG_ARTIFACT))
