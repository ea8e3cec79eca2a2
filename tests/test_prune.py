"""Successive halving inside a stack (train.prune=halving, harness/prune.py): the race, what a
pruned run records, that the runs that go on are untouched, and the report's view of them."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from conftest import harness, spec
from harness import prune as P
from harness.engine import train
from harness.errors import ConfigError
from harness.schema import CONVERGED, DIVERGED, PRUNED, STEPS_RUN

STEPS = 60
# A test grid on convex MSE with GD, clean data: 3 seeds (3 data groups, the races) x 5 learning
# rates x 2 weights; lr 3.0 diverges, the others race and none reaches the optimum in 60 steps, so
# the order at a rung is the order at the end. Not runs that reach one optimum: their final test
# values differ by float noise (1e-6), which no score at a rung can foresee; nor outliers: there
# MSE's best test/rmse is its slowest run (stopping early is robust), which a race on a training
# or validation score stops first (on the 540-run grid MAE's best is such a run). Rungs 6, 18, 54.
GRID = dict(lr=(0.002, 0.005, 0.01, 0.02, 3.0), weight=(0.0, 0.001), ratio=(0.0,), seed=(0, 1, 2))
PRUNE = ("train.prune=halving", "train.prune_every=6", "train.prune_eta=3")


def _specs(*extra: str, loss: str = "mse"):
    out = []
    for lr, w, ratio, seed in itertools.product(*GRID.values()):
        out.append(spec(f"loss={loss}", "optimizer=gd", f"optimizer.lr={lr}", "regularization.kind=l2",
                        f"regularization.weight={w}", f"outliers.ratio={ratio}", f"seed={seed}",
                        f"train.steps={STEPS}", "train.eval_every=6", *extra))
    return out


@pytest.fixture(scope="module")
def full():
    return train(_specs())


@pytest.fixture(scope="module")
def pruned():
    return train(_specs(*PRUNE))


def _key(r):
    s = r.spec
    return (s.optimizer["lr"], s.regularization["weight"], s.outliers["ratio"], s.seed)


def test_the_race_keeps_the_best_share_ties_and_one_at_least():
    live = np.array([True, True, True, True, True, True, False])
    score = np.array([5.0, 1.0, 3.0, np.nan, 2.0, 4.0, 0.0])    # slot 6 stopped earlier: not in the race
    assert P.survivors(score, live, 1 / 3, higher=False).tolist() == [False, True, False, False, True, False, False]
    assert P.survivors(score, live, 1 / 3, higher=True).tolist() == [True, False, False, False, False, True, False]
    tied = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 0.0])           # a run tied with the cut goes on
    assert P.survivors(tied, live, 1 / 3, higher=False).tolist() == [True, True, True, False, False, False, False]
    # within prune_tie (relative) of the cut is a tie: a float32 ulp apart (runs at one optimum)
    # goes on, a real difference does not; an infinite cut (NaN scores) stays well defined
    ulp = np.array([0.0290377159, 0.0290377177, 0.0300, 0.0310, 0.0320, 0.0330, 0.0])
    assert P.survivors(ulp, live, 1 / 6, higher=False, tie=1e-6).tolist() == [True, True] + [False] * 5
    assert P.survivors(ulp, live, 1 / 6, higher=False, tie=0.0).tolist() == [True] + [False] * 6
    assert P.survivors(-ulp, live, 1 / 6, higher=True, tie=1e-6).tolist() == [True, True] + [False] * 5
    nan = np.array([1.0, np.nan, np.nan, np.nan, np.nan, np.nan, 0.0])
    assert P.survivors(nan, live, 1 / 3, higher=False, tie=1e-6).tolist() == [True] * 6 + [False]
    one = np.array([True] + [False] * 6)
    assert P.survivors(score, one, 0.01, higher=False).tolist() == one.tolist()
    assert P.rungs({"prune_every": 30, "prune_eta": 3.0, "steps": 300}) == [30, 90, 270]
    assert P.rungs({"prune_every": 10, "prune_eta": 1.2, "steps": 16}) == [10, 12, 14]


def test_pruning_never_stops_the_eventual_best_run(full, pruned):
    """The best run of the grid by test/rmse (each data group's, and the grid's) goes on to the end
    and ends bit for bit where it ends unpruned; runs were pruned, run-steps were saved."""
    by_key = {_key(r): r for r in pruned}
    ok = [r for r in full if r.status == CONVERGED]
    best = min(ok, key=lambda r: r.final["test/rmse"])
    per_group = {}
    for r in ok:
        g = (r.spec.outliers["ratio"], r.spec.seed)
        if g not in per_group or r.final["test/rmse"] < per_group[g].final["test/rmse"]:
            per_group[g] = r
    for r in [best, *per_group.values()]:
        p = by_key[_key(r)]
        assert p.status == CONVERGED and p.final[STEPS_RUN] == STEPS
        assert p.final["test/rmse"] == r.final["test/rmse"]
    n_pruned = sum(r.status == PRUNED for r in pruned)
    assert n_pruned >= len(pruned) / 2
    spent, unpruned = (sum(r.final[STEPS_RUN] for r in rs) for rs in (pruned, full))
    assert spent < 0.5 * unpruned
    assert [r.status for r in pruned if r.status == DIVERGED] == [r.status for r in full if r.status == DIVERGED]


def test_pruned_runs_keep_their_curves_so_far_and_the_others_are_untouched(full, pruned):
    rungs = P.rungs(pruned[0].spec.train)
    assert rungs == [6, 18, 54]
    by_key = {_key(r): r for r in full}
    for p in pruned:
        f = by_key[_key(p)]
        if p.status == PRUNED:
            s = p.pruned_step
            assert s in rungs and p.final[STEPS_RUN] == s and p.diverged_step is None
            st, v = p.curves["test/rmse"]
            assert st[-1] == s and np.isfinite(v).all()
            fs, fv = f.curves["test/rmse"]
            # its curve up to the rung is the unpruned run's, and its final values are those at the rung
            np.testing.assert_array_equal(v, fv[fs <= s])
            assert p.final["test/rmse"] == fv[fs == s][0]
            lt, lv = p.curves["train/loss"]
            assert lt[-1] == s and len(lt) == s + 1
        else:   # a run that goes on computes exactly what it computes unpruned
            assert p.status == f.status
            for name, (st, v) in f.curves.items():
                ps, pv = p.curves[name]
                if name == "test/rmse" or name == "train/loss":
                    np.testing.assert_array_equal(pv, v)
            assert p.final["test/rmse"] == f.final["test/rmse"] or p.status == DIVERGED
    # the race is within a data group: in each group the runs pruned at the first rung are its worst
    for (ratio, seed) in itertools.product(GRID["ratio"], GRID["seed"]):
        g = [p for p in pruned if p.spec.outliers["ratio"] == ratio and p.spec.seed == seed and p.status != DIVERGED]
        first = [p for p in g if p.pruned_step == rungs[0]]
        assert len(g) - len(first) == math.ceil(len(g) / 3)
        at = lambda p: p.curves["train/objective"][1][list(p.curves["train/objective"][0]).index(rungs[0])]
        assert max(at(p) for p in g if p not in first) <= min(at(p) for p in first)


def test_compacted_and_masked_stacks_agree(pruned):
    masked = train(_specs(*PRUNE, "train.prune_compact=false"))
    for a, b in zip(pruned, masked):
        assert (a.status, a.pruned_step, a.final[STEPS_RUN]) == (b.status, b.pruned_step, b.final[STEPS_RUN])
        np.testing.assert_allclose(a.final["test/rmse"], b.final["test/rmse"], rtol=1e-6)


def test_without_pruning_the_config_is_unchanged():
    s = spec("loss=mse")
    assert not any(k.startswith("prune") for k in s.train)   # the config hash resume matches stays
    assert spec("loss=mse", "train.prune=halving").train["prune_metric"] == "train/objective"
    assert spec("loss=mse", "train.prune=halving", "dataset.val_size=0.2").train["prune_metric"] == "val/rmse"


@pytest.mark.parametrize("args,key", [
    (["train.prune=asha"], "train.prune"),
    (["train.prune=halving", "train.prune_keep=1.5"], "train.prune_keep"),
    (["train.prune=halving", "train.prune_eta=1"], "train.prune_eta"),
    (["train.prune=halving", "train.prune_tie=-0.1"], "train.prune_tie"),
    (["train.prune=halving", "train.prune_race=seed"], "train.prune_race"),
    (["train.prune=halving", "train.prune_every=300"], "train.prune_every"),
    (["train.prune=halving", "train.prune_metric=test/rmse"], "train.prune_metric"),
    (["train.prune=halving", "train.prune_metric=val/rmse"], "train.prune_metric"),
    (["train.prune=halving", "train.prune_metric=val/bogus", "dataset.val_size=0.2"], "train.prune_metric"),
])
def test_bad_prune_options_are_one_line(args, key):
    with pytest.raises(ConfigError) as e:
        spec("loss=mse", *args)
    assert e.value.line().startswith(f"error: {key}=")


def test_a_pruned_sweep_through_the_command_line_and_its_report(tmp_path, store):
    """Tags, curves and counts in a real store; the report counts pruned runs and leaves them out."""
    from mlflow.tracking import MlflowClient

    from harness.report import build_report
    p = harness("-m", "loss=mse,huber", "optimizer=gd", "optimizer.lr=0.01,0.1,0.5", "regularization.kind=l2",
                "regularization.weight=0,0.01", "seed=0,1", "train.steps=40", "train.eval_every=5", *PRUNE[:1],
                "train.prune_every=5", "train.prune_eta=2", "train.prune_keep=0.5", f"tracking.uri={store}",
                f"hydra.sweep.dir={tmp_path}/s", cwd=tmp_path)
    c = MlflowClient(store)
    e = c.get_experiment_by_name("lossbench")
    rs = c.search_runs([e.experiment_id], max_results=1000)
    kids = [r for r in rs if "mlflow.parentRunId" in r.data.tags]
    parent = next(r for r in rs if "mlflow.parentRunId" not in r.data.tags)
    pr = [r for r in kids if r.data.tags["lossbench.status"] == PRUNED]
    assert len(kids) == 24 and len(pr) >= 12
    assert f"{len(pr)} pruned" in p.stderr
    for r in pr:
        s = int(r.data.tags["lossbench.pruned_step"])
        assert s in (5, 10, 20) and r.data.metrics[STEPS_RUN] == s
        h = c.get_metric_history(r.info.run_id, "test/rmse")
        assert max(m.step for m in h) == s and len(h) == s // 5 + 1
        assert max(m.step for m in c.get_metric_history(r.info.run_id, "train/loss")) == s
    steps = sum(r.data.metrics[STEPS_RUN] for r in kids)
    assert parent.data.metrics["sweep/pruned"] == len(pr) and parent.data.metrics["sweep/steps_run"] == steps
    assert steps < 24 * 40

    folder = build_report(store, "lossbench")
    runs = pd.read_csv(f"{folder}/runs.csv")
    assert (runs["status"] == PRUNED).sum() == len(pr) and runs.loc[runs["status"] == PRUNED, "test/rmse"].notna().all()
    summ = pd.read_csv(f"{folder}/summary.csv")
    assert summ["n_pruned"].sum() == len(pr)
    # every mean is over runs trained to the end: a group's n counts its converged runs only
    done = runs[runs["status"] == CONVERGED]
    n = done.groupby(["loss.name", "optimizer.lr", "regularization.weight"]).size()
    got = summ.set_index(["loss.name", "optimizer.lr", "regularization.weight"])["test/rmse n"]
    assert (got.reindex(n.index) == n).all() and got.drop(n.index).fillna(0).eq(0).all()
    text = open(f"{folder}/index.md").read() if (folder / "index.md").exists() else open(f"{folder}/index.html").read()
    assert f"{len(pr)} pruned" in text and "run-steps" in text


def test_the_tuned_protocol_prunes_its_first_phase_only():
    from harness.protocol import Tuning, choose

    t = Tuning.of({"protocol": "tuned", "tune": {"final_seeds": "5,6,7,8,9", "prune": True}})
    assert t.phase1(["loss=mse"])[-4:] == ["train.prune=halving", "seed=0,1", "dataset.val_size=0.2", "phase=tune"]
    assert t.final(["loss=mse", "train.prune=halving", "seed=0", "phase=tune"], 5) == \
        ["loss=mse", "seed=5", "dataset.val_size=0.0", "phase=final"]
    assert "train.prune=halving" not in Tuning.of({"protocol": "tuned", "tune": {"final_seeds": "5,6,7,8,9"}}).phase1(["loss=mse"])
    with pytest.raises(ConfigError) as e:
        Tuning.of({"protocol": "tuned", "tune": {"final_seeds": "5,6,7,8,9", "prune": "yes"}})
    assert e.value.key == "study.tune.prune"
    # a pruned run's value (at its rung) does not count, nor as a divergence; all pruned: last
    rows = [("a", 0.1, 0, 1.0, "converged"), ("a", 0.1, 1, 1.2, "converged"), ("a", 1.0, 0, 0.5, "pruned"),
            ("a", 1.0, 1, 2.0, "converged"), ("a", 0.01, 0, 0.1, "pruned"), ("a", 0.01, 1, 0.1, "pruned")]
    df = pd.DataFrame(rows, columns=["loss.name", "optimizer.lr", "seed", "val/rmse", "status"])
    c = choose(df, ["optimizer.lr"], "val/rmse", higher=False)
    assert c["optimizer.lr"].tolist() == [0.1] and c["n_diverged"].tolist() == [0]
    assert choose(df[df["optimizer.lr"] != 0.1], ["optimizer.lr"], "val/rmse", False)["optimizer.lr"].tolist() == [1.0]


def test_a_tuned_sweep_with_pruning(tmp_path, store):
    """Phase 1 pruned on its validation score, phase 2 unpruned at settings chosen among runs
    trained to the end."""
    from mlflow.tracking import MlflowClient

    study = 'study={name:tiny,protocol:tuned,tune:{final_seeds:"10,11,12,13,14",prune:true}}'
    harness("-m", "loss=mse", "optimizer.lr=0.003,0.01,0.03,0.1,0.3,1.0", "train.steps=40", "train.prune_every=5",
            study, f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path}/ms", cwd=tmp_path)
    c = MlflowClient(store)
    kids = [r for r in c.search_runs([c.get_experiment_by_name("lossbench").experiment_id], max_results=1000)
            if "mlflow.parentRunId" in r.data.tags]
    tune = [r for r in kids if r.data.tags["lossbench.phase"] == "tune"]
    final = [r for r in kids if r.data.tags["lossbench.phase"] == "final"]
    assert len(tune) == 12 and len(final) == 5
    assert {r.data.params["train.prune"] for r in tune} == {"halving"} and {r.data.params["train.prune_metric"] for r in tune} == {"val/rmse"}
    assert any(r.data.tags["lossbench.status"] == PRUNED for r in tune)
    assert all(r.data.tags["lossbench.status"] != PRUNED and "train.prune" not in r.data.params for r in final)
    lr = {r.data.params["optimizer.lr"] for r in final}
    ends = [r for r in tune if r.data.tags["lossbench.status"] == CONVERGED]
    assert lr <= {r.data.params["optimizer.lr"] for r in ends} and len(lr) == 1


def test_a_bad_prune_option_on_the_command_line_is_one_line_exit_2(tmp_path, store):
    p = harness("-m", "loss=mse,mae", "train.prune=halving", "train.prune_metric=test/rmse", f"tracking.uri={store}",
                f"hydra.sweep.dir={tmp_path}/s", cwd=tmp_path, check=False)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("error: train.prune_metric='test/rmse': never a test metric")
    assert not (tmp_path / "mlflow.db").exists()


def test_search_progress_counts_a_pruned_run_by_its_steps_and_never_as_a_result():
    """harness/search/progress.py on a grid with pruning: a pruned run costs the steps it ran
    (train/steps_run) and its value at the rung (here the best number) is no trial's result."""
    from harness.search.progress import progress

    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "status": [CONVERGED, PRUNED, CONVERGED],
                         "loss.name": ["mse"] * 3, "optimizer.lr": [0.1, 0.01, 1.0], "train.steps": [300] * 3,
                         STEPS_RUN: [300.0, 30.0, 300.0], "val/rmse": [1.0, 0.5, 2.0]})
    t = progress(runs, "val/rmse", higher=False)
    assert t["setting"].tolist() == ["optimizer.lr=0.01", "optimizer.lr=0.1", "optimizer.lr=1"]
    assert t["cost"].tolist() == [30.0, 300.0, 300.0] and t["run_steps"].tolist() == [30.0, 330.0, 630.0]
    assert math.isnan(t["best"].iloc[0]) and t["best"].tolist()[1:] == [1.0, 1.0]


