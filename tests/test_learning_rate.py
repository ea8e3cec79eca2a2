"""The learning-rate study's pieces: the divergence_edge, monotone and never_diverges checks on
hand-made runs tables (and hand-made curves for steps to a target loss), each where it must
hold, must not hold and cannot tell; its figure kinds on a hand-made runs table; and the
shrunk study end to end, deciding every claim.

    .venv/bin/python -m pytest tests/test_learning_rate.py -q
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.report import claims as C
from harness.report.claims.divergence_edge import bracket
from harness.report.lr import edge_units, steps_to_target

LRS = [0.1, 0.5, 0.9, 0.99, 1.0, 1.01, 1.05, 2.0]


def _runs(lrs=LRS, losses=("mse",), data=("linear", "diabetes"), seeds=(0, 1, 2), edge=1.0, **cols) -> pd.DataFrame:
    """One run per loss x data set x seed x lr, in units of lr* (lr_unit=edge), all converged."""
    rows = [{"run_id": f"{l}-{d}-{s}-{lr}", "status": "converged", "loss.name": l, "dataset.name": d, "seed": s,
             "optimizer.lr": lr, "optimizer.lr_unit": "edge", "data/lr_edge": edge, "train.steps": 100,
             "regularization.weight": 0.0}
            for l in losses for d in data for s in seeds for lr in lrs]
    return pd.DataFrame(rows).assign(**cols)


def _diverge_above(runs: pd.DataFrame, edge: float) -> pd.DataFrame:
    runs = runs.copy()
    runs.loc[runs["optimizer.lr"] > edge, "status"] = "diverged"
    return runs


EDGE = {"check": "divergence_edge", "x": "optimizer.lr", "within": [1.0, 1.05], "losses": ["mse"]}


# -- divergence_edge ----------------------------------------------------------------------------
def test_bracket_between_last_converged_and_first_diverged():
    x = np.array([0.5, 1.0, 1.01, 1.05, 2.0])
    assert bracket(x, np.array([0, 0, 1, 1, 1], bool)) == (1.0, 1.01)
    assert bracket(x, np.array([0, 0, 0, 0, 0], bool)) == (2.0, np.inf)
    assert bracket(x, np.array([1, 1, 1, 1, 1], bool)) == (-np.inf, 0.5)
    # statuses interleave (1.01 diverged, 1.05 converged): the bracket spans the mixed region
    assert bracket(x, np.array([0, 0, 1, 0, 1], bool)) == (1.0, 2.0)


def test_divergence_edge_holds_fails_and_is_inconclusive():
    v = C.evaluate(_diverge_above(_runs(), 1.0), EDGE)
    assert v.verdict == "holds", v.text
    assert "(1, 1.01] in 6 of 6 groups" in v.text and v.number == "edge in (1, 1.01] x lr*"
    # one data set keeps converging to 1.05 and diverges only at 2: its edge lies above the band
    late = _diverge_above(_runs(), 1.0)
    late.loc[(late["dataset.name"] == "diabetes") & (late["optimizer.lr"] <= 1.05), "status"] = "converged"
    v = C.evaluate(late, EDGE)
    assert v.verdict == "does not hold" and "diabetes, seed 0: (1.05, 2]" in v.text, v.text
    # an edge below the band: diverging from 0.9 lr*
    assert C.evaluate(_diverge_above(_runs(), 0.5), EDGE).verdict == "does not hold"
    # a grid too coarse to tell: 0.5 converged, 2 diverged; the bracket (0.5, 2] straddles the band
    v = C.evaluate(_diverge_above(_runs(lrs=[0.1, 0.5, 2.0]), 1.0), EDGE)
    assert v.verdict == "inconclusive" and "too coarse" in v.text
    # every run converged, the grid stopping inside the band: cannot tell either
    assert C.evaluate(_runs(lrs=[0.5, 1.0, 1.01]), EDGE).verdict == "inconclusive"


def test_divergence_edge_in_absolute_units():
    """lr given absolutely: divided by each run's own lr* (data/lr_edge), 0.5 here."""
    runs = _diverge_above(_runs(), 1.0)
    runs["optimizer.lr"] *= 0.5
    runs["optimizer.lr_unit"], runs["data/lr_edge"] = "absolute", 0.5
    np.testing.assert_allclose(edge_units(runs), runs["optimizer.lr"] / 0.5)
    v = C.evaluate(runs, EDGE)
    assert v.verdict == "holds" and "(1, 1.01]" in v.text


