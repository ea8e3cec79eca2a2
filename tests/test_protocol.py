"""The tuned protocol: phase 1 tunes each loss on a validation split, phase 2 reruns it at its
chosen setting with new seeds, one sweep record (harness/protocol.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import harness
from harness.errors import ConfigError
from harness.protocol import Tuning, choose


def test_a_study_says_how_it_tunes():
    assert Tuning.of(None) is None and Tuning.of({"protocol": "shared"}) is None
    t = Tuning.of({"protocol": "tuned", "tune": {"grid": {"optimizer.lr": "0.01,0.1"}, "final_seeds": "5,6,7,8,9"}})
    assert t.keys == ("optimizer.lr",) and t.seeds == (0, 1) and t.final_seeds == (5, 6, 7, 8, 9) and t.val_size == 0.2
    for bad, key in (({"protocol": "fancy"}, "study.protocol"),
                     ({"protocol": "tuned", "tune": {"final_seeds": "1,2,3,4,5"}}, "study.tune.final_seeds"),   # reuses seed 1
                     ({"protocol": "tuned", "tune": {"final_seeds": "7,8"}}, "study.tune.final_seeds"),         # fewer than 5
                     ({"protocol": "tuned", "tune": {"val_size": 0, "final_seeds": "5,6,7,8,9"}}, "study.tune.val_size")):
        with pytest.raises(ConfigError) as e:
            Tuning.of(bad)
        assert e.value.key == key
    lines = ["loss=mse,mae", "seed=0,1,2", "optimizer.lr=0.5"]
    assert t.phase1(lines) == ["loss=mse,mae", "optimizer.lr=0.5", "seed=0,1", "dataset.val_size=0.2", "phase=tune"]
    assert t.phase1(["loss=mse"])[1] == "optimizer.lr=0.01,0.1"          # the tune grid, where the study has none
    assert t.final(["loss=mse", "optimizer.lr=0.1", "seed=0", "dataset.val_size=0.2", "phase=tune"], 7) == \
        ["loss=mse", "optimizer.lr=0.1", "seed=7", "dataset.val_size=0.0", "phase=final"]


def test_choose_prefers_fewer_divergences_then_the_best_mean():
    rows = []
    for loss, lr, seed, y in [("a", 0.1, 0, 1.0), ("a", 0.1, 1, 1.2), ("a", 1.0, 0, 0.5), ("a", 1.0, 1, np.nan),
                              ("a", 0.01, 0, 2.0), ("a", 0.01, 1, 2.0), ("b", 0.1, 0, 3.0), ("b", 0.1, 1, 3.0),
                              ("b", 1.0, 0, 2.5), ("b", 1.0, 1, 2.7)]:
        rows.append({"loss.name": loss, "optimizer.lr": lr, "seed": seed, "val/rmse": y, "phase": "tune"})
    c = choose(pd.DataFrame(rows), ["optimizer.lr"], "val/rmse", higher=False).set_index("loss.name")
    assert c.at["a", "optimizer.lr"] == 0.1            # 1.0 is best on seed 0 but diverged on seed 1
    assert c.at["b", "optimizer.lr"] == 1.0 and c.at["b", "mean"] == pytest.approx(2.6)
    hi = choose(pd.DataFrame(rows).assign(**{"val/acc": lambda d: -d["val/rmse"]}), ["optimizer.lr"], "val/acc", True)
    assert set(zip(hi["loss.name"], hi["optimizer.lr"])) == {("a", 0.1), ("b", 1.0)}


@pytest.mark.slow
def test_a_tuned_sweep_is_one_record_with_both_phases(tmp_path):
    """Phase 1 on validation splits (val/ metrics, no test metric), phase 2 at each group's
    chosen setting with new seeds, all under one parent; the choice equals `choose` on phase 1's
    records in MLflow; the report names the chosen settings."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/m.db"
    study = 'study={name:tiny,protocol:tuned,tune:{final_seeds:"10,11,12,13,14"}}'
    harness("-m", "loss=mse,mae", "optimizer.lr=0.01,0.1,1.0", "outliers.ratio=0,0.2", "train.steps=60", study,
            "hydra.sweeper.report=true", f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path}/ms", cwd=tmp_path)
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("lossbench").experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    tune = [r for r in kids if r.data.tags["lossbench.phase"] == "tune"]
    final = [r for r in kids if r.data.tags["lossbench.phase"] == "final"]
    assert len(parents) == 1 and parents[0].data.tags["lossbench.protocol"] == "tuned"
    assert len(tune) == 2 * 3 * 2 * 2 and len(final) == 2 * 2 * 5
    assert parents[0].data.params["sweep.n_runs"] == str(len(tune) + len(final))
    assert all("val/rmse" in r.data.metrics and not any(k.startswith("test/") for k in r.data.metrics) for r in tune)
    assert all("test/rmse" in r.data.metrics for r in final)
    assert {r.data.params["seed"] for r in tune} == {"0", "1"} and {r.data.params["seed"] for r in final} == {"10", "11", "12", "13", "14"}
    assert {r.data.params["dataset.val_size"] for r in tune} == {"0.2"} and {r.data.params["dataset.val_size"] for r in final} == {"0.0"}
    table = pd.DataFrame([{**{k: r.data.params[k] for k in ("loss.name", "outliers.ratio", "optimizer.lr", "seed")},
                           "val/rmse": r.data.metrics["val/rmse"]} for r in tune])
    want = choose(table, ["optimizer.lr"], "val/rmse", higher=False)
    got = {(r.data.params["loss.name"], r.data.params["outliers.ratio"], r.data.params["optimizer.lr"]) for r in final}
    assert got == set(zip(want["loss.name"], want["outliers.ratio"], want["optimizer.lr"]))
    md = next((tmp_path / "reports" / "lossbench").iterdir()).joinpath("report.md").read_text()
    assert "each loss at its own tuned setting" in md and "tuning_curves.png" in md