def test_a_search_with_pruning_tells_optuna_its_pruned_trials(tmp_path, store):
    """hydra.sweeper.search=optuna with train.prune=halving: each round (one stack) races, its
    pruned trials are told PRUNED (not their rung's value) and recorded as pruned, their test
    split (evaluated at the last step only) NaN; the trials trained to the end have it."""
    import optuna
    from mlflow.tracking import MlflowClient

    p = harness("-m", "loss=mse", "dataset=linear", "dataset.n_train=300", "train.steps=40", "train.prune=halving",
                "train.prune_every=5", "optimizer.lr=tag(log,interval(0.001,0.5))", "hydra.sweeper.search=optuna",
                "hydra.sweeper.trials=12", "hydra.sweeper.round=6", f"tracking.uri={store}",
                f"hydra.sweep.dir={tmp_path}/s", cwd=tmp_path)
    c = MlflowClient(store)
    kids = [r for r in c.search_runs([c.get_experiment_by_name("lossbench").experiment_id], max_results=1000)
            if "mlflow.parentRunId" in r.data.tags]
    assert len(kids) == 12, p.stderr[-2000:]
    pruned = [r for r in kids if r.data.tags["lossbench.status"] == PRUNED]
    ended = [r for r in kids if r.data.tags["lossbench.status"] == CONVERGED]
    assert pruned and ended and len(pruned) + len(ended) == 12
    assert all(math.isnan(r.data.metrics.get("test/rmse", math.nan)) for r in pruned)
    assert all(r.data.metrics[STEPS_RUN] < 40 for r in pruned)
    assert all(math.isfinite(r.data.metrics["test/rmse"]) and r.data.metrics[STEPS_RUN] == 40 for r in ended)
    storage = next(tmp_path.rglob("optuna.db"))
    studies = optuna.get_all_study_summaries(f"sqlite:///{storage}")
    trials = [t for s in studies for t in optuna.load_study(study_name=s.study_name, storage=f"sqlite:///{storage}").trials]
    states = sorted(t.state.name for t in trials)
    assert states.count("PRUNED") == len(pruned) and states.count("COMPLETE") == len(ended)


def test_a_settings_seeds_race_together_unless_runs_race_alone():
    """train.prune_race=setting (default): a setting's runs at every seed stop at the same rung or
    all go on, scored by their mean; =run: each seed races alone (MAE on outliers: the seeds
    disagree at the cut, a setting goes on at one seed and stops at another)."""
    def outcomes(race: str) -> dict:
        rs = train([spec("loss=mae", "optimizer=gd", f"optimizer.lr={lr}", "regularization.kind=l2",
                         f"regularization.weight={w}", "outliers.ratio=0.1", f"seed={s}", "train.steps=300",
                         "train.prune=halving", f"train.prune_race={race}")
                    for lr in (0.001, 0.01, 0.1, 1.0) for w in (0.0, 0.001, 0.01) for s in (0, 1, 2)])
        out: dict = {}
        for r in rs:
            out.setdefault((r.spec.optimizer["lr"], r.spec.regularization["weight"]), set()).add((r.status, r.pruned_step))
        return out

    together, alone = outcomes("setting"), outcomes("run")
    assert all(len(v) == 1 for v in together.values()), together
    assert sum(v == {(CONVERGED, None)} for v in together.values()) >= 1
    assert any(len(v) > 1 for v in alone.values()), alone
