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
