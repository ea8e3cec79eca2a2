"""End to end through the command line into a real MLflow store, read back with MlflowClient.

One suite, run against both launchers (as Hydra tests its launchers with one LauncherTestSuite):
Hydra's basic launcher (one job at a time) and lossbench's batched launcher (stacks). Then the
two are compared record by record."""
from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from conftest import harness

GRID = ["loss=mse,huber", "outliers.ratio=0,0.2", "optimizer.lr=0.05,0.5", "seed=0"]
N = 8
STEPS = 40


@pytest.fixture(scope="module", params=["basic", "batched"])
def sweep(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    uri = f"sqlite:///{tmp}/mlflow.db"
    p = harness("-m", *GRID, f"train.steps={STEPS}", f"hydra/launcher={request.param}", f"tracking.uri={uri}",
                "tracking.experiment=suite", f"hydra.sweep.dir={tmp}/multirun", cwd=tmp)
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("suite")
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    return request.param, c, runs, p


def _children(runs):
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_one_parent_and_a_child_per_job(sweep):
    _, c, runs, _ = sweep
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(_children(runs)) == N
    parent = parents[0]
    assert parent.data.tags["lossbench.kind"] == "sweep" and parent.info.status == "FINISHED"
    assert parent.data.params["sweep.loss"] == "mse,huber" and parent.data.metrics["sweep/runs"] == N
    for r in _children(runs):
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.tags["lossbench.sweep_id"] == parent.data.tags["lossbench.sweep_id"]


def test_the_mlflow_ui_opens_on_training_runs_with_a_described_sweep(sweep):
    """The experiment says it holds model-training runs (MLflow 3's UI then opens on them, not on
    its GenAI view); the parent run's description names the sweep and the command of its report;
    child runs are named by their choices and values, seed last: they sort as a table should."""
    _, c, runs, p = sweep
    exp = c.get_experiment_by_name("suite")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    note = parent.data.tags["mlflow.note.content"]
    assert parent.data.tags["lossbench.sweep_id"] in note and "python -m harness.report" in note
    names = sorted(r.data.tags["mlflow.runName"] for r in _children(runs))
    assert names[0] == "huber ratio=0 lr=0.05 steps=40 seed=00" and all(n.endswith("seed=00") for n in names)
    assert "workflowType=machine_learning" in p.stderr and "MLFLOW_DISABLE_TELEMETRY=true" in p.stderr


def test_children_carry_params_tags_and_final_metrics(sweep):
    _, c, runs, _ = sweep
    seen = set()
    for r in _children(runs):
        p, t, m = r.data.params, r.data.tags, r.data.metrics
        seen.add((p["loss.name"], p["outliers.ratio"], p["optimizer.lr"]))
        assert p["optimizer.name"] == "gd" and p["train.steps"] == str(STEPS) and p["seed"] == "0"
        assert t["lossbench.status"] in ("converged", "diverged") and len(t["lossbench.config_hash"]) == 16
        assert t["lossbench.task"] == "regression" and r.info.status == "FINISHED"
        for k in ("train/loss", "train/objective", "train/grad_norm", "test/rmse", "test/mae", "test/r2", "param_error"):
            assert k in m
        if t["lossbench.status"] == "converged":
            assert math.isfinite(m["test/rmse"])
    assert len(seen) == N


def test_curves_have_every_point(sweep):
    _, c, runs, _ = sweep
    for r in _children(runs):
        h = c.get_metric_history(r.info.run_id, "train/loss")
        if r.data.tags["lossbench.status"] == "converged":
            assert [m.step for m in h] == list(range(STEPS + 1))
            assert [m.step for m in c.get_metric_history(r.info.run_id, "test/rmse")] == [0, 10, 20, 30, 40]
        else:
            d = int(r.data.tags["lossbench.diverged_step"])
            assert max(m.step for m in h if math.isfinite(m.value)) <= d


def test_config_artifact_and_dataset_inputs(sweep):
    import yaml

    _, c, runs, _ = sweep
    r = _children(runs)[0]
    path = c.download_artifacts(r.info.run_id, "config.yaml")
    cfg = yaml.safe_load(open(path))
    assert cfg["loss"]["name"] == r.data.params["loss.name"] and "tracking" in cfg
    full = c.get_run(r.info.run_id)
    contexts = sorted(i.tags[0].value for i in full.inputs.dataset_inputs)
    assert contexts == ["test", "train"]
    assert all(i.dataset.name.startswith("linear-") for i in full.inputs.dataset_inputs)


def test_lr_too_large_is_recorded_as_diverged_not_a_crash(sweep):
    _, c, runs, p = sweep
    status = {(r.data.params["loss.name"], r.data.params["optimizer.lr"]): r.data.tags["lossbench.status"]
              for r in _children(runs)}
    assert status[("mse", "0.5")] in ("converged", "diverged")
    assert status[("mse", "0.05")] == "converged"


def test_both_launchers_write_the_same_records(tmp_path):
    """Same sweep through both launchers into one store: same params, same metrics (1e-5)."""
    uri = f"sqlite:///{tmp_path}/m.db"
    for launcher in ("basic", "batched"):
        harness("-m", *GRID, f"train.steps={STEPS}", f"hydra/launcher={launcher}", f"tracking.uri={uri}",
                f"tracking.experiment={launcher}", f"hydra.sweep.dir={tmp_path}/{launcher}", cwd=tmp_path)
    c = MlflowClient(uri)

    def records(name):
        e = c.get_experiment_by_name(name)
        out = {}
        for r in _children(c.search_runs([e.experiment_id])):
            out[tuple(sorted(r.data.params.items()))] = r
        return out

    a, b = records("basic"), records("batched")
    assert a.keys() == b.keys() and len(a) == N
    for key, ra in a.items():
        rb = b[key]
        assert ra.data.tags["lossbench.status"] == rb.data.tags["lossbench.status"]
        assert ra.data.tags["lossbench.config_hash"] == rb.data.tags["lossbench.config_hash"]
        assert ra.data.metrics.keys() == rb.data.metrics.keys()
        for m, va in ra.data.metrics.items():
            vb = rb.data.metrics[m]
            assert (math.isnan(va) and math.isnan(vb)) or abs(va - vb) <= 1e-5 * max(1.0, abs(va)), m
        ha = [x.value for x in c.get_metric_history(ra.info.run_id, "train/loss")]
        hb = [x.value for x in c.get_metric_history(rb.info.run_id, "train/loss")]
        assert len(ha) == len(hb)


def test_parquet_curves_keep_every_number(tmp_path):
    """tracking.curves=parquet: runs keep params, tags and final metrics in MLflow, and their
    curves read back (by the report's reader) equal to the curves of the default mode."""
    from harness.report.load import curves

    def read_curves(client, run, names):
        src = {run.info.run_id: run.data.tags.get("lossbench.curves")}
        out = {}
        for m in names:
            df = curves(client, [run.info.run_id], m, src)
            out[m] = (df["step"].tolist(), df["value"].tolist())
        return out

    uri = f"sqlite:///{tmp_path}/m.db"
    for mode in ("metrics", "parquet"):
        harness("-m", *GRID, f"train.steps={STEPS}", f"tracking.curves={mode}", f"tracking.uri={uri}",
                f"tracking.experiment={mode}", f"hydra.sweep.dir={tmp_path}/{mode}", cwd=tmp_path)
    c = MlflowClient(uri)
    runs = {m: {tuple(sorted(r.data.params.items())): r
                for r in _children(c.search_runs([c.get_experiment_by_name(m).experiment_id]))}
            for m in ("metrics", "parquet")}
    assert runs["metrics"].keys() == runs["parquet"].keys()
    names = ["train/loss", "train/grad_norm", "test/rmse", "param_error"]
    for key, a in runs["metrics"].items():
        b = runs["parquet"][key]
        assert "lossbench.curves" in b.data.tags and "lossbench.curves" not in a.data.tags
        assert set(a.data.metrics) == set(b.data.metrics)
        for m, v in a.data.metrics.items():
            assert (math.isnan(v) and math.isnan(b.data.metrics[m])) or abs(v - b.data.metrics[m]) <= 1e-12 * max(1, abs(v))
        ca, cb = read_curves(c, a, names), read_curves(c, b, names)
        for m in names:
            assert ca[m][0] == cb[m][0]
            assert all(abs(x - y) <= 1e-12 * max(1, abs(x)) for x, y in zip(ca[m][1], cb[m][1]))
        assert len(c.get_metric_history(b.info.run_id, "train/loss")) == 1  # only the final point


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a free local port (the client path of the writer)."""
    from mlflowserver import Server

    server = Server(tmp_path_factory.mktemp("server")).start()
    yield server.uri
    server.kill()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "batched"])
def test_sweep_into_a_real_mlflow_server(mlflow_server, tmp_path, launcher):
    import yaml

    harness("-m", "loss=mse,huber", "outliers.ratio=0,0.2", "train.steps=20", f"hydra/launcher={launcher}",
            f"tracking.uri={mlflow_server}", f"tracking.experiment=server-{launcher}",
            f"hydra.sweep.dir={tmp_path}/ms", cwd=tmp_path)
    c = MlflowClient(mlflow_server)
    runs = c.search_runs([c.get_experiment_by_name(f"server-{launcher}").experiment_id])
    kids = _children(runs)
    assert len(runs) == 5 and len(kids) == 4
    for r in kids:
        assert r.data.tags["lossbench.status"] == "converged" and "test/rmse" in r.data.metrics
        assert len(c.get_metric_history(r.info.run_id, "train/loss")) == 21
        assert yaml.safe_load(open(c.download_artifacts(r.info.run_id, "config.yaml")))["seed"] == 0
        assert sorted(i.tags[0].value for i in c.get_run(r.info.run_id).inputs.dataset_inputs) == ["test", "train"]


@pytest.mark.slow
def test_bench_runs_the_grid_end_to_end(tmp_path):
    """`python -m harness.bench` on the 540-run grid: every run lands in MLflow, phases and peak
    memory are reported (figures are for the closing notes, not asserted)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, "-m", "harness.bench", "--scales", "1", "--basic", "0", "--workdir", str(tmp_path),
                        "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (r,) = json.loads(out.read_text())
    assert r["runs"] == 540 and r["experiment"] in p.stdout and r["peak_rss_mb"] > 50
    assert {"compose", "train", "track"} <= r["phases"].keys()
    c = MlflowClient(f"sqlite:///{tmp_path}/bench.db")
    runs = c.search_runs([c.get_experiment_by_name("batched-x1").experiment_id], max_results=1000)
    assert len(_children(runs)) == 540
