"""harness.tracking's two write paths, the bulk SQL one and MLflow's client, write the same
records: the same RunResults through each, into two experiments of one store (SQLite, and a real
PostgreSQL server: tests/pgserver.py), read back with MlflowClient and compared field by field
(all but ids and times)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from conftest import spec
from harness import schema as S
from harness.engine import train
from harness.tracking import Tracker

RUNS = [("loss=mse",), ("loss=huber", "outliers.ratio=0.2"), ("loss=mse", "optimizer.lr=50")]  # the last diverges
SWEEP_ID = "test-sweep"
MODES = ("metrics", "parquet")


@pytest.fixture(scope="module")
def results():
    """Tiny real runs per tracking.curves mode, and a copy of one with what training does not
    produce here: +-inf values and a final value without a curve."""
    out = {}
    for mode in MODES:
        rs = [r for o in RUNS for r in train([spec(*o, "train.steps=5", f"tracking.curves={mode}")])]
        st, vals = rs[0].curves["train/loss"]
        vals = vals.copy()
        vals[1], vals[2] = np.inf, -np.inf
        odd = dataclasses.replace(rs[0], curves={**rs[0].curves, "train/loss": (st, vals)},
                                  final={**rs[0].final, "test/final_only": 0.5})
        out[mode] = rs + [odd]
    return out


def _write(uri: str, experiment: str, results, bulk: bool):
    t = Tracker(uri, experiment)
    assert t.bulk  # an SQL store: bulk=False forces the client path on it
    parent = t.start_sweep(SWEEP_ID, {S.N_RUNS_PARAM: str(len(results))}, {}, {})
    ids = t.write(results, parent, SWEEP_ID, bulk=bulk)
    t.end_sweep(parent, "FINISHED", {S.SWEEP_STATUS_TAG: "finished"}, {S.SWEEP_RUNS: len(ids)})
    return t.client, parent, ids


def _num(v):
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def _read(c: MlflowClient, parent: str, rid: str, tmp) -> dict:
    """Everything MlflowClient reads back of a run, less what differs by nature (ids, times)."""
    run = c.get_run(rid)
    d = run.to_dictionary()
    info = {k: v for k, v in d["info"].items()
            if k not in ("run_id", "run_uuid", "experiment_id", "artifact_uri", "start_time", "end_time")}
    end = run.info.end_time
    info["duration"] = end - run.info.start_time  # the run's training seconds
    tags = dict(run.data.tags)
    assert tags.pop(S.PARENT_TAG) == parent
    curves = None
    if S.CURVES_TAG in tags:  # the run's curves, from the Parquet file on its parent
        src = tags.pop(S.CURVES_TAG)
        assert src.startswith(f"runs:/{parent}/{S.CURVES_DIR}/") and src.endswith(".parquet"), src
        df = pd.read_parquet(download_artifacts(artifact_uri=src, dst_path=str(tmp / rid), tracking_uri=c.tracking_uri))
        assert list(df.columns) == ["run_id", "metric", "step", "value"]
        part = df[df["run_id"].astype(str) == rid]
        curves = (sorted((str(m), int(s), _num(float(v))) for m, s, v in zip(part["metric"], part["step"], part["value"])),
                  {k: str(v) for k, v in df.dtypes.items()})
    histories = {k: [(m.step, _num(m.value), m.timestamp - end) for m in c.get_metric_history(rid, k)]
                 for k in run.data.metrics}
    inputs = sorted(json.dumps(x, sort_keys=True) for x in d.get("inputs", {}).get("dataset_inputs", []))
    artifacts = sorted((a.path, a.is_dir) for a in c.list_artifacts(rid))
    config = open(c.download_artifacts(rid, S.CONFIG_ARTIFACT, str(tmp))).read()
    return dict(info=info, params=dict(run.data.params), tags=tags, latest={k: _num(v) for k, v in run.data.metrics.items()},
                histories=histories, inputs=inputs, artifacts=artifacts, config=config, curves=curves)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("mode", MODES)
def test_bulk_and_client_paths_write_the_same_records(results, tmp_path, monkeypatch, mode, backend, request):
    monkeypatch.chdir(tmp_path)  # an SQL store's default artifact root is ./mlruns
    uri = f"sqlite:///{tmp_path}/mlflow.db" if backend == "sqlite" else request.getfixturevalue("postgres_store")
    rs = results[mode]
    written = {bulk: _write(uri, f"{mode}-{'bulk' if bulk else 'client'}", rs, bulk) for bulk in (True, False)}
    (cb, pb, ids_b), (cc, pc, ids_c) = written[True], written[False]
    assert len(ids_b) == len(ids_c) == len(rs) and not set(ids_b) & set(ids_c)
    for i, (r, rb, rc) in enumerate(zip(rs, ids_b, ids_c)):
        a, b = _read(cb, pb, rb, tmp_path / "b"), _read(cc, pc, rc, tmp_path / "c")
        assert a["tags"][S.HASH_TAG] == b["tags"][S.HASH_TAG] == r.spec.config_hash
        for key in a:
            assert a[key] == b[key], f"run {i} {r.spec.overrides}: {key} differs between the bulk and client paths"
        # the comparison has something to compare
        assert a["tags"][S.STATUS_TAG] == r.status and a["tags"][S.SWEEP_TAG] == SWEEP_ID
        assert a["params"]["loss.name"] == r.spec.loss["name"] and a["info"]["status"] == "FINISHED"
        assert len(a["inputs"]) == 2 and (S.CONFIG_ARTIFACT, False) in a["artifacts"]
        assert set(a["latest"]) == set(r.final)
        steps = r.spec.train["steps"]
        longest = max(len(h) for h in a["histories"].values())
        if mode == "metrics":
            assert a["curves"] is None and longest > 1
        else:
            assert a["curves"][0] and longest == 1
        if r.status == "diverged":
            assert r.diverged_step is not None and a["tags"][S.DIVERGED_STEP_TAG] == str(r.diverged_step)
            assert any(v == "nan" for v in a["latest"].values())
            assert all(h[-1][0] == steps for h in a["histories"].values())  # the NaN finals, at the last step
    assert sorted(r.status for r in rs) == ["converged", "converged", "converged", "diverged"]



def test_a_store_of_an_untested_schema_revision_is_written_through_the_client(tmp_path, capfd):
    """The bulk writer writes MLflow's tables directly: on a schema it was not tested with it
    steps aside (one line) and MLflow's client writes the runs."""
    import sqlite3

    from harness.tracking import Tracker
    from harness.tracking import sql as Q

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert Tracker(uri, "e").bulk                      # MLflow 3.17's revision: the bulk path
    assert Q.revision(Q.store_of(Tracker(uri, "e").client)) in Q.TESTED_REVISIONS
    con = sqlite3.connect(tmp_path / "mlflow.db")
    con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")   # as a newer MLflow would leave it
    con.commit()
    con.close()
    capfd.readouterr()
    from mlflow.tracking import MlflowClient

    # MLflow 3.17 itself refuses a store whose revision is not its head; a newer MLflow opens its
    # own: stand in for that one by opening the store without MLflow's head check
    assert Q.store_of(_client_skipping_check(MlflowClient, uri)) is None
    err = capfd.readouterr().err
    assert "schema revision ffffffffffff" in err and "through MLflow's client" in err and err.count("\n") == 1


def _client_skipping_check(MlflowClient, uri):
    from mlflow.store.db import utils as dbutils

    saved = dbutils._verify_schema
    dbutils._verify_schema = lambda engine: None
    try:
        return MlflowClient(uri)
    finally:
        dbutils._verify_schema = saved
