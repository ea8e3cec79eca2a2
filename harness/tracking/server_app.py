"""`mlflow server --app-name lossbench`: MLflow's tracking server, unchanged (its REST API, UI
and artifact proxy), plus one endpoint that takes a whole stack of runs in one request and
writes it with the bulk SQL writer (sql.py) into the server's own database.

    GET  /api/2.0/lossbench/stacks  -> {"version": 1, "bulk": true}, or "bulk": false and "why"
                                       (a store that is not an SQL database of a tested schema
                                       revision: clients then use MLflow's REST calls)
    POST /api/2.0/lossbench/stacks  body: JSON (gzip with Content-Encoding: gzip)
                                    {"experiment_id": "1", "records": [record, ...]}
                                    -> {"run_ids": [...]} (the records' own ids)
    GET  /api/2.0/lossbench/children?parent=<run id>
                                    -> {"children": [[run_id, status, config hash, outcome, start]]}
                                       (children.py's one SELECT, not search_runs' whole runs)
    POST /api/2.0/lossbench/final-metrics  {"run_ids": [...]} -> {"metrics": {run_id: {key: value}}}

A record is records.build_record's dict as JSON (datasets as [fields, context] pairs, NaN and
+-Infinity as Python's json writes them). One request is one transaction (sql.write): its runs
are all there or none are; a request sent again (its answer lost) writes only those of its runs
that are not there yet, nothing twice. The files of the runs (config.yaml, ...) are written by the
server: under its --artifacts-destination when the experiment's location is mlflow-artifacts:
(the proxy), else at the location itself, before the transaction when that is a folder.

Why: through MLflow's REST API a run costs the server ~190 ms of CPU (five calls a run, 0.2 ms a
metric row through its ORM; client.py); a stack through this endpoint costs it what the bulk
writer costs on a local store (~8 ms a run on SQLite), and its client one request per stack.
A server without this app (plain `mlflow server`) is written through the REST calls, as before.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import urllib.parse
from typing import Any

from flask import Response, request
from mlflow.server import app as flask_app

ROUTE = "/api/2.0/lossbench/stacks"
CHILDREN = "/api/2.0/lossbench/children"   # GET ?parent=<run id>
FINALS = "/api/2.0/lossbench/final-metrics"   # POST {"run_ids": [...]}
VERSION = 1
MAX_BYTES = 512 << 20          # of a request's JSON, unzipped
RECORD_KEYS = {"run_id": str, "name": str, "tags": dict, "params": dict, "points": list, "files": dict,
               "start": int, "end": int, "datasets": list}
DATASET_KEYS = ("name", "digest", "source_type", "source", "schema", "profile")


class BadRequest(ValueError):
    """A request this endpoint refuses (400): what is wrong, in one line."""


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(e: BaseException, status: int) -> Response:
    """{"error": "<kind>: <what>"} on one line."""
    return _json({"error": " ".join(f"{type(e).__name__}: {e}".split())[:2000]}, status)


def _run_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


@functools.cache
def _bulk() -> tuple[Any, str | None]:
    """bulk_store of the server's own store, checked once a process (its schema revision does
    not change under a running server)."""
    from mlflow.server.handlers import _get_tracking_store

    return bulk_store(_get_tracking_store())


def bulk_store(store) -> tuple[Any, str | None]:
    """(the store, None) when the bulk writer may write it, else (None, why)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from harness.tracking import sql

    if not isinstance(store, SqlAlchemyStore):
        return None, f"the server's store is a {type(store).__name__}, not an SQL database"
    rev = sql.revision(store)
    if rev not in sql.TESTED_REVISIONS:
        return None, f"the server's store has schema revision {rev}, which lossbench's bulk writer was not tested on"
    return store, None


def info() -> Response:
    store, why = _bulk()
    return _json({"version": VERSION, "bulk": store is not None, **({"why": why} if why else {})})


