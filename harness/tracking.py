"""The one MLflow writer. Nothing else in lossbench writes to MLflow.

A sweep is one parent run with one child run per job. Every child gets:
  params    the normalized config, flattened (`optimizer.lr`, `loss.delta`, ...)
  tags      lossbench.status (converged | diverged), lossbench.sweep_id, lossbench.config_hash,
            lossbench.task (the data's), lossbench.eval (the metric family: the task, or
            embedding), lossbench.device, mlflow.parentRunId, mlflow.runName
  metrics   curves (train/loss every log_every steps; train/objective, train/grad_norm, test/*
            and param_error every eval_every steps) and final values (the point at the last step)
  inputs    its training and test data through MLflow's dataset records (log_input)
  artifact  config.yaml, the resolved config

Curves, two ways (tracking.curves):
  * metrics (default): every point is an MLflow metric value, drawn by the MLflow UI.
  * parquet: for sweeps of tens of thousands of runs. Each run keeps its params, tags and final
    metrics as MLflow records (search_runs finds and filters it as usual), and its curves go into
    one Parquet file per stack, an artifact of the sweep's parent run (long format: run_id,
    metric, step, value), named by the run's tag lossbench.curves. Every number is kept; the cost
    is that the MLflow UI draws no per-step chart, and a curve is read from that file
    (harness.report.load.curves reads both kinds) instead of get_metric_history. It writes ~40 rows a run instead of
    ~500: the SQLite store stays small and writing keeps up with a GPU.

Two ways to write, same records:
  * SQL stores (the default `sqlite:///mlflow.db`, PostgreSQL, MySQL): rows go into MLflow's own
    tables (its SQLAlchemy models) in one transaction per batch of runs. MLflow's public client
    costs ~50-70 ms per run here (a session and a commit per call); this costs well under 1 ms.
    SQLite runs in WAL mode with synchronous=NORMAL: a killed process loses nothing committed.
  * anything else (an `http://` tracking server, Databricks): MLflow's client, with the fewest
    calls per run (create, one log_batch per 1000 values, log_inputs, log_text, terminate).
"""
from __future__ import annotations

import getpass
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from harness.engine import RunResult

STATUS_TAG = "lossbench.status"
SWEEP_TAG = "lossbench.sweep_id"
HASH_TAG = "lossbench.config_hash"
KIND_TAG = "lossbench.kind"   # "sweep" on parents, "run" on runs
CURVES_TAG = "lossbench.curves"  # tracking.curves=parquet: where the run's curves are
PARENT_TAG = "mlflow.parentRunId"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = "null" if v is None else str(v)
    return out


def run_params(config: dict[str, Any]) -> dict[str, str]:
    """Params of a run: its normalized config without where it is tracked and the study notes."""
    return flatten({k: v for k, v in config.items() if k not in ("tracking", "study")})


def run_name(result: "RunResult") -> str:
    s = result.spec
    if s.overrides:
        name = ",".join(o for o in s.overrides if not o.startswith(("tracking.", "hydra")))
    else:
        name = f"{s.loss['name']}-{s.dataset['name']}-seed{s.seed}"
    return name[:250] or s.loss["name"]


