"""The bulk path, for SQL stores (SQLite, PostgreSQL, MySQL): records go straight into MLflow's
own tables (its SQLAlchemy models), one transaction per batch of runs, with the values MLflow's
store would write (NaN as is_nan, +-inf as +-max float, latest_metrics at the highest step).
A run's files (config.yaml, its task's artifacts) are written into the artifact folder when the
artifact store is local, else through the client. A transaction that collides with another
process's (several sweeps into one store) is tried again whole (store.retrying)."""
from __future__ import annotations

import os
import uuid
from typing import Any

from harness import schema as S
from harness.tracking.records import DatasetRecord, sanitize, user
from harness.tracking.store import retrying


# MLflow schema revisions (alembic_version.version_num) the bulk writer was tested on: it writes
# MLflow's tables directly, so a store of another revision (a newer MLflow that changed them)
# goes through MLflow's client instead. Add a revision here only with tests/test_tracking.py
# passing on it (it writes the same runs both ways and compares what the client reads back).
TESTED_REVISIONS = {
    "dc11669786a5": "MLflow 3.17",
}


def store_of(client):
    """The client's SqlAlchemyStore when the bulk path may write it: an SQL database whose schema
    revision is one of TESTED_REVISIONS (else one line says why it is not, and None)."""
    import sys

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = client._tracking_client.store
    if not isinstance(store, SqlAlchemyStore):
        return None
    rev = revision(store)
    if rev not in TESTED_REVISIONS:
        print(f"note: the MLflow store {store.db_uri.split('@')[-1]} has schema revision {rev}, which lossbench's bulk "
              f"writer was not tested on (tested: {', '.join(f'{r} ({v})' for r, v in TESTED_REVISIONS.items())}); "
              "writing through MLflow's client instead (slower, same records)", file=sys.stderr)
        return None
    return store


def revision(store) -> str | None:
    """The store's alembic revision (MLflow's schema version)."""
    with store.ManagedSessionMaker() as session:
        return session.execute(_text("SELECT version_num FROM alembic_version")).scalar()


