"""The MlflowClient path: the experiment, sweeps' parent runs (on every store), runs on stores
that are not SQL databases (an http:// tracking server, Databricks), and the Parquet curve
files (artifacts, on every store).

A stack of runs goes to a tracking server through the client's store (its RestStore: the REST
calls MLflow's client makes, without the client's extras) in three rounds, each spread over a
few threads (an HTTP call waits on the server with the GIL released, and nothing trains while a
stack is written):
  1. create every run (RUNNING, with its tags)
  2. per run: log_batch with params, metrics (and the curves tag) up to the API's limits
     (100 params, 1000 values in all, 1 MB a call: one call for a run of a few hundred points),
     log_inputs, and its files (config.yaml, ...) through the artifact repository of the
     artifact_uri the server gave at creation (MlflowClient.log_text would ask for the run first)
  3. the stack's Parquet curve file on its owner (tracking.curves=parquet), then every run
     terminated FINISHED: a run is FINISHED only once complete, an interrupted write leaves
     RUNNING runs (which a resumed sweep deletes, and harness.sync replaces)
Five calls a run, against seven through MlflowClient (log_text and set_terminated each read
the run first), each on a new connection (fresh_connections: 40 ms less a call). Runs are
terminated through the store's update_run_info, not MlflowClient.set_terminated: that one
prints "View run ... / View experiment ..." (its _log_url) for every run on an http store.
What remains is the server's own work, spread over its workers (measured as the CPU time of
MLflow 3.17's server, SQLite behind it, for runs of 37 params, 11 tags, 519 metric points):
~190 ms a run, of which the metric rows ~113 ms (0.2 ms a row, its ORM), create_run 22, params
21, log_inputs 18, terminate 15, config.yaml 8; ~110 ms with tracking.curves=parquet (9 metric
values a run). Through MlflowClient it was ~250 ms: a run costs at least that CPU divided by
the cores the server has.

Against `mlflow server --app-name lossbench` none of this: a stack is a few POSTs
(app_client.py, server_app.py), ~8 ms a run.

The client's retries are MLflow's own (urllib3's, configured by environment variables); their
defaults (7 retries, backoff factor 2: ~250 s before a down server is reported) are bounded
here (RETRIES, unless the user set them): a stack that cannot be written within them is kept
in the spool (harness/tracking/spool.py) instead.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

from harness import schema as S
from harness.tracking.records import sweep_tags

if TYPE_CHECKING:
    import pandas as pd

# worst case for one call: (2 + 1) attempts x 10 s (a server that accepts and never answers) +
# backoff 0 + 2 s + jitter <= 2 s = 34 s; a refused connection fails within ~4 s
RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
WORKERS = 8           # concurrent calls to a tracking server (MLflow's HTTP pool holds 10)
BATCH_BYTES = 800_000  # of params in one log_batch (MLflow refuses requests over 1 MB)


class StackFailed(Exception):
    """A stack's write stopped by `cause`; `created`: {index: server run id} of the runs it had
    created (RUNNING, or FINISHED for the ones terminated before the failure)."""

    def __init__(self, cause: BaseException, created: dict[int, str]):
        super().__init__(str(cause))
        self.cause, self.created = cause, created


def remote(client) -> bool:
    """Whether the client's store is a tracking server (REST), not a database or a folder."""
    from mlflow.store.tracking.rest_store import RestStore

    return isinstance(client._tracking_client.store, RestStore)


def bound_retries() -> None:
    """MLflow's HTTP retries bounded (RETRIES), where the user has not set them; urllib3's
    warning per retry silenced (a stack that fails is said once, by the spool's line)."""
    import logging

    for key, value in RETRIES.items():
        os.environ.setdefault(key, value)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


_fresh = False


def fresh_connections(uri: str) -> None:
    """Every MLflow request of this process on a new connection ("Connection: close", through
    MLflow's request-header providers), for an http:// server: MLflow 3's server (uvicorn)
    sends a response's head and body in two segments without TCP_NODELAY, so on a reused
    connection the body waits for the client's delayed ACK, 40 ms a call (measured: create_run
    54 ms on a kept-alive connection, 17 ms on a new one; GET /health 44 ms against 2 ms)."""
    global _fresh
    if _fresh or not uri.startswith("http://"):
        return
    try:
        from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider
        from mlflow.tracking.request_header.registry import _request_header_provider_registry
    except ImportError:   # another MLflow: only slower
        return

    class CloseConnections(RequestHeaderProvider):
        def in_context(self):
            return True

        def request_headers(self):
            return {"Connection": "close"}

    _request_header_provider_registry.register(CloseConnections)
    _fresh = True