def config_yaml(config: dict[str, Any]) -> str:
    import yaml

    return yaml.dump(config, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


@dataclass
class DatasetRecord:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None
    profile: str | None


def dataset_records(result: "RunResult") -> list[tuple[DatasetRecord, str]]:
    """MLflow dataset entities for the run's train and test splits (context tag value)."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource

    d = result.data
    if d is None:
        return []
    out = []
    for split, X, y in (("train", d.X_train, d.y_train), ("test", d.X_test, d.y_test)):
        src = CodeDatasetSource({"lossbench.dataset": d.name, "source": d.source})
        ds = mlflow.data.from_numpy(X, targets=y, source=src, name=f"{d.name}-{split}", digest=f"{d.digest}{split[:2]}")
        e = ds._to_mlflow_entity()
        out.append((DatasetRecord(e.name, e.digest, e.source_type, e.source, e.schema, e.profile), split))
    return out


class Tracker:
    """Writes sweeps and runs into one MLflow experiment."""

    def __init__(self, uri: str, experiment: str):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        self.uri, self.experiment_name = uri, experiment
        if uri.startswith("sqlite:///"):
            _sqlite_wal(uri)
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            try:
                self.client.create_experiment(experiment)
            except Exception:  # created by a concurrent process in the meantime
                pass
            exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id
        self.artifact_location = exp.artifact_location
        store = self.client._tracking_client.store
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self._sql = store if isinstance(store, SqlAlchemyStore) else None
        self._dataset_cache: dict[str, list] = {}

    @property
    def bulk(self) -> bool:
        return self._sql is not None

    # -- sweeps ---------------------------------------------------------------------------
    def start_sweep(self, sweep_id: str, params: dict[str, str], tags: dict[str, str],
                    artifacts: dict[str, str]) -> str:
        from mlflow.entities import Param

        all_tags = {SWEEP_TAG: sweep_id, KIND_TAG: "sweep", "mlflow.user": _user(),
                    "mlflow.source.name": _command(), "mlflow.source.type": "LOCAL", **tags}
        run = self.client.create_run(self.experiment_id, run_name=f"sweep {sweep_id}",
                                     tags=all_tags)
        rid = run.info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(rid, params=items[i:i + 100])
        for name, text in artifacts.items():
            self.client.log_text(rid, text, name)
        return rid

    def end_sweep(self, parent_id: str, status: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(parent_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(parent_id, status)

    def log_artifact_dir(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, local_dir, artifact_path)

    # -- runs -----------------------------------------------------------------------------
    def write(self, results: Sequence["RunResult"], parent_id: str | None, sweep_id: str) -> list[str]:
        """Writes finished runs; returns their MLflow run ids, in order."""
        if not results:
            return []
        in_metrics = results[0].spec.tracking.get("curves", "metrics") == "metrics"
        records = [self._record(r, parent_id, sweep_id, in_metrics) for r in results]
        curves_file = None
        if not in_metrics:
            owner = parent_id or records[0]["run_id"]
            curves_file = f"curves/{uuid.uuid4().hex[:12]}.parquet"
            for rec in records:
                rec["tags"][CURVES_TAG] = f"runs:/{owner}/{curves_file}"
        if self._sql is not None:
            self._write_sql(records)
        else:
            for rec in records:
                self._write_client(rec)
        if curves_file is not None:
            self._write_curves(results, records, owner, curves_file)
        return [rec["run_id"] for rec in records]

    def _write_curves(self, results, records, owner: str, path: str) -> None:
        """One Parquet file of the stack's curves, long format (run_id, metric, step, value),
        built from whole arrays (a DataFrame per curve took minutes at 18,000 runs)."""
        import tempfile

        import numpy as np
        import pandas as pd

        names = sorted({n for r in results for n in r.curves})
        code = {n: i for i, n in enumerate(names)}
        run_codes, metric_codes, steps, values = [], [], [], []
        for i, r in enumerate(results):
            for name, (st, vals) in r.curves.items():
                run_codes.append(np.full(len(st), i, dtype=np.int32))
                metric_codes.append(np.full(len(st), code[name], dtype=np.int16))
                steps.append(np.asarray(st, dtype=np.int32))
                values.append(np.asarray(vals, dtype=np.float64))
        df = pd.DataFrame({
            "run_id": pd.Categorical.from_codes(np.concatenate(run_codes), [rec["run_id"] for rec in records]),
            "metric": pd.Categorical.from_codes(np.concatenate(metric_codes), names),
            "step": np.concatenate(steps), "value": np.concatenate(values)})
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, os.path.basename(path))
            df.to_parquet(local, index=False)
            self.client.log_artifact(owner, local, os.path.dirname(path))

    def _datasets(self, result: "RunResult") -> list:
        d = result.data
        if d is None:
            return []
        if d.digest not in self._dataset_cache:
            self._dataset_cache[d.digest] = dataset_records(result)
        return self._dataset_cache[d.digest]

    def _record(self, r: "RunResult", parent_id: str | None, sweep_id: str, in_metrics: bool = True) -> dict[str, Any]:
        config = r.spec.config()
        tags = {"mlflow.runName": run_name(r), STATUS_TAG: r.status, SWEEP_TAG: sweep_id,
                HASH_TAG: r.spec.config_hash, KIND_TAG: "run", "lossbench.task": r.spec.task,
                "lossbench.eval": r.spec.eval_family,
                "lossbench.device": r.device, "mlflow.user": _user(), "mlflow.source.name": _command(),
                "mlflow.source.type": "LOCAL"}
        if r.diverged_step is not None:
            tags["lossbench.diverged_step"] = str(r.diverged_step)
        if parent_id:
            tags[PARENT_TAG] = parent_id
        steps = r.spec.train["steps"]
        points: list[tuple[str, float, int]] = []
        if in_metrics:
            for name, (st, vals) in r.curves.items():
                points.extend(zip([name] * len(st), vals.tolist(), st.tolist()))
        for name, v in r.final.items():  # a final value the curve does not end on (diverged, final-only)
            st, vals = r.curves.get(name, ((), ())) if in_metrics else ((), ())
            if len(st) == 0 or st[-1] != steps or not _same(vals[-1], v):
                points.append((name, v, steps))
        end = int(time.time() * 1000)
        return dict(run_id=uuid.uuid4().hex, name=tags["mlflow.runName"], tags=tags,
                    params=run_params(config), points=points, config=config,
                    start=end - int(r.seconds * 1000), end=end, datasets=self._datasets(r))

    def _write_client(self, rec: dict[str, Any]) -> None:
        from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
        from mlflow.entities import Dataset as DatasetEntity

        c = self.client
        run = c.create_run(self.experiment_id, start_time=rec["start"], tags=rec["tags"], run_name=rec["name"])
        rid = rec["run_id"] = run.info.run_id
        params = [Param(k, v[:6000]) for k, v in rec["params"].items()]
        metrics = [Metric(k, v, rec["end"], s) for k, v, s in rec["points"]]
        for i in range(0, max(len(params), 1), 100):
            c.log_batch(rid, params=params[i:i + 100], metrics=metrics[:900] if i == 0 else [])
        for i in range(900, len(metrics), 1000):
            c.log_batch(rid, metrics=metrics[i:i + 1000])
        inputs = [DatasetInput(DatasetEntity(d.name, d.digest, d.source_type, d.source, d.schema, d.profile),
                               [InputTag("mlflow.data.context", ctx)]) for d, ctx in rec["datasets"]]
        if inputs:
            c.log_inputs(rid, datasets=inputs)
        c.log_text(rid, config_yaml(rec["config"]), "config.yaml")
        c.set_terminated(rid, "FINISHED", end_time=rec["end"])

    def _write_sql(self, records: list[dict[str, Any]]) -> None:
        from mlflow.store.tracking.dbmodels.models import (SqlDataset, SqlInput, SqlInputTag,
                                                           SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag)
        from sqlalchemy import select

        store, eid = self._sql, int(self.experiment_id)
        user, root = _user(), self.artifact_location.rstrip("/")
        runs, tags, params, metrics, latest, inputs, input_tags = [], [], [], [], [], [], []
        datasets: dict[tuple[str, str], DatasetRecord] = {}
        for rec in records:
            rid, ts = rec["run_id"], rec["end"]
            runs.append(dict(run_uuid=rid, name=rec["name"], source_type="LOCAL", source_name="", entry_point_name="",
                             user_id=user, status="FINISHED", start_time=rec["start"], end_time=ts,
                             source_version="", lifecycle_stage="active",
                             artifact_uri=f"{root}/{rid}/artifacts", experiment_id=eid))
            tags += [(k, v, rid) for k, v in rec["tags"].items()]
            params += [(k, v[:8000], rid) for k, v in rec["params"].items()]
            last: dict[str, tuple] = {}
            for key, value, step in rec["points"]:
                nan, value = _sanitize(value)
                metrics.append((key, value, ts, step, nan, rid))
                if key not in last or step >= last[key][1]:
                    last[key] = (value, step, nan)
            latest += [(k, v, ts, st, nan, rid) for k, (v, st, nan) in last.items()]
            for d, ctx in rec["datasets"]:
                datasets[(d.name, d.digest)] = d
                iid = uuid.uuid4().hex
                inputs.append([iid, "DATASET", (d.name, d.digest), "RUN", rid])
                input_tags.append((iid, "mlflow.data.context", ctx))
        with store.ManagedSessionMaker() as session:
            raw = None
            if store.db_type == "sqlite":
                # WAL (set on the file) + NORMAL: a commit survives a killed process, only a power
                # cut can lose the last ones; a larger page cache: ~10% faster index updates
                session.execute(_text("PRAGMA synchronous=NORMAL"))
                session.execute(_text("PRAGMA cache_size=-65536"))
                raw = session.connection().connection.driver_connection
            known: dict[tuple[str, str], str] = {}
            if datasets:
                rows = session.execute(select(SqlDataset.name, SqlDataset.digest, SqlDataset.dataset_uuid).where(
                    SqlDataset.experiment_id == eid, SqlDataset.digest.in_([k[1] for k in datasets]))).all()
                known = {(n, dg): u for n, dg, u in rows}
                new = [dict(dataset_uuid=uuid.uuid4().hex, experiment_id=eid, name=d.name, digest=d.digest,
                            dataset_source_type=d.source_type, dataset_source=d.source, dataset_schema=d.schema,
                            dataset_profile=d.profile) for k, d in datasets.items() if k not in known]
                known.update({(r["name"], r["digest"]): r["dataset_uuid"] for r in new})
                _insert(session, SqlDataset, new)
            for row in inputs:
                row[2] = known[row[2]]
            _insert(session, SqlRun, runs)
            _bulk(session, raw, SqlTag, ("key", "value", "run_uuid"), tags)
            _bulk(session, raw, SqlParam, ("key", "value", "run_uuid"), params)
            cols = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
            _bulk(session, raw, SqlMetric, cols, metrics)
            _bulk(session, raw, SqlLatestMetric, cols, latest)
            _bulk(session, raw, SqlInput, ("input_uuid", "source_type", "source_id", "destination_type", "destination_id"),
                  [tuple(r) for r in inputs])
            _bulk(session, raw, SqlInputTag, ("input_uuid", "name", "value"), input_tags)
        self._write_artifacts(records)

    def _write_artifacts(self, records: list[dict[str, Any]]) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        for rec in records:
            uri = f"{self.artifact_location.rstrip('/')}/{rec['run_id']}/artifacts"
            repo = get_artifact_repository(uri)
            text = config_yaml(rec["config"])
            if isinstance(repo, LocalArtifactRepository):
                os.makedirs(repo.artifact_dir, exist_ok=True)
                with open(os.path.join(repo.artifact_dir, "config.yaml"), "w") as f:
                    f.write(text)
            else:
                self.client.log_text(rec["run_id"], text, "config.yaml")


def _bulk(session, raw, model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Inserts rows (tuples in `columns` order) in the session's transaction: through the
    sqlite3 driver's executemany when there is one (~1 us a row, against ~15 us through
    SQLAlchemy's per-row parameter processing), else through SQLAlchemy Core."""
    if not rows:
        return
    if raw is not None:
        sql = f"INSERT INTO {model.__tablename__} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        raw.executemany(sql, rows)
    else:
        _insert(session, model, [dict(zip(columns, r)) for r in rows])


def _insert(session, model, rows: list[dict]) -> None:
    from sqlalchemy import insert

    for i in range(0, len(rows), 20000):
        if rows[i:i + 20000]:
            session.execute(insert(model.__table__), rows[i:i + 20000])


def _text(sql: str):
    from sqlalchemy import text

    return text(sql)


def _sanitize(v: float) -> tuple[bool, float]:
    """As MLflow stores values: NaN as (is_nan, 0), +-inf as +-max float."""
    if v != v:
        return True, 0.0
    if v in (float("inf"), float("-inf")):
        return False, 1.7976931348623157e308 if v > 0 else -1.7976931348623157e308
    return False, float(v)


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or a == b


def _sqlite_wal(uri: str) -> None:
    """Switches an SQLite store to WAL (persistent in the file): commits stop forcing a journal
    rewrite, readers (mlflow ui, reports) never block the writer."""
    import sqlite3

    path = uri[len("sqlite:///"):]
    if not path or path == ":memory:":
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _command() -> str:
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:500]

