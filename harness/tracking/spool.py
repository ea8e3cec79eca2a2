"""The spool: what a tracking server could not take, kept on local disk until harness.sync
uploads it. Nothing trained is lost to a server that is down.

A stack whose write fails after MLflow's (bounded) retries with the server unreachable
(connection refused or reset, timeouts, HTTP 5xx) is saved as one file in the spool folder
(LOSSBENCH_SPOOL, default `.lossbench-spool/` in the working directory the sweep started in):
its records (records.build_record), its curve table (tracking.curves=parquet) and curve file
name, the store, experiment, parent run and sweep it belongs to, and the runs the failed
attempt had created on the server. The file is a pickle written to a temporary name, flushed
and renamed (os.replace): a kill leaves it whole or absent. The sweep goes on training; each
next stack first asks the server with one short probe (GET /health, 2 s, no retries) and is
spooled at once while the server stays down, written as usual once it answers. The sweep's
own closing (end_sweep: the parent's counts and status) and its description are spooled the
same way. At the end of the sweep, what this process spooled is uploaded if the server answers
again; what remains is reported in one line (Tracker.spool_line).

Uploading (upload; harness.sync for every file of a folder) is safe to rerun and to kill: a run
written from the spool carries the tag lossbench.spool_id (`<file id>-<index in the stack>`);
before writing, the runs of the parent's experiment with that file's ids, and the runs the
failed attempt created, are looked up: a FINISHED one is complete and kept (a run is FINISHED
only once everything else of it is written), any other (RUNNING: a write cut short) is
deleted and written again; a record whose config hash already has a FINISHED run under the
same parent (a resumed sweep trained it again) is not written. The file is deleted only after
its upload has committed.
"""
from __future__ import annotations

import os
import pickle
import sys
import time
import uuid
from typing import Any

from harness import schema as S
from harness.tracking import client as _client

SPOOL_ENV = "LOSSBENCH_SPOOL"
SPOOL_TAG = "lossbench.spool_id"
VERSION = 1
_count = 0


def spool_dir() -> str:
    """LOSSBENCH_SPOOL, else `.lossbench-spool` in the directory the command started in (Hydra's
    original working directory when a job runs in its own)."""
    if os.environ.get(SPOOL_ENV):
        return os.path.abspath(os.environ[SPOOL_ENV])
    cwd = os.getcwd()
    try:
        from hydra.utils import get_original_cwd

        cwd = get_original_cwd()
    except Exception:   # not inside a Hydra job
        pass
    return os.path.join(cwd, ".lossbench-spool")


def save(folder: str, payload: dict[str, Any]) -> str:
    """Writes one spool file atomically (temporary name, fsync, os.replace); returns its path.
    Names sort in the order written."""
    global _count
    _count += 1
    os.makedirs(folder, exist_ok=True)
    payload = {"version": VERSION, "id": payload.get("id") or uuid.uuid4().hex[:12], "saved": time.time(), **payload}
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{_count:05d}-{payload['id']}.{payload['kind']}.pkl"
    path = os.path.join(folder, name)
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def files(folder: str) -> list[str]:
    """The spool files of a folder, in the order written."""
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".pkl") and not n.startswith(".")]