def transient(e: BaseException) -> bool:
    """Whether an error says the server could not be reached or failed (connection refused or
    reset, a timeout, HTTP 5xx or 429, after MLflow's retries), not that it refused the data."""
    import requests
    from mlflow.exceptions import RestException

    if isinstance(e, RestException):
        code = e.get_http_status_code()
        return code >= 500 or code == 429
    from harness.tracking.app_client import StackError

    if isinstance(e, StackError):
        return e.status >= 500 or e.status == 429
    seen, depth = e, 0
    while seen is not None and depth < 10:
        if isinstance(seen, requests.HTTPError) and seen.response is not None:
            code = seen.response.status_code
            return code >= 500 or code == 429
        if isinstance(seen, (requests.RequestException, ConnectionError, TimeoutError)):
            return True
        m = re.search(r"error code (\d{3})", str(seen))
        if m:
            return int(m.group(1)) >= 500 or int(m.group(1)) == 429
        seen, depth = seen.__cause__ or seen.__context__, depth + 1
    return False


def answers(client, timeout: float = 2.0) -> bool:
    """One GET /health, no retries: whether the tracking server answers now (any status below 500)."""
    from mlflow.utils.rest_utils import http_request

    try:
        r = http_request(client._tracking_client.store.get_host_creds(), "/health", "GET",
                         max_retries=0, backoff_factor=0, timeout=timeout, raise_on_status=False)
        return r.status_code < 500
    except Exception:
        return False


def open_experiment(client, name: str):
    """The experiment of that name, created when missing, tagged so that MLflow 3's UI opens it
    on its training runs (not on the GenAI view an untagged experiment gets). Any number of
    processes may open the same new experiment at once: each reads it by name, creates it when
    absent, and on a failed create (another process created it, or the store was busy) reads
    it again; a busy store is retried with backoff (store.retrying)."""
    from harness.tracking.store import retrying

    if remote(client):
        bound_retries()
        fresh_connections(str(client.tracking_uri))

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


def end_sweep(client, parent_id: str, status: str, tags: dict[str, str], metrics: dict[str, float],
              now: int | None = None) -> None:
    """Logs the sweep's counts and status tag on its parent run and terminates it (through the
    store: MlflowClient.set_terminated prints the run's address on an http store)."""
    from mlflow.entities import Metric, RunStatus, RunTag

    now = now or int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client._tracking_client.store.update_run_info(parent_id, RunStatus.from_string(status), end_time=now, run_name=None)


def new_curves_path() -> str:
    """Where a stack's Parquet curve file goes on its owner run (as records.point_to_curves names it)."""
    return f"{S.CURVES_DIR}/{uuid.uuid4().hex[:12]}.parquet"