# -- monotone on a final metric -----------------------------------------------------------------
def _gap_runs(power: float, noise: float, losses=("mae",)) -> pd.DataFrame:
    """opt/gap = lr^power times a seed's factor exp(noise * N(0, 1)), per data set."""
    r = _runs(lrs=[1.0, 1.5, 2.0, 3.0, 4.0], losses=losses)
    rng = np.random.default_rng(0)
    return r.assign(**{"opt/gap": r["optimizer.lr"] ** power * np.exp(noise * rng.standard_normal(len(r)))})


MONO = {"check": "monotone", "metric": "opt/gap", "x": "optimizer.lr", "x_unit": "edge", "range": [1.0, 4.0],
        "direction": "increasing", "losses": ["mae"], "floor": 1e-12}


def test_monotone_holds_reversed_and_flat():
    v = C.evaluate(_gap_runs(2.0, 0.05), MONO, curves=lambda ids, key: None)
    assert v.verdict == "holds", v.text
    assert v.table["slope"].between(1.8, 2.2).all() and "2/2 rising" in v.number
    v = C.evaluate(_gap_runs(-2.0, 0.05), MONO, curves=lambda ids, key: None)
    assert v.verdict == "does not hold" and "slope of the other sign" in v.text, v.text
    v = C.evaluate(_gap_runs(0.0, 0.5), MONO, curves=lambda ids, key: None)
    assert v.verdict == "inconclusive" and "includes 0" in v.text, v.text
    # a decreasing claim on the same rising data does not hold
    assert C.evaluate(_gap_runs(2.0, 0.05), {**MONO, "direction": "decreasing"}, lambda i, k: None).verdict == "does not hold"


def test_monotone_names_a_clear_reversal_but_not_a_noisy_one():
    """A U shape the seeds agree on (every seed rises from 0.9 to 0.99 where the claim says it
    falls) is a reversal; one noisy pair among many, with seeds disagreeing, is not."""
    r = _runs(lrs=[0.1, 0.3, 0.5, 0.7, 0.9, 0.99], losses=("mae",), data=("linear",))
    u = r["optimizer.lr"]
    r["opt/gap"] = np.where(u < 0.95, 1 / u, 30.0) * (1 + 0.01 * r["seed"])
    claim = {**MONO, "range": [0.1, 0.99], "direction": "decreasing"}
    v = C.evaluate(r, claim, lambda i, k: None)
    assert v.verdict == "does not hold" and "0.9 -> 0.99" in v.text, v.text
    shake = r["seed"].map({0: 0.4, 1: -0.3, 2: 0.2})               # seeds disagree at 0.7 lr*
    noisy = r.assign(**{"opt/gap": 1 / u * np.exp(np.where(u == 0.7, shake, 0.0))})
    v = C.evaluate(noisy, claim, lambda i, k: None)
    assert v.verdict == "holds", v.text


def test_monotone_floor_and_missing_pieces():
    r = _gap_runs(2.0, 0.0)
    r.loc[r["optimizer.lr"] == 1.0, "opt/gap"] = -1e-17        # rounding below 0: taken at the floor
    assert C.evaluate(r, MONO, lambda i, k: None).verdict == "holds"
    for bad in ({"direction": "up"}, {"range": [2, 1]}, {"metric": "test/nosuch"}, {"range": [10, 20]}):
        v = C.evaluate(r, {**MONO, **bad}, lambda i, k: None)
        assert v.verdict == "inconclusive" and v.text, bad
    assert "needs the runs' curves" in C.evaluate(r, MONO).text


# -- steps to a target loss, from hand-made curves ---------------------------------------------
L_STAR, L_0 = 0.25, 4.25


def _curve_runs(lrs=(0.01, 0.1, 0.3, 0.5, 0.9)) -> tuple[pd.DataFrame, callable]:
    """Runs whose train/loss contracts to L* geometrically, L_t = L* + (L0 - L*) rho^t, with
    rho = 1 - lr (faster for larger lr; lr=0.01 cannot reach 1% of the way in 100 steps);
    final train/objective = L_T and opt/gap = L_T - L*, as the engine logs them."""
    r = _runs(lrs=list(lrs), data=("linear",))
    T = 100
    rho = 1 - r["optimizer.lr"].to_numpy()
    final = L_STAR + (L_0 - L_STAR) * rho ** T
    r = r.assign(**{"train/objective": final, "opt/gap": final - L_STAR})
    curves = {rid: L_STAR + (L_0 - L_STAR) * p ** np.arange(T + 1) for rid, p in zip(r["run_id"], rho)}

    def fetch(ids, key):
        assert key == "train/loss"
        return pd.DataFrame([(i, t, v) for i in ids for t, v in enumerate(curves[i])], columns=["run_id", "step", "value"])

    return r, fetch