def load(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return pickle.load(f)


def runs_in(payload: dict[str, Any]) -> int:
    return len(payload.get("records", ()))


def upload(client, payload: dict[str, Any], known: dict[str, dict[str, str]] | None = None) -> tuple[int, int]:
    """Writes one spool file's content to its store; returns (runs written, runs found already
    complete). known: {parent run: {config hash: run id}} of FINISHED children, filled and
    kept up to date here across the files of one sync. Raises what the store raised (the file
    stays)."""
    kind = payload["kind"]
    if kind == "stack":
        return _upload_stack(client, payload, {} if known is None else known)
    if kind == "end_sweep":
        _client.end_sweep(client, payload["parent"], payload["status"], payload["tags"], payload["metrics"], payload["now"])
    elif kind == "describe":
        _client.describe(client, payload["run_id"], payload["markdown"])
    else:
        raise ValueError(f"unknown spool record kind {kind!r}")
    return 0, 0


def _finished(client, experiment_id: str, parent: str) -> dict[str, str]:
    """{config hash: run id} of the parent's FINISHED children."""
    from mlflow.entities import ViewType

    out, token = {}, None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{S.PARENT_TAG}` = '{parent}' and attributes.status = 'FINISHED'",
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        out.update({r.data.tags[S.HASH_TAG]: r.info.run_id for r in page if S.HASH_TAG in r.data.tags})
        token = page.token
        if not token:
            return out


def _upload_stack(client, p: dict[str, Any], known: dict[str, dict[str, str]]) -> tuple[int, int]:
    from mlflow.entities import ViewType

    records, sid = p["records"], p["id"]
    done: dict[int, str] = {}
    stale: list[str] = []
    for i, rid in (p.get("attempt") or {}).items():   # runs the sweep's failed write created
        try:
            run = client.get_run(rid)
        except Exception as e:
            if _client.transient(e):
                raise
            continue   # gone (deleted by a resume)
        if run.info.lifecycle_stage != "active":
            continue
        if run.info.status == "FINISHED":
            done[i] = rid
        else:
            stale.append(rid)
    token = None
    while True:   # runs an earlier upload of this file wrote
        page = client.search_runs([p["experiment_id"]], f"tags.`{SPOOL_TAG}` LIKE '{sid}-%'",
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        for run in page:
            i = int(run.data.tags[SPOOL_TAG].rsplit("-", 1)[1])
            if run.info.status == "FINISHED" and i not in done:
                done[i] = run.info.run_id
            else:
                stale.append(run.info.run_id)
        token = page.token
        if not token:
            break
    for rid in stale:
        client.delete_run(rid)
    have: dict[str, str] = {}
    if p["parent"]:   # a run of the same config already FINISHED there (a resumed sweep retrained it)
        if p["parent"] not in known:
            known[p["parent"]] = _finished(client, p["experiment_id"], p["parent"])
        have = known[p["parent"]]
        for i, rec in enumerate(records):
            if i not in done and rec["tags"].get(S.HASH_TAG) in have:
                done[i] = have[rec["tags"][S.HASH_TAG]]
    todo = len(records) - len(done)
    if todo:
        ids = _client.write_stack(client, p["experiment_id"], records, p["parent"], p.get("table"), p.get("curves_path"),
                                  extra_tags=lambda i: {SPOOL_TAG: f"{sid}-{i}"}, done=done)
        have.update({rec["tags"].get(S.HASH_TAG): rid for rec, rid in zip(records, ids)})
    return todo, len(done)


class Remote:
    """A Tracker's writes through MLflow's client, with the spool behind them on a tracking server."""

    def __init__(self, client, experiment_id: str, uri: str):
        self.client, self.experiment_id, self.uri = client, experiment_id, uri
        self.spools = _client.remote(client)     # a database or a folder store raises as it always did
        self.folder = spool_dir()
        self.down = False
        self.kept: list[tuple[str, int]] = []    # (spool file, runs in it) of this process, not uploaded

    def _reachable(self) -> bool:
        """True unless the server was found down before and does not answer a probe now."""
        if self.down and _client.answers(self.client):
            self.down = False
        return not self.down

    def _keep(self, payload: dict[str, Any], error: BaseException | None) -> None:
        payload = {"uri": self.uri, "experiment_id": self.experiment_id,
                   "error": None if error is None else f"{type(error).__name__}: {error}"[:2000], **payload}
        self.kept.append((save(self.folder, payload), runs_in(payload)))

    def write(self, records: list[dict[str, Any]], parent_id: str | None, sweep_id: str, table) -> list[str]:
        """Writes a stack (client.write_stack); returns the server's run ids, or, for a stack
        kept in the spool, the records' own ids."""
        payload = dict(kind="stack", records=records, table=table, parent=parent_id, sweep=sweep_id,
                       curves_path=_client.new_curves_path() if table is not None else None, attempt={})
        if not self.spools:
            try:
                return self._write(payload)
            except _client.StackFailed as e:
                raise e.cause from None
        if not self._reachable():
            self._keep(payload, None)
            return [r["run_id"] for r in records]
        try:
            return self._write(payload)
        except _client.StackFailed as e:
            payload["attempt"] = e.created
            self._keep(payload, e.cause)
            if not _client.transient(e.cause):   # the server refused the data: kept, and said
                raise e.cause from None
            self.down = True
            return [r["run_id"] for r in records]

    def _write(self, p: dict[str, Any]) -> list[str]:
        return _client.write_stack(self.client, self.experiment_id, p["records"], p["parent"], p["table"],
                                   p["curves_path"])

    def call(self, payload: dict[str, Any]) -> None:
        """end_sweep or describe: done now, or kept in the spool while the server is down."""
        if self.spools and not self._reachable():
            return self._keep(payload, None)
        try:
            upload(self.client, payload)
        except Exception as e:
            if not (self.spools and _client.transient(e)):
                raise
            self.down = True
            self._keep(payload, e)

    def drain(self) -> None:
        """Uploads what this process spooled, in order, if the server answers; stops at the first failure."""
        if not self.kept or not self._reachable():
            return
        known: dict[str, dict[str, str]] = {}
        while self.kept:
            path, _ = self.kept[0]
            try:
                upload(self.client, load(path), known)
            except Exception as e:
                if _client.transient(e):
                    self.down = True
                    return
                print(f"spool: {os.path.basename(path)} could not be uploaded: {e}", file=sys.stderr)
                return
            os.remove(path)
            self.kept.pop(0)

    def outcomes(self) -> dict[str, str]:
        """{config hash: lossbench.status} of the runs in this process's spool files."""
        out = {}
        for path, n in self.kept:
            if n:
                out.update({r["tags"].get(S.HASH_TAG, ""): r["tags"].get(S.STATUS_TAG, "") for r in load(path)["records"]})
        return out

    @property
    def spooled(self) -> int:
        """Runs this process kept in the spool and has not uploaded."""
        return sum(n for _, n in self.kept)

    def line(self) -> str | None:
        """The one line that says where the spooled runs are and how to upload them; None when none are."""
        if not self.kept:
            return None
        folder = os.path.relpath(self.folder) if not os.path.relpath(self.folder).startswith("..") else self.folder
        default = not os.environ.get(SPOOL_ENV)
        what = f"{self.spooled} runs" if self.spooled else "the sweep's closing records"
        return (f"{what} could not reach {self.uri}: kept in {folder}/ "
                f"(upload: python -m harness.sync{'' if default else ' --spool ' + folder})")