def write_stack(client, experiment_id: str, records: list[dict[str, Any]], parent_id: str | None,
                table: "pd.DataFrame | None" = None, curves_path: str | None = None,
                extra_tags: Callable[[int], dict[str, str]] | None = None,
                done: dict[int, str] | None = None) -> list[str]:
    """Writes a stack's records (records.build_record) in the three rounds above; returns the
    server's run ids, in order. table: the stack's curve table (records.curve_table, by the
    records' own run_id), written as `curves_path` (default: a new name) of the parent run (of
    the first run without one). extra_tags(i): more tags for record i. done: {index: run id}
    of runs already complete on the server (harness.sync), not written again (their ids go into
    the curve table). Raises StackFailed with the runs created so far."""
    from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
    from mlflow.entities import Dataset as DatasetEntity

    from harness.tracking import app_client

    try:
        api = bool(parent_id) and app_client.stack_api(client)
    except Exception as e:   # the server does not answer the question: the stack is not written
        raise StackFailed(e, {}) from e
    if api:
        return app_client.post_stack(client, experiment_id, records, parent_id, table, curves_path, extra_tags, done)
    store = client._tracking_client.store
    ids: dict[int, str] = dict(done or {})
    todo = [i for i in range(len(records)) if i not in ids]
    uris: dict[int, str] = {}
    created: dict[int, str] = {}

    def create(i: int) -> None:
        rec = records[i]
        tags = {**rec["tags"], **(extra_tags(i) if extra_tags else {})}
        run = store.create_run(experiment_id=experiment_id, user_id=tags.get(S.USER_TAG, "unknown"),
                               start_time=rec["start"], tags=[RunTag(k, v) for k, v in tags.items()],
                               run_name=rec["name"])
        ids[i] = created[i] = run.info.run_id
        uris[i] = run.info.artifact_uri

    def fill(i: int) -> None:
        rec, rid = records[i], ids[i]
        params = [Param(k, v[:6000]) for k, v in rec["params"].items()]
        metrics = [Metric(k, v, rec["end"], s) for k, v, s in rec["points"]]
        tags = [RunTag(S.CURVES_TAG, f"runs:/{owner}/{path}")] if path else []
        for p, m, t in _batches(params, metrics, tags):
            store.log_batch(rid, metrics=m, params=p, tags=t)
        inputs = [DatasetInput(DatasetEntity(d.name, d.digest, d.source_type, d.source, d.schema, d.profile),
                               [InputTag(S.DATA_CONTEXT_TAG, ctx)]) for d, ctx in rec["datasets"]]
        if inputs:
            _log_inputs(store, rid, inputs)
        _log_files(client, uris[i], rec["files"])

    def finish(i: int) -> None:
        store.update_run_info(ids[i], RunStatus.FINISHED, end_time=records[i]["end"], run_name=None)

    path = None
    workers = min(WORKERS, max(len(todo), 1)) if remote(client) else 1   # an SQL store: one session at a time
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, todo))
            owner = parent_id or ids[0]
            if table is not None:
                path = curves_path or new_curves_path()
            # the first run of each data set new to this process goes first: the server inserts
            # a data set on first use, and two concurrent first uses collide on its unique key
            known = _datasets_logged.setdefault((str(client.tracking_uri), str(experiment_id)), set())
            first: dict[tuple, int] = {}
            for i in todo:
                key = tuple((d.name, d.digest) for d, _ in records[i]["datasets"])
                if key and not set(key) <= known:
                    first.setdefault(key, i)
            leaders = set(first.values())
            list(pool.map(fill, sorted(leaders)))
            known.update(k for key in first for k in key)
            list(pool.map(fill, [i for i in todo if i not in leaders]))
            if table is not None:   # the curves exist before any run that points to them is FINISHED
                by_id = {rec["run_id"]: ids[i] for i, rec in enumerate(records)}
                log_curves(client, owner, path, table.assign(run_id=table["run_id"].cat.rename_categories(by_id)))
            list(pool.map(finish, todo))
    except Exception as e:
        raise StackFailed(e, created) from e
    return [ids[i] for i in range(len(records))]


_datasets_logged: dict[tuple[str, str], set] = {}   # (tracking uri, experiment): (name, digest) sent
def _log_inputs(store, run_id: str, inputs: list) -> None:
    """log_inputs, once more after a collision with another writer inserting the same new data
    set (the server answers 400 on its unique key and has rolled the call back)."""
    from mlflow.exceptions import RestException

    try:
        store.log_inputs(run_id, datasets=inputs)
    except RestException as e:
        if "datasets" not in str(e) or not re.search(r"unique|duplicate", str(e), re.I):
            raise
        time.sleep(0.2)
        store.log_inputs(run_id, datasets=inputs)


def _batches(params: list, metrics: list, tags: list):
    """(params, metrics, tags) per log_batch: at most 100 params and 100 tags, 1000 values in
    all, BATCH_BYTES of params; at least one call."""
    from mlflow.utils.validation import MAX_ENTITIES_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    first = True
    while first or params or metrics or tags:
        first, n, size = False, 0, 0
        while n < min(len(params), MAX_PARAMS_TAGS_PER_BATCH) and size + len(params[n].key) + len(params[n].value) < BATCH_BYTES:
            size += len(params[n].key) + len(params[n].value)
            n += 1
        p, params = params[:n], params[n:]
        t, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        yield p, m, t


def _log_files(client, artifact_uri: str, files: dict[str, str]) -> None:
    """Writes text files (artifact name -> text) into a run's artifact_uri, as MlflowClient.log_text does."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

    if not files:
        return
    repo = get_artifact_repository(add_databricks_profile_info_to_artifact_uri(artifact_uri, client.tracking_uri),
                                   tracking_uri=client.tracking_uri)
    log_texts(repo, files)


def log_texts(repo, files: dict[str, str]) -> None:
    """Logs text files (artifact name -> text, a/b.txt into folder a) into an artifact repository."""
    import posixpath

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            norm = posixpath.normpath(name)
            local = os.path.join(tmp, posixpath.basename(norm))
            with open(local, "w", encoding="utf-8") as f:
                f.write(text)
            repo.log_artifact(local, posixpath.dirname(norm) or None)


def log_curves(client, owner: str, path: str, table: "pd.DataFrame") -> None:
    """Writes a curve table (records.curve_table) as the Parquet artifact `path` of run `owner`."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        table.to_parquet(local, index=False)
        client.log_artifact(owner, local, os.path.dirname(path))