def read_history(store, run_ids: list[str], key: str, chunk: int = 500) -> list[tuple[str, int, float]]:
    """(run_id, step, value) of every logged value of metric `key` for these runs, as MLflow's
    get_metric_history gives them (is_nan as NaN; ordered by run, timestamp, step, value), read
    in one SELECT of those columns per `chunk` runs (SQLite binds at most 999 parameters) rather
    than one call per run: ~20x faster for hundreds of runs."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from sqlalchemy import select

    m, out = SqlMetric, []
    with store.ManagedSessionMaker() as session:
        for i in range(0, len(run_ids), chunk):
            q = (select(m.run_uuid, m.step, m.value, m.is_nan)
                 .where(m.key == key, m.run_uuid.in_(run_ids[i:i + chunk]))
                 .order_by(m.run_uuid, m.timestamp, m.step, m.value))
            out += [(rid, int(step), float("nan") if nan else float(v)) for rid, step, v, nan in session.execute(q)]
    return out


def write(store, experiment_id: str, artifact_location: str, records: list[dict[str, Any]],
          files_at: str | None = None) -> None:
    """Writes the records (records.build_record) of a batch of runs in one transaction. The runs'
    artifact_uri is under artifact_location (the experiment's); their files go under files_at
    (default: the same), which differs on a tracking server that proxies its artifacts
    (server_app.py: mlflow-artifacts:/1 is the server's <artifacts-destination>/1).

    A kill at any instant leaves each run absent or complete: its files go into a local artifact
    folder before the transaction that creates the run (a kill in between leaves a folder no run
    points to, never a run without its config.yaml); a remote artifact store needs the run to
    exist first, so there the runs are created RUNNING, their files logged, then all marked
    FINISHED in a second transaction (a kill in between leaves RUNNING runs, which resume deletes
    and retrains)."""
    from mlflow.store.tracking.dbmodels.models import (SqlInput, SqlInputTag, SqlLatestMetric, SqlMetric, SqlParam,
                                                       SqlRun, SqlTag)

    eid = int(experiment_id)
    owner, root = user(), artifact_location.rstrip("/")
    files_at = files_at or artifact_location
    local = _local_artifacts(files_at.rstrip("/"))
    if local:
        _write_artifacts(files_at, records)
    runs, tags, params, metrics, latest, inputs, input_tags = [], [], [], [], [], [], []
    datasets: dict[tuple[str, str], DatasetRecord] = {}
    for rec in records:
        rid, ts = rec["run_id"], rec["end"]
        runs.append(dict(run_uuid=rid, name=rec["name"], source_type=S.SOURCE_TYPE, source_name="", entry_point_name="",
                         user_id=rec["tags"].get(S.USER_TAG, owner), status="FINISHED" if local else "RUNNING", start_time=rec["start"], end_time=ts,
                         source_version="", lifecycle_stage="active",
                         artifact_uri=f"{root}/{rid}/artifacts", experiment_id=eid))
        tags += [(k, v, rid) for k, v in rec["tags"].items()]
        params += [(k, v[:8000], rid) for k, v in rec["params"].items()]
        last: dict[str, tuple] = {}
        for key, value, step in rec["points"]:
            nan, value = sanitize(value)
            metrics.append((key, value, ts, step, nan, rid))
            if key not in last or step >= last[key][1]:
                last[key] = (value, step, nan)
        latest += [(k, v, ts, st, nan, rid) for k, (v, st, nan) in last.items()]
        for d, ctx in rec["datasets"]:
            datasets[(d.name, d.digest)] = d
            iid = uuid.uuid4().hex
            inputs.append([iid, "DATASET", (d.name, d.digest), "RUN", rid])
            input_tags.append((iid, S.DATA_CONTEXT_TAG, ctx))
    ids = [r["run_id"] for r in records]

    def transaction() -> None:
        with store.ManagedSessionMaker(read_only=False) as session:
            raw = None
            if store.db_type == "sqlite":
                # WAL (set on the file) + NORMAL: a commit survives a killed process, only a power
                # cut can lose the last ones; a larger page cache: ~10% faster index updates
                session.execute(_text("PRAGMA synchronous=NORMAL"))
                session.execute(_text("PRAGMA cache_size=-65536"))
                raw = session.connection().connection.driver_connection
            known = _datasets(session, eid, datasets)
            _insert(session, SqlRun, runs)
            _bulk(session, raw, SqlTag, ("key", "value", "run_uuid"), tags)
            _bulk(session, raw, SqlParam, ("key", "value", "run_uuid"), params)
            cols = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
            _bulk(session, raw, SqlMetric, cols, metrics)
            _bulk(session, raw, SqlLatestMetric, cols, latest)
            _bulk(session, raw, SqlInput, ("input_uuid", "source_type", "source_id", "destination_type", "destination_id"),
                  [(iid, kind, known[key], dest, rid) for iid, kind, key, dest, rid in inputs])
            _bulk(session, raw, SqlInputTag, ("input_uuid", "name", "value"), input_tags)

    # the whole transaction again on a conflict with another process; never twice: a failed try
    # whose commit took effect after all shows as its runs present (a transaction is atomic)
    retrying(transaction, store.db_uri, f"writing {len(ids)} runs", done=lambda: _present(store, ids[:1]))
    if not local:
        _write_artifacts(files_at, records)
        from sqlalchemy import update

        def finish() -> None:
            with store.ManagedSessionMaker(read_only=False) as session:
                session.execute(update(SqlRun).where(SqlRun.run_uuid.in_(ids)).values(status="FINISHED"))

        retrying(finish, store.db_uri, f"marking {len(ids)} runs FINISHED")


def _datasets(session, eid: int, datasets: dict[tuple[str, str], DatasetRecord]) -> dict[tuple[str, str], str]:
    """{(name, digest): dataset_uuid} of these datasets in the experiment, inserted when missing.
    Another process may insert the same rows at the same instant: the insert skips a row whose
    key (MLflow's primary key: experiment, name, digest) exists (ON CONFLICT DO NOTHING), and
    the uuids are read back after it, so every input points to the row that won. A dialect
    without that clause inserts plainly; a collision is then an IntegrityError, retried."""
    from mlflow.store.tracking.dbmodels.models import SqlDataset
    from sqlalchemy import insert, select

    if not datasets:
        return {}
    q = select(SqlDataset.name, SqlDataset.digest, SqlDataset.dataset_uuid).where(
        SqlDataset.experiment_id == eid, SqlDataset.digest.in_(sorted({k[1] for k in datasets})))
    known = {(n, dg): u for n, dg, u in session.execute(q)}
    new = [dict(dataset_uuid=uuid.uuid4().hex, experiment_id=eid, name=d.name, digest=d.digest,
                dataset_source_type=d.source_type, dataset_source=d.source, dataset_schema=d.schema,
                dataset_profile=d.profile) for k, d in datasets.items() if k not in known]
    if not new:
        return known
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        dialect_insert = None
    if dialect_insert is not None:
        session.execute(dialect_insert(SqlDataset.__table__).on_conflict_do_nothing(
            index_elements=["experiment_id", "name", "digest"]), new)
    elif dialect == "mysql":
        session.execute(insert(SqlDataset.__table__).prefix_with("IGNORE"), new)
    else:
        session.execute(insert(SqlDataset.__table__), new)
    known.update({(n, dg): u for n, dg, u in session.execute(q)})
    return known


def _present(store, run_ids: list[str]) -> bool:
    """Whether these runs are in the store."""
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from sqlalchemy import func, select

    with store.ManagedSessionMaker() as session:
        n = session.execute(select(func.count()).select_from(SqlRun).where(SqlRun.run_uuid.in_(run_ids))).scalar()
    return n == len(run_ids)


def _local_artifacts(root: str) -> bool:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    return isinstance(get_artifact_repository(root), LocalArtifactRepository)


def _write_artifacts(artifact_location: str, records: list[dict[str, Any]]) -> None:
    """Each record's files (artifact name -> text) into <artifact_location>/<run_id>/artifacts:
    written in place in a local folder, else through the location's artifact repository."""
    import posixpath

    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from harness.tracking.client import log_texts

    for rec in records:
        uri = f"{artifact_location.rstrip('/')}/{rec['run_id']}/artifacts"
        repo = get_artifact_repository(uri)
        if isinstance(repo, LocalArtifactRepository):
            for name, text in rec["files"].items():
                path = os.path.join(repo.artifact_dir, *posixpath.normpath(name).split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            continue
        log_texts(repo, rec["files"])


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


def sqlite_wal(uri: str) -> None:
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
