"""Sweeps against a real `mlflow server` (started here on a free port, SQLite behind it), plain
(MLflow's REST calls) and as `--app-name lossbench` (a stack in one request, server_app.py):
both write the same records as the SQLite bulk path and print nothing per run; a server killed
mid-sweep loses nothing: the sweep finishes, says in one line what it kept in the spool, and
`python -m harness.sync` uploads it once, whatever the number of times it runs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from conftest import ROOT, harness
from mlflowserver import Server
from harness import schema as S
from test_tracking import MODES, SWEEP_ID, _read, _write, results  # noqa: F401 - results: a fixture

pytestmark = pytest.mark.slow


STACKS = "/api/2.0/lossbench/stacks"
CREATE = "/api/2.0/mlflow/runs/create"


@pytest.fixture(params=["rest", "app"])
def server(tmp_path, request):
    """A server of the test's own (the test kills it): plain, or with lossbench's app."""
    (tmp_path / "srv").mkdir()
    s = Server(tmp_path / "srv", app="lossbench" if request.param == "app" else None).start()
    yield s
    s.kill()


@pytest.fixture(scope="module", params=["rest", "app"])
def shared(tmp_path_factory, request):
    """A server the tests that leave it up share (one start: ~20 s here)."""
    s = Server(tmp_path_factory.mktemp("srv"), app="lossbench" if request.param == "app" else None).start()
    yield s
    s.kill()


def _parent(stderr: str) -> str:
    return re.search(r"parent run ([0-9a-f]{32})", stderr).group(1)


def _children(c: MlflowClient, parent: str) -> list:
    exp = c.get_run(parent).info.experiment_id
    return c.search_runs([exp], f"tags.`{S.PARENT_TAG}` = '{parent}'", run_view_type=ViewType.ACTIVE_ONLY,
                         max_results=5000)


GRID = ("-m", "loss=mse,huber", "optimizer.lr=0.1,50", "seed=0,1", "train.steps=12", "train.eval_every=4")


@pytest.mark.parametrize("curves", ["metrics", "parquet"])
def test_http_writes_what_sqlite_writes_and_prints_nothing_per_run(shared, tmp_path, curves):
    server = shared
    stores = {"http": server.uri, "sqlite": f"sqlite:///{tmp_path}/local.db"}
    out, runs = {}, {}
    before = server.requests(STACKS), server.requests(CREATE)
    for name, uri in stores.items():
        p = harness(*GRID, f"tracking.curves={curves}", f"tracking.uri={uri}", f"tracking.experiment={curves}", cwd=tmp_path)
        out[name] = p.stdout + p.stderr
        c, parent = MlflowClient(uri), _parent(p.stderr)
        assert c.get_run(parent).info.status == "FINISHED"
        runs[name] = (c, parent, {r.data.tags[S.HASH_TAG]: r.info.run_id for r in _children(c, parent)})
    assert "View run" not in out["http"] and "View experiment" not in out["http"]
    assert not list((tmp_path / ".lossbench-spool").glob("*"))   # nothing spooled with the server up
    stacks, creates = server.requests(STACKS) - before[0], server.requests(CREATE) - before[1]
    if server.app:   # the runs went as stacks (one POST a stack), only the parent through runs/create
        assert stacks >= 2 and creates == 1
    else:            # asked once (404), then MLflow's REST calls, a create a run
        assert stacks <= 1 and creates == 9
    (ch, ph, by_h), (cs, ps, by_s) = runs["http"], runs["sqlite"]
    assert len(by_h) == len(by_s) == 8 and set(by_h) == set(by_s)
    diverged = 0
    for h in by_h:
        a, b = (_read(c, p, ids[h], tmp_path / n) for c, p, ids, n in ((ch, ph, by_h, "h"), (cs, ps, by_s, "s")))
        for r in (a, b):   # what differs by nature between two sweeps into two stores
            r["info"].pop("duration")
            for key in (S.SWEEP_TAG, S.SOURCE_NAME_TAG):
                r["tags"].pop(key)
            r["config"] = r["config"].replace(server.uri, "URI").replace(stores["sqlite"], "URI")
        for key in a:
            assert a[key] == b[key], f"{a['info']['run_name']}: {key} differs between http and sqlite"
        assert a["info"]["status"] == "FINISHED" and len(a["inputs"]) == 2 and a["params"]
        assert (S.CONFIG_ARTIFACT, False) in a["artifacts"] and "loss:" in a["config"]
        assert (a["curves"] is None) == (curves == "metrics")
        if a["tags"][S.STATUS_TAG] == "diverged":
            diverged += 1
            assert "nan" in a["latest"].values()
    assert diverged >= 2   # mse at lr=50: NaN values went through the server too


@pytest.mark.parametrize("mode", MODES)
def test_a_stack_through_the_server_reads_back_as_the_bulk_path_wrote_it(shared, results, tmp_path, monkeypatch, mode):
    """The runs of test_tracking (+-inf values, a final value without a curve, a diverged run)
    through the server read back as the SQLite bulk path wrote them; on the app, the same
    stack sent again writes nothing twice, and a bad request is refused in one line (400)."""
    import gzip
    import json
    from dataclasses import asdict

    import requests

    from harness.tracking import Tracker
    from harness.tracking.records import build_record

    monkeypatch.chdir(tmp_path)
    rs = results[mode]
    cs, ps, ids_s = _write(f"sqlite:///{tmp_path}/local.db", mode, rs, True)
    t = Tracker(shared.uri, f"stack-{mode}")
    ph = t.start_sweep(SWEEP_ID, {S.N_RUNS_PARAM: str(len(rs))}, {}, {})
    ids_h = t.write(rs, ph, SWEEP_ID)
    assert t.spooled == 0 and len(set(ids_h)) == len(rs)
    for rh, rl in zip(ids_h, ids_s):
        a, b = _read(t.client, ph, rh, tmp_path / "h"), _read(cs, ps, rl, tmp_path / "s")
        for key in a:
            assert a[key] == b[key], f"{key} differs between the server ({'app' if shared.app else 'rest'}) and sqlite"
    url = shared.uri + STACKS
    if not shared.app:
        assert requests.get(url, timeout=10).status_code == 404
        return
    assert requests.get(url, timeout=10).json() == {"version": 1, "bulk": True}
    recs = [build_record(r, ph, SWEEP_ID, mode == "metrics", t._datasets(r)) for r in rs]
    body = {"experiment_id": t.experiment_id, "records": [
        {**{k: rec[k] for k in ("run_id", "name", "tags", "params", "points", "files", "start", "end")},
         "datasets": [[asdict(d), ctx] for d, ctx in rec["datasets"]]} for rec in recs]}
    data = gzip.compress(json.dumps(body).encode())
    for _ in range(2):   # the second time (as if the first answer were lost): nothing written twice
        r = requests.post(url, data=data, headers={"Content-Encoding": "gzip"}, timeout=60)
        assert r.status_code == 200 and r.json() == {"run_ids": [rec["run_id"] for rec in recs]}
    assert len(_children(t.client, ph)) == 2 * len(rs)
    bad = {"not json": b"{", "a run id that leaves its folder": json.dumps({**body, "records": [
               {**body["records"][0], "run_id": "../" * 10 + "ab"}]}).encode(),
           "a file outside the run": json.dumps({**body, "records": [
               {**body["records"][0], "run_id": "f" * 32, "files": {"../../x": "y"}}]}).encode(),
           "an unknown experiment": json.dumps({**body, "experiment_id": "987654"}).encode(),
           "no records": json.dumps({"experiment_id": t.experiment_id, "records": []}).encode()}
    for what, payload in bad.items():
        r = requests.post(url, data=payload, timeout=60)
        assert r.status_code == 400 and "\n" not in r.json()["error"], (what, r.status_code, r.text[:500])
    assert len(_children(t.client, ph)) == 2 * len(rs)


def test_a_server_killed_mid_sweep_loses_nothing_and_sync_uploads_once(server, tmp_path):
    grid = ("-m", "loss=mse,mae,huber", "optimizer.lr=0.05,0.1", "seed=0,1", "train.steps=200")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1"}
    sweep = subprocess.Popen([sys.executable, "-m", "harness", *grid, f"tracking.uri={server.uri}"], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    head = []
    for line in sweep.stderr:   # the parent run exists: the server goes down before a stack is written
        head.append(line)
        if "parent run" in line:
            server.kill()
            killed = time.time()
            break
    stdout, rest = sweep.communicate(timeout=600)
    stderr = "".join(head) + rest
    took = time.time() - killed
    parent = _parent(stderr)
    assert "Traceback" not in stderr and "Retrying" not in stderr and "View run" not in stdout, stderr[-3000:]
    assert re.search(r"sweep \S+ done: 12 runs", stderr), stderr[-3000:]
    said = [ln for ln in stderr.splitlines() if "could not reach" in ln]
    assert len(said) == 1, stderr[-3000:]
    n = int(re.match(r"(\d+) runs could not reach", said[0]).group(1))
    assert 4 <= n <= 12 and said[0].endswith(f"{server.uri}: kept in .lossbench-spool/ (upload: python -m harness.sync)")
    assert took < 120, f"{took:.0f} s after the kill: MLflow's own retries (~250 s) are not bounded"
    spool = tmp_path / ".lossbench-spool"
    files = sorted(spool.glob("*.pkl"))
    assert len(files) >= 3   # stacks, the sweep's closing, its description
    shutil.copytree(spool, tmp_path / "copy")

    def sync(*args):
        return subprocess.run([sys.executable, "-m", "harness.sync", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    down = sync()   # still down: said, nothing deleted, exit status 1
    assert down.returncode == 1 and sorted(spool.glob("*.pkl")) == files, down.stdout + down.stderr
    server.start()
    up = sync()
    assert up.returncode == 0, up.stdout + up.stderr
    lines = up.stdout.strip().splitlines()
    assert len(lines) == len(files) + 1 and "the spool is empty" in lines[-1], up.stdout
    assert not list(spool.glob("*.pkl"))
    c = MlflowClient(server.uri)
    kids = _children(c, parent)
    assert len(kids) == 12 and len({r.data.tags[S.HASH_TAG] for r in kids}) == 12
    assert {r.info.status for r in kids} == {"FINISHED"}
    for r in kids:   # each run whole: its params, its curves, its config.yaml
        rid = r.info.run_id
        assert r.data.params["loss.name"] in ("mse", "mae", "huber") and float(r.data.params["optimizer.lr"]) in (0.05, 0.1)
        history = c.get_metric_history(rid, "train/loss")
        assert [m.step for m in history] == list(range(201)), (rid, len(history))
        assert len(c.get_metric_history(rid, "test/rmse")) == 21
        config = Path(c.download_artifacts(rid, S.CONFIG_ARTIFACT, str(tmp_path / rid))).read_text()
        assert config.startswith(f"loss:\n  name: {r.data.params['loss.name']}\n") and f"\nseed: {r.data.params['seed']}\n" in config
    info = c.get_run(parent)
    assert info.info.status == "FINISHED" and info.data.metrics[S.SWEEP_RUNS] == 12
    assert S.NOTE_TAG in info.data.tags
    again = sync()
    assert again.returncode == 0 and "nothing to upload" in again.stdout
    for f in (tmp_path / "copy").iterdir():   # as if a sync were killed after uploading, before deleting
        shutil.copy(f, spool / f.name)
    redo = sync()
    assert redo.returncode == 0 and f"({0} runs written, {n} already there)" in redo.stdout, redo.stdout
    assert len(_children(c, parent)) == 12
    assert sweep.returncode == 0   # every run trained is kept: the sweep did its work


def test_sync_says_a_missing_spool_folder_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "harness.sync", "--spool", str(tmp_path / "none")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert p.stderr.startswith("error: --spool=") and "an existing spool folder" in p.stderr
    q = subprocess.run([sys.executable, "-m", "harness.sync"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert q.returncode == 0 and "nothing to upload" in q.stdout


def test_a_stack_cut_short_is_completed_by_sync_without_duplicates(server, tmp_path, monkeypatch, capsys):
    """The server dies while a stack's runs are being terminated (two FINISHED, two RUNNING):
    the stack is spooled with the runs it had created; sync keeps the complete ones, deletes
    the others and writes them again."""
    import threading

    from conftest import spec
    from harness import sync
    from harness.engine import train
    from harness.tracking import Tracker
    from harness.tracking import client as _client

    for key, value in _client.RETRIES.items():   # set (and restored) here, not by the Tracker for the session
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOSSBENCH_SPOOL", str(tmp_path / "spool"))
    results = train([spec("loss=mse", f"seed={s}", "train.steps=5") for s in range(4)])
    t = Tracker(server.uri, "cut")
    parent = t.start_sweep("cut", {}, {}, {})
    store = t.client._tracking_client.store
    lock, finished = threading.Lock(), []
    if server.app:   # one POST a run; the server goes down after two of them
        import mlflow.utils.rest_utils as rest

        from harness.tracking import app_client

        monkeypatch.setattr(app_client, "STACK_POINTS", 1)
        real_request = rest.http_request

        def request(creds, endpoint, method, *args, **kwargs):
            with lock:
                if endpoint == STACKS and method == "POST":
                    if len(finished) == 2:
                        server.kill()
                    out = real_request(creds, endpoint, method, *args, **kwargs)
                    finished.append(endpoint)
                    return out
            return real_request(creds, endpoint, method, *args, **kwargs)

        monkeypatch.setattr(rest, "http_request", request)
    else:            # the REST calls: finishing runs one at a time; the server goes down after two
        real = store.update_run_info

        def update(run_id, *args, **kwargs):
            with lock:
                if len(finished) == 2:
                    server.kill()
                out = real(run_id, *args, **kwargs)
                finished.append(run_id)
                return out

        monkeypatch.setattr(store, "update_run_info", update)
    ids = t.write(results, parent, "cut")
    assert len(ids) == 4 and t.spooled == 4 and len(finished) == 2
    assert t.spool_line().startswith(f"4 runs could not reach {server.uri}: kept in ")
    if server.app:
        monkeypatch.setattr(rest, "http_request", real_request)
    else:
        monkeypatch.setattr(store, "update_run_info", real)
    server.start()
    c = MlflowClient(server.uri)
    before = {r.info.run_id: r.info.status for r in _children(c, parent)}
    # a stack POST is one transaction: the runs of the two that went are whole, the others absent
    assert sorted(before.values()) == ["FINISHED", "FINISHED"] + ([] if server.app else ["RUNNING", "RUNNING"])
    capsys.readouterr()
    assert sync.main([]) == 0
    out = capsys.readouterr().out
    assert "2 written, 2 already there" in out, out
    kids = _children(c, parent)
    assert len(kids) == 4 and {r.info.status for r in kids} == {"FINISHED"}
    assert {r.info.run_id for r in kids} >= {rid for rid, st in before.items() if st == "FINISHED"}
    assert sorted(r.data.tags[S.HASH_TAG] for r in kids) == sorted(r.spec.config_hash for r in results)
    assert all(len(c.get_metric_history(r.info.run_id, "train/loss")) == 6 for r in kids)


def test_a_server_back_before_the_sweep_ends_gets_the_spool_from_the_sweep_itself(server, tmp_path, monkeypatch, capsys):
    """A stack spooled while the server is down, then the server back: the sweep's closing
    (end_sweep) uploads it first, counts it, and says nothing about a spool."""
    from conftest import spec
    from harness.engine import train
    from harness.tracking import Tracker
    from harness.tracking import client as _client

    for key, value in _client.RETRIES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOSSBENCH_SPOOL", str(tmp_path / "spool"))
    results = train([spec("loss=mse", f"seed={s}", "train.steps=5") for s in range(3)])
    t = Tracker(server.uri, "back")
    parent = t.start_sweep("back", {}, {}, {})
    server.kill()
    t0 = time.time()
    t.write(results, parent, "back")
    assert time.time() - t0 < 30, "MLflow's retries are not bounded"
    assert t.spooled == 3 and t.server_down and len(list((tmp_path / "spool").glob("*.pkl"))) == 1
    t.write(results[:1], parent, "back")   # still down: spooled at once, after one probe
    assert t.spooled == 4 and time.time() - t0 < 35
    server.start()
    assert t.spooled_outcomes() == {}   # the server answers: both files uploaded first
    assert t.spooled == 0 and not t.server_down
    capsys.readouterr()
    t.end_sweep(parent, "FINISHED", {}, {S.SWEEP_RUNS: 3})
    assert "could not reach" not in capsys.readouterr().err
    assert not list((tmp_path / "spool").glob("*.pkl"))
    c = MlflowClient(server.uri)
    kids = _children(c, parent)
    assert len(kids) == 3 and {r.info.status for r in kids} == {"FINISHED"}   # the repeat not written twice
    assert c.get_run(parent).info.status == "FINISHED"
