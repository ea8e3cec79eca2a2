"""Sweeps started at the same instant into one store: all finish with all their runs.

Real sweeps through the command line (three at once, each several stacks, so that writes
interleave) into (a) a store file that does not exist yet, (b) an existing store with new
experiments, (c) one existing experiment, while a real `mlflow server` on the same store answers
REST requests throughout, and (d) a new PostgreSQL database. Then what each race is about, made
certain rather than likely: a dataset row that another process inserts between the writer's
read and its insert, a store locked past SQLite's busy timeout (retried), and past the retries
(one line; the stacks written stay), and a process killed while it creates the store.
"""
from __future__ import annotations

import glob
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from conftest import ROOT, harness, spec
from harness import schema as S

pytestmark = pytest.mark.slow

# 48 runs a sweep, 100 steps each (the writes are what collide), in 12 stacks
GRID = ["loss=mse,mae,huber,log_cosh", "outliers.ratio=0,0.1,0.2", "seed=0,1", "optimizer.lr=0.03,0.3",
        "train.steps=100", "hydra.launcher.memory_budget_mb=1"]
N_RUNS = 4 * 3 * 2 * 2


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1", "OMP_NUM_THREADS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` on the store, polled from a thread with REST requests (search the
    experiments, search the runs of each) every 0.2 s: each answer's status, or the error."""

    def __init__(self, uri: str, cwd: Path):
        self.port = _free_port()
        self.log = open(cwd / "server.log", "w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=cwd, env=_env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.answers: list[tuple[float, object]] = []
        self.up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        base = f"http://127.0.0.1:{self.port}/api/2.0/mlflow"
        while not self._stop.is_set():
            try:
                r = requests.post(f"{base}/experiments/search", json={"max_results": 100}, timeout=30)
                answer: object = r.status_code
                if r.status_code == 200:
                    ids = [e["experiment_id"] for e in r.json().get("experiments", [])]
                    answer = requests.post(f"{base}/runs/search", json={"experiment_ids": ids, "max_results": 50},
                                           timeout=30).status_code
            except requests.ConnectionError as e:
                answer = e if self.up.is_set() else None   # refused before it is up: starting
            except requests.RequestException as e:
                answer = e
            if answer == 200:
                self.up.set()
            if answer is not None:
                self.answers.append((time.monotonic(), answer))
            time.sleep(0.2)

    def failures(self, since: float) -> list:
        return [a for t, a in self.answers if t >= since and a != 200]

    def answered(self, since: float) -> int:
        return sum(1 for t, a in self.answers if t >= since and a == 200)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)   # its own session: the server and its workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _start_sweeps(cwd: Path, uri: str, experiments: list[str]) -> list:
    """The sweeps started together, one per experiment name."""
    procs = []
    for i, exp in enumerate(experiments):
        err = open(cwd / f"sweep{i}.err", "w+")
        p = subprocess.Popen([sys.executable, "-m", "harness", "-m", *GRID, f"tracking.uri={uri}",
                              f"tracking.experiment={exp}", f"hydra.sweep.dir={cwd}/multirun/{i}"],
                             cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        procs.append((p, err))
    return procs


def _wait(procs) -> list[tuple[int, str]]:
    """(exit status, stderr) of each sweep, once all have ended."""
    out = []
    for p, err in procs:
        rc = p.wait(timeout=900)
        err.seek(0)
        out.append((rc, err.read()))
        err.close()
    return out


def _check(uri: str, experiments: list[str], results: list[tuple[int, str]]) -> None:
    """Every sweep exited 0 and its parent run holds all its runs, each config once."""
    c = MlflowClient(uri)
    for exp, (rc, err) in zip(experiments, results):
        assert rc == 0, f"a sweep into {exp!r} failed ({rc}):\n{err[-3000:]}"
        parent = re.search(r"parent run (\w+)", err).group(1)
        eid = c.get_experiment_by_name(exp).experiment_id
        runs = c.search_runs([eid], filter_string=f"tags.`{S.PARENT_TAG}` = '{parent}'", max_results=10000)
        hashes = [r.data.tags[S.HASH_TAG] for r in runs]
        assert len(runs) == N_RUNS and len(set(hashes)) == N_RUNS, (exp, len(runs), len(set(hashes)))
        assert c.get_run(parent).info.status == "FINISHED"
        assert {r.info.status for r in runs} == {"FINISHED"}


CASES = {
    "new_store": [],                           # the file does not exist when they start
    "new_experiments": ["seed"],               # the store exists; their experiments do not
    "one_existing_experiment": ["shared"],     # all three into one experiment that exists
}
EXPERIMENTS = {"new_store": ["a", "a", "a2"], "new_experiments": ["b", "b", "b2"],
               "one_existing_experiment": ["shared", "shared", "shared"]}


@pytest.mark.parametrize("case", list(CASES))
def test_three_sweeps_at_once_all_finish_with_all_their_runs(tmp_path, case):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for exp in CASES[case]:   # the store (and experiment) made before, by a one-run sweep
        harness("-m", "loss=mse", "train.steps=5", f"tracking.uri={uri}", f"tracking.experiment={exp}",
                f"hydra.sweep.dir={tmp_path}/multirun/seed", cwd=tmp_path)
    server, procs = None, []
    try:
        if case == "new_store":
            # the sweeps race each other to create it; the server opens what they made, once it
            # exists (started before, it would create the store itself: its own race, not
            # theirs), and its start (15-40 s) may end after theirs: then it reads what they wrote
            assert not os.path.exists(tmp_path / "mlflow.db")
            t0 = time.monotonic()
            procs = _start_sweeps(tmp_path, uri, EXPERIMENTS[case])
            while not os.path.exists(tmp_path / "mlflow.db") and any(p.poll() is None for p, _ in procs):
                time.sleep(0.05)
            server = Server(uri, tmp_path)
        else:   # answering before the sweeps start, polled while they run
            server = Server(uri, tmp_path)
            assert server.up.wait(180), (tmp_path / "server.log").read_text()[-3000:]
            t0 = time.monotonic()
            procs = _start_sweeps(tmp_path, uri, EXPERIMENTS[case])
        results = _wait(procs)
        t1 = time.monotonic()
        assert server.up.wait(180), (tmp_path / "server.log").read_text()[-3000:]
        time.sleep(1.0)
        if case != "new_store":
            assert sum(1 for t, a in server.answers if t0 <= t <= t1 and a == 200) >= 5
        assert server.answered(t0) >= 1 and not server.failures(t0), server.failures(t0)[:5]
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
        if server is not None:
            server.stop()
    _check(uri, EXPERIMENTS[case], results)
    assert not glob.glob(f"{tmp_path}/mlflow.db.creating-*")


def test_three_sweeps_at_once_into_a_new_postgresql_database(tmp_path, postgres_store):
    """The same race on a server database: its tables created by whichever sweep takes the
    advisory lock first (before: MLflow's migrations run three times at once), its experiment
    and data sets by all three."""
    t0 = time.monotonic()
    results = _wait(_start_sweeps(tmp_path, postgres_store, ["p", "p", "p2"]))
    _check(postgres_store, ["p", "p", "p2"], results)
    print(f"3 sweeps x {N_RUNS} runs into a new PostgreSQL database: {time.monotonic() - t0:.1f} s")


# -- the races, made certain -------------------------------------------------------------------
def _one_run(tmp_path, monkeypatch):
    from harness.engine import train
    from harness.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    t = Tracker(f"sqlite:///{tmp_path}/m.db", "e")
    return t, train([spec("loss=mse", "train.steps=5")])


def _write_while(t, results, hold) -> tuple[list, BaseException | None]:
    """t.write(results) in a thread, while `hold(insert_seen)` runs here: insert_seen is set
    when the writer issues an INSERT (it has read what it reads before writing)."""
    from sqlalchemy import event

    seen, out = threading.Event(), {}

    def on_execute(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT"):
            seen.set()

    event.listen(t._sql.engine, "before_cursor_execute", on_execute)

    def run():
        try:
            out["ids"] = t.write(results, None, "s")
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out["error"] = e

    th = threading.Thread(target=run)
    try:
        th.start()
        hold(seen)
        th.join(timeout=120)
    finally:
        event.remove(t._sql.engine, "before_cursor_execute", on_execute)
    return out.get("ids", []), out.get("error")


def test_dataset_rows_another_process_inserted_meanwhile_are_used(tmp_path, monkeypatch):
    """Another connection holds the write lock; the writer reads the experiment's datasets
    (none), then waits on its insert; the other inserts the same dataset rows and commits. The
    writer's runs must then point to those rows (before: UNIQUE constraint failed: datasets)."""
    t, results = _one_run(tmp_path, monkeypatch)
    datasets = [d for d, _ in t._datasets(results[0])]
    other = sqlite3.connect(tmp_path / "m.db", timeout=60, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")   # before the writer starts: it reads, then waits on its insert

    def hold(seen):
        assert seen.wait(60), "the writer never reached its insert"
        time.sleep(0.3)
        for d in datasets:
            other.execute("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type, "
                          "dataset_source, dataset_schema, dataset_profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (f"other{d.digest}", int(t.experiment_id), d.name, d.digest, d.source_type, d.source,
                           d.schema, d.profile))
        other.execute("COMMIT")

    ids, error = _write_while(t, results, hold)
    other.close()
    assert error is None, f"{type(error).__name__}: {error}"
    run = t.client.get_run(ids[0])
    assert sorted(i.dataset.digest for i in run.inputs.dataset_inputs) == sorted(d.digest for d in datasets)
    con = sqlite3.connect(tmp_path / "m.db")
    uuids = {r[0] for r in con.execute("SELECT source_id FROM inputs WHERE destination_id = ?", (ids[0],))}
    assert uuids == {f"other{d.digest}" for d in datasets}
    assert con.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == len(datasets)


def test_a_store_locked_past_the_busy_timeout_is_retried(tmp_path, monkeypatch):
    """Another connection holds the write lock for 22 s, past the 20 s that MLflow's sessions
    wait on SQLite: the writer's try fails with `database is locked` and is retried after the
    lock goes (before: the stack was lost)."""
    t, results = _one_run(tmp_path, monkeypatch)
    other = sqlite3.connect(tmp_path / "m.db", timeout=60, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    def hold(seen):
        assert seen.wait(60), "the writer never reached its insert"
        time.sleep(22)
        other.execute("COMMIT")

    t0 = time.monotonic()
    ids, error = _write_while(t, results, hold)
    other.close()
    assert error is None, f"{type(error).__name__}: {error}"
    assert time.monotonic() - t0 > 20 and len(ids) == 1
    assert t.client.get_run(ids[0]).info.status == "FINISHED"


KILL_AT_WAL_BYTES = (450_000, 480_000, 500_000, 550_000)   # points inside MLflow's migrations


def test_a_process_killed_while_creating_the_store_leaves_none_or_a_whole_one(tmp_path):
    """A process creating a new store is killed (-9) at points inside MLflow's ~100 migrations
    (by the size of the database's write-ahead log); a later sweep must open the store and
    finish (before: a store left half-migrated, every later open failing on
    `duplicate column name`, `table _alembic_tmp_... already exists`)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code = f"from harness.tracking import Tracker; Tracker({uri!r}, 'e')"
    for limit in KILL_AT_WAL_BYTES:
        for p in glob.glob(f"{tmp_path}/mlflow.db*"):
            os.unlink(p)
        p = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while p.poll() is None and max([os.path.getsize(w) for w in glob.glob(f"{tmp_path}/mlflow.db*-wal")
                                        if os.path.exists(w)] or [0]) < limit:
            time.sleep(0.002)
        assert p.poll() is None, "the creation ended before the kill point"
        p.send_signal(signal.SIGKILL)
        p.wait()
        if limit != KILL_AT_WAL_BYTES[-1]:   # the next process opens the store
            r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True)
        else:                                # ... or a whole run goes into it
            r = harness("loss=mse", "train.steps=5", f"tracking.uri={uri}", "tracking.experiment=e", cwd=tmp_path,
                        check=False)
        assert r.returncode == 0, f"killed at {limit} bytes of WAL, the next open failed:\n{r.stderr[-2000:]}"
        assert not glob.glob(f"{tmp_path}/mlflow.db.creating-*")
    assert MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("e").experiment_id])


def test_a_write_that_fails_for_good_keeps_the_stacks_written_and_says_why_in_one_line(tmp_path, monkeypatch):
    """The store stays locked past the retries (here cut to one try: WITHIN_S): the stack that
    cannot be written raises one line naming the store and the cause; the stack written before
    it stays in the store, and the sweep's loop hands both back (run_stacks)."""
    from harness.sweep import SweepContext, run_stacks
    from harness.tracking import Tracker, store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(store, "WITHIN_S", 1.0)
    uri = f"sqlite:///{tmp_path}/m.db"
    t = Tracker(uri, "e")
    specs = [spec("loss=mse", f"seed={s}", "train.steps=5") for s in range(3)]
    parent = t.start_sweep("sw", {}, {}, {})
    released = threading.Event()

    def lock_after_the_first_stack():
        con = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        while con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] < 2:   # the parent and one run
            time.sleep(0.005)
        con.execute("BEGIN IMMEDIATE")
        released.wait(120)
        con.execute("COMMIT")
        con.close()

    th = threading.Thread(target=lock_after_the_first_stack)
    th.start()
    try:
        written, error = run_stacks(specs, SweepContext("sw", parent, t), [[0], [1], [2]])
    finally:
        released.set()
        th.join()
    assert sorted(written) == [0]
    assert isinstance(error, store.StoreError) and "\n" not in str(error)
    assert str(error) == f"writing 1 runs in {uri} failed after 1 try: OperationalError: database is locked"
    runs = t.client.search_runs([t.experiment_id], filter_string=f"tags.`{S.PARENT_TAG}` = '{parent}'")
    assert [r.info.run_id for r in runs] == [written[0].run_id]
