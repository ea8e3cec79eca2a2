"""The MlflowClient path: the experiment, sweeps' parent runs (on every store), runs on stores
that are not SQL databases (an http:// tracking server, Databricks) with the fewest calls per run
(create, one log_batch per 1000 values, log_inputs, log_text, terminate), and the Parquet curve
files (artifacts, on every store)."""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from harness import schema as S
from harness.tracking.records import sweep_tags

if TYPE_CHECKING:
    import pandas as pd


def open_experiment(client, name: str):
    """The experiment of that name, created when missing, tagged so that MLflow 3's UI opens it
    on its training runs (not on the GenAI view an untagged experiment gets). Any number of
    processes may open the same new experiment at once: each reads it by name, creates it when
    absent, and on a failed create (another process created it, or the store was busy) reads
    it again; a busy store is retried with backoff (store.retrying)."""
    from harness.tracking.store import retrying

    def attempt():
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                client.create_experiment(name, tags={S.EXPERIMENT_KIND_TAG: S.EXPERIMENT_KIND})
            except Exception as e:  # noqa: BLE001 - created by a concurrent process, or busy: read again
                failed = e
            else:
                failed = None
            exp = client.get_experiment_by_name(name)
            if exp is None:   # neither ours nor another's: the create's error, retried when transient
                raise failed or RuntimeError(f"experiment {name!r} not found after creating it")
        if S.EXPERIMENT_KIND_TAG not in exp.tags:   # an experiment made before, or by someone else
            client.set_experiment_tag(exp.experiment_id, S.EXPERIMENT_KIND_TAG, S.EXPERIMENT_KIND)
        return exp

    return retrying(attempt, client.tracking_uri, f"opening experiment {name!r}")


def describe(client, run_id: str, markdown: str) -> None:
    """The run's description on its MLflow page (the tag mlflow.note.content)."""
    client.set_tag(run_id, S.NOTE_TAG, markdown[:60000])


def start_sweep(client, experiment_id: str, sweep_id: str, params: dict[str, str], tags: dict[str, str],
                artifacts: dict[str, str]) -> str:
    """Creates the sweep's parent run; returns its id."""
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=S.sweep_run_name(sweep_id), tags=sweep_tags(sweep_id, tags))
    rid = run.info.run_id
    items = [Param(k, v[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(rid, params=items[i:i + 100])
    for name, text in artifacts.items():
        client.log_text(rid, text, name)
    return rid


def end_sweep(client, parent_id: str, status: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(parent_id, status)


def write_run(client, experiment_id: str, rec: dict[str, Any]) -> None:
    """Writes one record (records.build_record); sets rec["run_id"] to the id the store gave it."""
    from mlflow.entities import DatasetInput, InputTag, Metric, Param
    from mlflow.entities import Dataset as DatasetEntity

    c = client
    run = c.create_run(experiment_id, start_time=rec["start"], tags=rec["tags"], run_name=rec["name"])
    rid = rec["run_id"] = run.info.run_id
    params = [Param(k, v[:6000]) for k, v in rec["params"].items()]
    metrics = [Metric(k, v, rec["end"], s) for k, v, s in rec["points"]]
    for i in range(0, max(len(params), 1), 100):
        c.log_batch(rid, params=params[i:i + 100], metrics=metrics[:900] if i == 0 else [])
    for i in range(900, len(metrics), 1000):
        c.log_batch(rid, metrics=metrics[i:i + 1000])
    inputs = [DatasetInput(DatasetEntity(d.name, d.digest, d.source_type, d.source, d.schema, d.profile),
                           [InputTag(S.DATA_CONTEXT_TAG, ctx)]) for d, ctx in rec["datasets"]]
    if inputs:
        c.log_inputs(rid, datasets=inputs)
    for name, text in rec["files"].items():
        c.log_text(rid, text, name)
    c.set_terminated(rid, "FINISHED", end_time=rec["end"])


def log_curves(client, owner: str, path: str, table: "pd.DataFrame") -> None:
    """Writes a curve table (records.curve_table) as the Parquet artifact `path` of run `owner`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        table.to_parquet(local, index=False)
        client.log_artifact(owner, local, os.path.dirname(path))