def test_steps_to_target_counts_the_first_step_below_it():
    r, fetch = _curve_runs()
    s = steps_to_target(r, fetch, 0.01)
    np.testing.assert_allclose(s["L_star"], L_STAR, rtol=1e-12)
    np.testing.assert_allclose(s["target"], L_STAR + 0.01 * (L_0 - L_STAR), rtol=1e-12)
    lr = r["optimizer.lr"].to_numpy()
    want = np.ceil(np.log(0.01) / np.log(1 - lr) - 1e-9)         # first t with rho^t <= 0.01
    reached = ~s["censored"].to_numpy()
    np.testing.assert_array_equal(s["steps"].to_numpy()[reached], want[reached])
    assert s.loc[r["optimizer.lr"] == 0.01, "censored"].all()     # 459 steps needed, 100 run
    with pytest.raises(ValueError, match="penalty"):
        steps_to_target(r.assign(**{"regularization.weight": 0.1}), fetch)


def test_monotone_on_steps_to_target():
    r, fetch = _curve_runs()
    claim = {"check": "monotone", "metric": "train/steps_to_target", "x": "optimizer.lr", "x_unit": "edge",
             "range": [0.01, 0.9], "direction": "decreasing", "losses": ["mse"]}
    v = C.evaluate(r, claim, fetch)
    assert v.verdict == "holds", v.text
    assert "3 runs that never reached the target counted at the step budget" in v.text
    assert C.evaluate(r, {**claim, "direction": "increasing"}, fetch).verdict == "does not hold"
    # a diverged run has no steps and is left out, and said so
    r.loc[r["optimizer.lr"] == 0.9, "status"] = "diverged"
    v = C.evaluate(r, claim, fetch)
    assert v.verdict == "holds" and "3 diverged runs left out" in v.text
    assert C.evaluate(r.drop(columns="opt/gap"), claim, fetch).verdict == "inconclusive"


# -- never_diverges ------------------------------------------------------------------------------
def test_never_diverges():
    claim = {"check": "never_diverges", "losses": ["mae", "huber"], "x": "optimizer.lr", "x_unit": "edge",
             "range": [1.01, 4]}
    r = _diverge_above(_runs(losses=("mse", "mae", "huber")), 1.0)
    r.loc[r["loss.name"] != "mse", "status"] = "converged"
    v = C.evaluate(r, claim)
    assert v.verdict == "holds" and v.number == "0/36 diverged", v.text
    r.loc[(r["loss.name"] == "mae") & (r["optimizer.lr"] == 2.0) & (r["seed"] == 1), "status"] = "diverged"
    v = C.evaluate(r, claim)
    assert v.verdict == "does not hold" and "mae, diabetes, optimizer.lr=2 x lr*, seed 1" in v.text, v.text
    assert C.evaluate(r, {**claim, "range": [5, 8]}).verdict == "inconclusive"


# -- figures -------------------------------------------------------------------------------------
def test_figure_kinds_write_png_and_csv(tmp_path):
    from harness.report.figures import FigureContext, study_figures

    r, fetch = _curve_runs()
    r = pd.concat([r, r.assign(**{"loss.name": "mae", "run_id": r["run_id"] + "m"})], ignore_index=True)
    r["eval"], r["test/rmse"] = "regression", 1 + r["optimizer.lr"]
    r.loc[(r["loss.name"] == "mse") & (r["optimizer.lr"] == 0.9) & (r["seed"] == 0), ["status", "test/rmse"]] = ["diverged", np.nan]
    def fetch2(ids, key):    # the MAE copies ("...m") share the MSE runs' curves
        return pd.concat([fetch([i[:-1] if i.endswith("m") else i], key).assign(run_id=i) for i in ids], ignore_index=True)

    study = {"figures": [{"kind": "lr_sweep", "metric": "test/rmse"}, {"kind": "lr_sweep", "metric": "opt/gap", "floor": 1e-16},
                         {"kind": "steps_to_target", "fraction": 0.01}, {"kind": "lr_curves", "at": [0.1, 0.9], "steps": 50}]}
    figs = study_figures(r, study, FigureContext(tmp_path, fetch2))
    names = [f.png.name for f in figs]
    assert names == ["test_rmse_vs_lr.png", "opt_gap_vs_lr.png", "steps_to_target_vs_lr.png", "train_loss_curves_by_lr.png"]
    for f in figs:
        assert f.png.is_file() and f.png.with_suffix(".csv").is_file() and f.caption
    t = pd.read_csv(tmp_path / "test_rmse_vs_lr.csv")
    assert t["n_diverged"].sum() == 1 and set(t["line"]) == {"mse", "mae"}
    s = pd.read_csv(tmp_path / "steps_to_target_vs_lr.csv")
    assert s.loc[s["x"] == 0.01, "n_censored"].tolist() == [3, 3]          # lr 0.01 never gets there in 100 steps
    assert s.loc[(s["x"] == 0.1) & (s["line"] == "mse"), "median"].item() == 44   # ceil(log 0.01 / log 0.9)
    c = pd.read_csv(tmp_path / "train_loss_curves_by_lr.csv")
    assert set(c["line"]) == {"0.1 lr*", "0.9 lr*"} and c["step"].max() == 50


