"""The engine: one code path for one run and for a stack of many."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import spec
from harness.engine import train
from harness.stacking import plan

GRID = [(loss, lr, ratio, seed, w)
        for loss in ("mse", "huber", "mae")
        for lr, ratio, seed, w in [(0.01, 0.0, 0, 0.0), (0.1, 0.2, 0, 0.01), (0.3, 0.1, 1, 0.001), (0.1, 0.0, 2, 0.0)]]


def _specs(dtype="float64", steps=60, extra=()):
    return [spec(f"loss={loss}", f"optimizer.lr={lr}", f"outliers.ratio={ratio}", f"seed={seed}",
                 "regularization.kind=l2", f"regularization.weight={w}", f"train.steps={steps}",
                 f"train.dtype={dtype}", "dataset.n_train=300", "dataset.n_test=100", *extra)
            for loss, lr, ratio, seed, w in GRID]


def _same(a, b, tol):
    assert a.status == b.status and a.diverged_step == b.diverged_step
    assert a.curves.keys() == b.curves.keys()
    for k in a.curves:
        np.testing.assert_array_equal(a.curves[k][0], b.curves[k][0])
        np.testing.assert_allclose(a.curves[k][1], b.curves[k][1], rtol=tol, atol=tol, err_msg=k, equal_nan=True)


@pytest.mark.parametrize("dtype, tol", [("float64", 0.0), ("float32", 0.0)])  # bit-identical (see Layout)
def test_stack_equals_runs_one_at_a_time(dtype, tol):
    specs = _specs(dtype)
    by_loss = {}
    for s in specs:
        by_loss.setdefault(s.loss["name"], []).append(s)
    for group in by_loss.values():
        stacked = train(group)
        for s, r in zip(group, stacked):
            (alone,) = train([s])
            _same(r, alone, tol)


def test_same_config_and_seed_give_identical_curves():
    a = train(_specs("float32")[:4])
    b = train(_specs("float32")[:4])
    for x, y in zip(a, b):
        _same(x, y, 0.0)


def test_different_seeds_give_different_data():
    a, b = train([spec("seed=0", "train.steps=5")]), train([spec("seed=1", "train.steps=5")])
    assert a[0].curves["train/loss"][1][0] != b[0].curves["train/loss"][1][0]


def test_diverging_run_does_not_disturb_its_neighbours():
    calm = [spec("optimizer.lr=0.1", f"seed={s}", "train.steps=80", "train.dtype=float64") for s in (0, 1)]
    wild = spec("optimizer.lr=5.0", "seed=0", "train.steps=80", "train.dtype=float64")
    results = train(calm[:1] + [wild] + calm[1:])
    assert results[1].status == "diverged"
    d = results[1].diverged_step
    assert d is not None and 0 < d < 80
    steps, values = results[1].curves["train/loss"]
    assert np.isfinite(values[steps <= d - 1]).all()             # its curve up to that point,
    assert np.isnan(values[steps > d]).all() and len(steps) == 81  # no value after it
    # no final value, but the data's own facts (its stability edge lr*)
    assert all(np.isnan(v) for k, v in results[1].final.items() if not k.startswith("data/") and k != "train/steps_run")
    assert results[1].final["train/steps_run"] == d and results[0].final["train/steps_run"] == 80   # the steps it took
    assert results[1].final["data/lr_edge"] == results[0].final["data/lr_edge"] > 0
    for s, r in zip(calm, (results[0], results[2])):
        (alone,) = train([s])
        _same(r, alone, 1e-9)
        assert r.status == "converged"


def test_memory_budget_split_gives_the_same_results():
    specs = _specs("float64", steps=30)
    stacks = plan(specs, budget_mb=0.05)   # tiny: forces many stacks
    assert len(stacks) > 3 and sorted(i for s in stacks for i in s) == list(range(len(specs)))
    split = {}
    for st in stacks:
        for i, r in zip(st, train([specs[i] for i in st])):
            split[i] = r
    whole = {}
    for st in plan(specs, budget_mb=4096):
        for i, r in zip(st, train([specs[i] for i in st])):
            whole[i] = r
    for i in range(len(specs)):
        _same(split[i], whole[i], 1e-9)


def test_plan_groups_by_what_must_match():
    specs = [spec(f"loss={loss}", f"model={model}", f"dataset={ds}", f"optimizer.lr={lr}", "train.steps=5")
             for loss in ("mse", "huber") for model in ("linear", "mlp") for ds in ("linear", "diabetes")
             for lr in (0.01, 0.1)]
    stacks = plan(specs, budget_mb=4096)
    assert len(stacks) == 8  # loss x model x dataset; learning rates share a stack
    for st in stacks:
        keys = {(specs[i].loss["name"], specs[i].model["name"], specs[i].dataset["name"]) for i in st}
        assert len(keys) == 1 and len(st) == 2


def test_mlp_trains_and_param_error_only_for_linear():
    (mlp,) = train([spec("model=mlp", "dataset=friedman1", "optimizer=adam", "train.steps=200")])
    assert mlp.status == "converged" and "param_error" not in mlp.final
    assert mlp.final["test/r2"] > 0.5
    (lin,) = train([spec("train.steps=200")])
    assert lin.final["param_error"] < 0.2
