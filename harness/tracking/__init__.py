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
  * anything else (an `http://` tracking server, Databricks): MLflow's store calls, five per run
    (create, one log_batch per 1000 values, log_inputs, the files, terminate), a stack's runs
    written concurrently (client.py: ~4x faster here, bounded by the server); what a server that is
    down cannot take is kept in a local spool and uploaded by `python -m harness.sync` (spool.py).

Every name written (tags, params, metrics, artifacts) is defined in harness/schema.py, which the
report reads too. The modules:
  records.py  what a run's records are (tags, params, metric points, datasets, the curve table);
              touches no store
  sql.py      the bulk path for SQL stores
  client.py   the MlflowClient path: the experiment, sweeps' parent runs, runs on other stores,
              the Parquet curve files
  store.py    opening a store when many processes do it at once (a new SQLite file built whole
              and published atomically; an advisory lock around MLflow's table creation on a
              server database)
  spool.py    the spool: stacks (and a sweep's closing) a tracking server could not take
  Tracker     (here) picks the path and hands each module its part
"""
from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Sequence

from harness import schema as S
from harness.tracking import client as _client
from harness.tracking import spool as _spool
from harness.tracking import sql as _sql
from harness.tracking import store as _store
from harness.tracking.records import build_record, curve_table, dataset_records, point_to_curves

if TYPE_CHECKING:
    from harness.engine import RunResult


class Tracker:
    """Writes sweeps and runs into one MLflow experiment."""

    def __init__(self, uri: str, experiment: str):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        self.uri = uri
        with _store.guarded(uri, f"opening the store and experiment {experiment!r}"):
            _store.prepare(uri)   # a new SQLite store: built whole beside the target, then published
            if uri.startswith("sqlite:///"):
                _sql.sqlite_wal(uri)   # a store made by another program, in rollback-journal mode
            with _store.creation_lock(uri):   # a server database: one process at a time creates its tables
                self.client = MlflowClient(uri)   # opens the store (MLflow creates missing tables here)
            exp = _client.open_experiment(self.client, experiment)
            self.experiment_id = exp.experiment_id
            self.artifact_location = exp.artifact_location
            self._sql = _sql.store_of(self.client)
        self._dataset_cache: dict[str, list] = {}

    @property
    def bulk(self) -> bool:
        """Whether runs go through the bulk SQL path (an SQL store)."""
        return self._sql is not None

    # -- sweeps ---------------------------------------------------------------------------
    def start_sweep(self, sweep_id: str, params: dict[str, str], tags: dict[str, str],
                    artifacts: dict[str, str]) -> str:
        with _store.guarded(self.uri, "creating the sweep's parent run"):
            return _client.start_sweep(self.client, self.experiment_id, sweep_id, params, tags, artifacts)

    def end_sweep(self, parent_id: str, status: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        """The parent closed with its tags, metrics and status. On an SQL store, when the store
        refuses that (a full disk), the status alone is tried (one row updated: it fits where a
        batch does not); a StoreError either way, `status_set` telling whether the parent shows
        the status. On a tracking server: first uploads what this process spooled if the server
        answers again, spools the closing itself if it does not, and prints the spool's line
        (spool_line) when runs remain there."""
        if not self.bulk:
            self._remote.drain()
            self._remote.call(dict(kind="end_sweep", parent=parent_id, status=status, tags=tags, metrics=metrics,
                                   now=int(time.time() * 1000)))
            line = self.spool_line()
            if line:
                print(line, file=sys.stderr)
            return
        try:   # idempotent (MLflow skips a metric logged twice): retried when the store is busy
            _store.retrying(lambda: _client.end_sweep(self.client, parent_id, status, tags, metrics), self.uri,
                            f"marking the parent run {status}")
        except _store.StoreError as e:
            try:
                with _store.guarded(self.uri, f"marking the parent run {status}"):
                    self.client.set_terminated(parent_id, status)
                e.status_set = True
            except _store.StoreError:
                e.status_set = False
            raise e

    def describe(self, run_id: str, markdown: str) -> None:
        """Sets a run's description (shown on its page in the MLflow UI); spooled while a
        tracking server is down."""
        if self.bulk:
            _store.retrying(lambda: _client.describe(self.client, run_id, markdown), self.uri, "describing the parent run")
        else:
            self._remote.call(dict(kind="describe", run_id=run_id, markdown=markdown))

    # -- runs -----------------------------------------------------------------------------
    def write(self, results: Sequence["RunResult"], parent_id: str | None, sweep_id: str, *,
              bulk: bool | None = None) -> list[str]:
        """Writes finished runs; returns their MLflow run ids, in order. bulk: None (the store's
        way: the SQL path on SQL stores), False (MLflow's client on any store), True (the SQL path).
        A store that fails (a full disk, a write conflict past the retries) is a StoreError: the
        runs of earlier calls stay as they are, these are absent or not FINISHED (resume)."""
        if not results:
            return []
        with _store.guarded(self.uri, f"writing {len(results)} runs"):
            return self._write(results, parent_id, sweep_id, bulk)

    def _write(self, results, parent_id, sweep_id, bulk) -> list[str]:
        if bulk is None:
            bulk = self.bulk
        elif bulk and not self.bulk:
            raise ValueError(f"bulk writes need an SQL store, not {self.uri}")
        in_metrics = results[0].spec.tracking.get("curves", "metrics") == "metrics"
        records = [build_record(r, parent_id, sweep_id, in_metrics, self._datasets(r)) for r in results]
        path = None
        if not in_metrics:
            owner = parent_id or records[0]["run_id"]
            path = point_to_curves(records, owner)
        if bulk:
            if path is not None and parent_id:   # the curves exist before the runs that point to them
                _client.log_curves(self.client, owner, path, curve_table(results, [rec["run_id"] for rec in records]))
            _sql.write(self._sql, self.experiment_id, self.artifact_location, records)
            if path is not None and not parent_id:
                _client.log_curves(self.client, owner, path, curve_table(results, [rec["run_id"] for rec in records]))
        else:   # the curves' file is named, and its owner known, once the runs exist on the store
            for rec in records:
                rec["tags"].pop(S.CURVES_TAG, None)
            table = None if in_metrics else curve_table(results, [rec["run_id"] for rec in records])
            return self._remote.write(records, parent_id, sweep_id, table)
        return [rec["run_id"] for rec in records]

    @property
    def _remote(self) -> "_spool.Remote":
        """The client path's writer, with its spool (made on first use)."""
        if self.__dict__.get("_remote_writer") is None:
            self._remote_writer = _spool.Remote(self.client, self.experiment_id, self.uri)
        return self._remote_writer

    @property
    def spooled(self) -> int:
        """Runs this process could not write to a tracking server and kept in the spool
        (harness/tracking/spool.py; uploaded by `python -m harness.sync`)."""
        w = self.__dict__.get("_remote_writer")
        return w.spooled if w is not None else 0

    def spooled_outcomes(self) -> dict[str, str]:
        """{config hash: lossbench.status} of the runs this process holds in the spool, after
        uploading what it can (the server answers again): the sweep counts them as recorded."""
        w = self.__dict__.get("_remote_writer")
        if w is None:
            return {}
        w.drain()
        return w.outcomes()

    @property
    def server_down(self) -> bool:
        """Whether the tracking server was found down and has not answered since."""
        w = self.__dict__.get("_remote_writer")
        return bool(w is not None and w.down)

    def spool_line(self) -> str | None:
        """`N runs could not reach URI: kept in FOLDER/ (upload: python -m harness.sync)`, or
        None when nothing was spooled."""
        w = self.__dict__.get("_remote_writer")
        return w.line() if w is not None else None

    def _datasets(self, result: "RunResult") -> list:
        d = result.data
        if d is None:
            return []
        if d.digest not in self._dataset_cache:
            self._dataset_cache[d.digest] = dataset_records(result)
        return self._dataset_cache[d.digest]