# -- the shrunk study, end to end ------------------------------------------------------------------
SHRUNK = ["optimizer.lr=0.01,0.1,0.5,0.6,0.95,0.99,1.0,1.05,2,3,4", "dataset.correlation=0", "seed=0,1",
          "train.steps=600"]     # the tour's overrides (132 runs)


@pytest.mark.slow   # ~15-25 s on 2 cores
def test_shrunk_learning_rate_study_decides_its_claims(tmp_path):
    cmd = [sys.executable, "-m", "harness", "-m", "+experiment=learning_rate", *SHRUNK, "hydra.launcher.progress=false"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = next((tmp_path / "reports" / "learning_rate").iterdir())
    md = (folder / "report.md").read_text()
    want = {"mse_diverges_at_the_edge": "holds", "too_small_crawls": "holds",
            "faster_all_the_way_to_the_edge": "does not hold", "slow_again_near_the_edge": "holds",
            "fastest_at_two_over_lambda_sum": "holds", "bounded_gradients_do_not_blow_up": "holds",
            "mae_oscillates_farther_above_the_edge": "holds", "huber_oscillates_above_its_own_edge": "holds"}
    for claim, verdict in want.items():
        assert f"**{claim}** — **{verdict}**" in md, (claim, md[:4000])
    assert "(1, 1.05] in 4 of 4 groups" in md
    for name in ("test_rmse_vs_lr", "opt_gap_vs_lr", "steps_to_target_vs_lr", "train_loss_curves_by_lr"):
        assert (folder / f"{name}.png").is_file() and (folder / f"{name}.csv").is_file()
    assert not (folder / "test_rmse_vs_loss.png").exists()     # default_figures: false


def test_monotone_per_seed_curves():
    """per: seed -- each seed's curve must move the claimed way at every step: a deterministic
    quantity of its data, no statistics; flat steps are inconclusive, steps between two runs that
    both never reached the target are not held against the claim."""
    r, fetch = _curve_runs()
    claim = {"check": "monotone", "metric": "train/steps_to_target", "x": "optimizer.lr", "x_unit": "edge",
             "range": [0.01, 0.9], "direction": "decreasing", "losses": ["mse"], "per": "seed"}
    v = C.evaluate(r, claim, fetch)
    assert v.verdict == "holds" and v.number == "3/3 curves falling", v.text
    assert "seed 0: >=100, 44, 13, 7, 2" in v.text                # lr 0.01 never gets there in 100 steps
    assert C.evaluate(r, {**claim, "direction": "increasing"}, fetch).verdict == "does not hold"
    # two censored runs side by side (0.01 and 0.02): no order known, nothing against the claim
    r2, fetch2 = _curve_runs(lrs=(0.01, 0.02, 0.1, 0.5))
    v = C.evaluate(r2, claim, fetch2)
    assert v.verdict == "holds" and "seed 1: >=100, >=100, 44, 7" in v.text, v.text
    # one seed's curve rises from 0.5 to 0.9: that curve, and so the claim, does not hold
    g = _gap_runs(-1.0, 0.0)
    g.loc[(g["seed"] == 1) & (g["optimizer.lr"] == 4.0), "opt/gap"] = 10.0
    gap = {**MONO, "direction": "decreasing", "per": "seed"}
    v = C.evaluate(g, gap, lambda i, k: None)
    assert v.verdict == "does not hold" and "seed 1: 3 -> 4" in v.text and v.number == "4/6 curves falling", v.text
    # a flat step: inconclusive
    g.loc[(g["seed"] == 1) & (g["optimizer.lr"] == 4.0), "opt/gap"] = 1 / 3.0
    assert C.evaluate(g, gap, lambda i, k: None).verdict == "inconclusive"