def decode(payload: Any) -> tuple[str, list[dict[str, Any]]]:
    """(experiment id, records) of a request's JSON, checked field by field (BadRequest)."""
    from harness.tracking.records import DatasetRecord

    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list) or not payload["records"]:
        raise BadRequest("want {'experiment_id': ..., 'records': [at least one record]}")
    eid = str(payload.get("experiment_id", ""))
    if not eid.isdigit():
        raise BadRequest(f"experiment_id {eid!r} is not an experiment id")
    out = []
    for i, rec in enumerate(payload["records"]):
        if not isinstance(rec, dict):
            raise BadRequest(f"record {i} is not an object")
        for key, kind in RECORD_KEYS.items():
            if not isinstance(rec.get(key), kind) or isinstance(rec.get(key), bool):
                raise BadRequest(f"record {i}: {key} is not a {kind.__name__}")
        if not _run_id(rec["run_id"]):
            raise BadRequest(f"record {i}: run_id {rec['run_id'][:40]!r} is not 32 hex digits")
        for part in ("tags", "params", "files"):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in rec[part].items()):
                raise BadRequest(f"record {i}: {part} must map strings to strings")
        if any(name.startswith("/") or ".." in name.split("/") for name in rec["files"]):
            raise BadRequest(f"record {i}: a file name leaves the run's artifact folder")
        points = []
        for p in rec["points"]:
            if not (isinstance(p, list) and len(p) == 3 and isinstance(p[0], str) and isinstance(p[1], (int, float))
                    and isinstance(p[2], int) and not isinstance(p[2], bool)):
                raise BadRequest(f"record {i}: a point is not [metric, value, step]")
            points.append((p[0], float(p[1]), p[2]))
        datasets = []
        for d in rec["datasets"]:
            if not (isinstance(d, list) and len(d) == 2 and isinstance(d[0], dict) and isinstance(d[1], str)
                    and set(d[0]) == set(DATASET_KEYS)):
                raise BadRequest(f"record {i}: a data set is not [{{{', '.join(DATASET_KEYS)}}}, context]")
            datasets.append((DatasetRecord(**d[0]), d[1]))
        out.append({**rec, "points": points, "datasets": datasets})
    return eid, out


def files_location(artifact_location: str) -> str:
    """Where the server itself writes the files of an experiment's runs: mlflow-artifacts:/<path>
    (the locations a proxying server hands out) is <its --artifacts-destination>/<path>."""
    if not artifact_location.startswith("mlflow-artifacts:"):
        return artifact_location
    from mlflow.server.handlers import _get_artifact_repo_mlflow_artifacts

    path = urllib.parse.urlparse(artifact_location).path.strip("/")
    root = _get_artifact_repo_mlflow_artifacts().artifact_uri.rstrip("/")
    return f"{root}/{path}" if path else root


def write() -> Response:
    """POST: the stack's records written in one transaction (module doc); 400 for a request it
    refuses, 501 for a store it does not write, 500 for a store that failed (the client retries
    or spools it: nothing of the request was committed, or all of it was)."""
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from sqlalchemy import select

    from harness.tracking import sql

    store, why = _bulk()
    if store is None:
        return _json({"error": why}, 501)
    try:
        body = request.get_data()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
                body = f.read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES:
            raise BadRequest(f"a request holds at most {MAX_BYTES >> 20} MiB of JSON")
        eid, records = decode(json.loads(body))
        exp = store.get_experiment(eid)   # an unknown experiment: MLflow's own error
    except Exception as e:  # noqa: BLE001 - the request is refused, in one line
        return _error(e, 400)
    ids = [r["run_id"] for r in records]
    try:
        with store.ManagedSessionMaker() as session:   # sent again (its answer was lost): written once
            present = {r for (r,) in session.execute(select(SqlRun.run_uuid).where(SqlRun.run_uuid.in_(ids)))}
        if len(present) < len(ids):
            sql.write(store, eid, exp.artifact_location, [r for r in records if r["run_id"] not in present],
                      files_at=files_location(exp.artifact_location))
    except Exception as e:  # noqa: BLE001 - the store failed (full disk, ...): one line, 500
        return _error(e, 500)
    return _json({"run_ids": ids})


def children() -> Response:
    """GET: a sweep's active children as children.py reads them from an SQL store."""
    from harness.tracking import children as _children

    store, why = _bulk()
    if store is None:
        return _json({"error": why}, 501)
    parent = request.args.get("parent", "")
    if not _run_id(parent):
        return _json({"error": f"parent {parent[:40]!r} is not a run id"}, 400)
    return _json({"children": [dataclasses.astuple(c) for c in _children.sql_children(store, parent)]})


def final_metrics() -> Response:
    """POST: the latest value of every metric of these runs (NaN as NaN), in one SELECT a chunk."""
    from harness.tracking import children as _children

    store, why = _bulk()
    if store is None:
        return _json({"error": why}, 501)
    try:
        ids = json.loads(request.get_data())["run_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("run_ids must be a list of run ids")
    except Exception as e:  # noqa: BLE001 - the request is refused, in one line
        return _error(e, 400)
    return _json({"metrics": _children.sql_final_metrics(store, ids)})


def _register() -> None:
    if "lossbench_stacks_write" not in flask_app.view_functions:
        flask_app.add_url_rule(ROUTE, "lossbench_stacks_info", info, methods=["GET"])
        flask_app.add_url_rule(ROUTE, "lossbench_stacks_write", write, methods=["POST"])
        flask_app.add_url_rule(CHILDREN, "lossbench_children", children, methods=["GET"])
        flask_app.add_url_rule(FINALS, "lossbench_final_metrics", final_metrics, methods=["POST"])


def create_app():
    """The app `mlflow server --app-name lossbench` serves (the `mlflow.app` entry point):
    MLflow's Flask app with the endpoint, inside MLflow's FastAPI wrapper under uvicorn (the
    default server), as the Flask app itself under gunicorn or waitress."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    _register()
    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app
