"""Options of one choice in a sweep over several (harness/conditional.py): `loss.delta` applies
to Huber and is dropped from the losses that have no delta, in the sweeper and on the CLI."""
from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import harness
from harness.conditional import check, defer_options, prune
from harness.errors import ConfigError

DEFAULTS = {"loss": "mse", "dataset": "linear", "model": "linear", "optimizer": "gd"}


def _grid(*axes):
    jobs = [[]]
    for axis in axes:
        jobs = [j + [v] for j in jobs for v in axis]
    return jobs


def test_an_option_is_kept_only_where_the_choice_has_it():
    jobs = _grid(["loss=mse", "loss=mae", "loss=huber"], ["loss.delta=0.5", "loss.delta=1", "loss.delta=2"], ["seed=0", "seed=1"])
    out = prune(jobs, DEFAULTS)
    assert len(out) == 2 * (1 + 1 + 3)
    assert ["loss=mse", "seed=0"] in out and ["loss=huber", "loss.delta=2", "seed=1"] in out
    assert not any("loss.delta=0.5" in j for j in out if "loss=huber" not in j)
    assert out == [list(j) for j in dict.fromkeys(map(tuple, out))]  # no duplicates, order kept


def test_options_of_several_groups_and_the_primary_choice():
    jobs = _grid(["model=linear", "model=mlp"], ["model.width=16", "model.width=64"], ["optimizer.momentum=0.9"])
    out = prune(jobs, {**DEFAULTS, "optimizer": "momentum"})
    assert out == [["model=linear", "optimizer.momentum=0.9"], ["model=mlp", "model.width=16", "optimizer.momentum=0.9"],
                   ["model=mlp", "model.width=64", "optimizer.momentum=0.9"]]
    # an option no job's choice has stays, and check() refuses it in one line
    bad = prune(_grid(["loss=mse", "loss=mae"], ["loss.delta=0.5"]), DEFAULTS)
    assert bad == [["loss=mse", "loss.delta=0.5"], ["loss=mae", "loss.delta=0.5"]]
    with pytest.raises(ConfigError, match="loss=mse takes no options"):
        check(bad, DEFAULTS)
    with pytest.raises(ConfigError, match="model=mlp takes"):
        check([["model=mlp", "model.delta=1"]], DEFAULTS)
    assert prune([["+loss.extra=1", "loss=mse"]], DEFAULTS) == [["+loss.extra=1", "loss=mse"]]  # adding is explicit


def test_a_fixed_option_is_deferred_only_in_a_sweep_over_its_group():
    assert defer_options(["-m", "loss=mse,huber", "loss.delta=0.5"]) == ["-m", "loss=mse,huber", "loss.delta=choice(0.5)"]
    assert defer_options(["-m", "+experiment=robust_regression", "loss.delta=2"])[-1] == "loss.delta=choice(2)"
    assert defer_options(["-m", "loss=huber", "loss.delta=0.5"])[-1] == "loss.delta=0.5"
    assert defer_options(["loss=huber", "loss.delta=0.5"])[-1] == "loss.delta=0.5"
    assert defer_options(["-m", "loss=mse,huber", "loss.delta=0.5,1"])[-1] == "loss.delta=0.5,1"


@pytest.mark.parametrize("launcher", ["basic", "batched"])
def test_sweep_huber_deltas_beside_mse(tmp_path, launcher):
    uri = f"sqlite:///{tmp_path}/m.db"
    harness("-m", "loss=mse,mae,huber", "loss.delta=0.5,2", "seed=0,1", "train.steps=20", f"hydra/launcher={launcher}",
            f"tracking.uri={uri}", "tracking.experiment=cond", f"hydra.sweep.dir={tmp_path}/ms", cwd=tmp_path)
    c = MlflowClient(uri)
    runs = [r for r in c.search_runs([c.get_experiment_by_name("cond").experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    got = sorted((r.data.params["loss.name"], r.data.params.get("loss.delta"), r.data.params["seed"]) for r in runs)
    assert got == sorted([(l, d, s) for s in "01" for l, d in [("mse", None), ("mae", None), ("huber", "0.5"), ("huber", "2.0")]])


def test_cli_refuses_an_option_the_choice_lacks_in_one_line(tmp_path):
    for args in (["loss=mse", "loss.delta=0.5"], ["-m", "loss=mse,mae", "loss.delta=0.5"]):
        p = harness(*args, f"tracking.uri=sqlite:///{tmp_path}/m.db", f"hydra.sweep.dir={tmp_path}/ms",
                    f"hydra.run.dir={tmp_path}/out", cwd=tmp_path, check=False)
        assert p.returncode == 2 and p.stderr.strip().splitlines() == ["error: loss.delta='0.5': loss=mse takes no options"], p.stderr
