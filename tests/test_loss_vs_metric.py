"""The loss_vs_metric study's pieces: the 0-1 loss as a custom loss (zero gradient), the checks
keeps_falling, ranks_disagree and does_not_move on hand-made tables and curves, the figure kind
loss_and_metrics, and the shrunk study."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from harness.losses.examples import zero_one
from harness.report import claims as C
from harness.report.claims.keeps_falling import clopper_pearson, stop_step
from harness.report.claims.ranks_disagree import pair_counts


# -- the 0-1 loss -------------------------------------------------------------------------------
def test_zero_one_is_the_error_rate_with_an_exactly_zero_gradient():
    pred = torch.tensor([[[-2.0, -0.1, 0.0, 0.3, 5.0]]], requires_grad=True)
    y = torch.tensor([[[0.0, 1.0, 1.0, 0.0, 1.0]]])
    loss = zero_one(pred, y)
    assert loss.tolist() == [[[0.0, 1.0, 1.0, 1.0, 0.0]]]          # pred > 0 is class 1; 0 is class 0
    (g,) = torch.autograd.grad(loss.sum(), pred)
    assert torch.equal(g, torch.zeros_like(pred))
    # without `+ 0 * pred` the comparison leaves the graph: there is nothing to differentiate
    assert not ((pred > 0) != (y > 0.5)).float().requires_grad


def test_gradient_descent_on_the_zero_one_loss_does_not_move_and_bce_does():
    """loss=custom loss._target_=harness.losses.examples.zero_one on breast_cancer, with an L2
    penalty: every gradient norm is 0 and the loss and accuracy stay at the zero model's;
    BCE on the same data moves and learns."""
    from conftest import spec
    from harness.engine import train

    base = ("dataset=breast_cancer", "train.steps=40", "train.eval_every=10", "regularization.kind=l2",
            "regularization.weight=0.01", "optimizer.lr=1.0")
    (stuck,) = train([spec(*base, "loss=custom", "loss._target_=harness.losses.examples.zero_one", "loss.task=binary")])
    (bce,) = train([spec(*base, "loss=bce")])
    g, loss, acc = (stuck.curves[k][1] for k in ("train/grad_norm", "train/loss", "test/accuracy"))
    assert stuck.status == "converged" and np.all(g == 0)
    assert np.all(loss == loss[0]) and np.all(acc == acc[0])
    assert acc[0] == pytest.approx(1 - loss[0], abs=0.02)            # the zero model predicts class 0 everywhere
    assert np.all(bce.curves["train/grad_norm"][1] > 0)
    assert bce.final["test/accuracy"] > acc[0] + 0.4


# -- keeps_falling -------------------------------------------------------------------------------
STEPS = np.arange(0, 101, 10)


def _curves(table: dict[tuple[str, str], np.ndarray]):
    """curves(ids, key) over a dict (run_id, key) -> values at STEPS."""
    def fetch(ids, key):
        rows = [(rid, int(s), float(v)) for rid in ids if (rid, key) in table
                for s, v in zip(STEPS, table[(rid, key)])]
        return pd.DataFrame(rows, columns=["run_id", "step", "value"])
    return fetch


def _falling_runs(n_falls: int, n_flat: int, loss_name: str = "bce"):
    """Runs whose accuracy plateaus at step 20: n_falls with a loss falling 50% after it,
    n_flat with a loss that stops there too."""
    acc = np.array([0.5, 0.8, 0.9, 0.9, 0.9, 0.895, 0.9, 0.9, 0.9, 0.9, 0.9])
    falls = np.array([0.7, 0.5, 0.4, 0.35, 0.3, 0.27, 0.25, 0.23, 0.22, 0.21, 0.2])
    flat = np.array([0.7, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.399])
    rows, table = [], {}
    for i in range(n_falls + n_flat):
        rid = f"r{i}"
        rows.append({"run_id": rid, "status": "converged", "loss.name": loss_name, "dataset.name": "d", "seed": i,
                     "optimizer.lr": [0.1, 1.0][i % 2]})
        table[(rid, "test/accuracy")] = acc
        table[(rid, "train/loss")] = falls if i < n_falls else flat
        table[(rid, "test/loss")] = falls[::-1] if i < n_falls else flat
    return pd.DataFrame(rows), _curves(table)


FALL = dict(check="keeps_falling", metric="test/accuracy", loss="train/loss", tol=0.01, min_fall=0.1, share=0.5)


def test_stop_step_is_where_the_metric_never_gains_more_than_tol():
    a = np.array([0.5, 0.8, 0.9, 0.89, 0.905, 0.9])
    assert stop_step(np.arange(6) * 10, a, 0.01) == 20
    assert stop_step(np.arange(6) * 10, a, 0.001) == 40
    assert stop_step(np.arange(3), np.array([0.1, 0.2, 0.3]), 0.01) == 2      # still improving: the last step


def test_clopper_pearson_interval():
    assert clopper_pearson(10, 10) == pytest.approx((0.69150, 1.0), abs=1e-5)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.30850), abs=1e-5)
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.18709, abs=1e-5) and hi == pytest.approx(0.81291, abs=1e-5)


def test_keeps_falling_holds_fails_and_is_inconclusive():
    runs, curves = _falling_runs(12, 0)
    v = C.evaluate(runs, {**FALL, "also": "test/loss", "by": ["optimizer.lr"]}, curves)
    assert v.verdict == "holds", v.text
    assert "12 of 12 runs" in v.text and "by optimizer.lr: 0.1 6/6, 1 6/6" in v.text
    assert set(v.table["t_star"]) == {20} and v.table["fall"].iloc[0] == pytest.approx((0.4 - 0.2) / 0.4)
    assert "test/loss ended more than 10% above its minimum in 12 of 12" in v.text
    runs, curves = _falling_runs(0, 12)
    v = C.evaluate(runs, FALL, curves)
    assert v.verdict == "does not hold" and "0 of 12 runs" in v.text, v.text
    runs, curves = _falling_runs(3, 3)
    assert C.evaluate(runs, FALL, curves).verdict == "inconclusive"


def test_keeps_falling_leaves_diverged_runs_out_and_needs_curves():
    runs, curves = _falling_runs(12, 0)
    runs.loc[0, "status"] = "diverged"
    v = C.evaluate(runs, FALL, curves)
    assert "11 of 11 runs" in v.text and "1 diverged runs left out" in v.text
    v = C.evaluate(runs, FALL)
    assert v.verdict == "inconclusive" and "needs the runs' curves" in v.text
    empty = lambda ids, key: pd.DataFrame(columns=["run_id", "step", "value"])
    assert C.evaluate(runs, FALL, empty).verdict == "inconclusive"
    assert C.evaluate(runs, {**FALL, "losses": ["hinge"]}, curves).verdict == "inconclusive"


# -- ranks_disagree -----------------------------------------------------------------------------
RANK = dict(check="ranks_disagree", metric="test/accuracy", loss="test/loss", within=["loss.name", "seed"],
            min_flips=0.1)


def _ranked(noise: float, seeds: int = 6, n: int = 8, seed: int = 0) -> pd.DataFrame:
    """Per seed, n runs whose accuracy falls with the loss, plus `noise` in the accuracy."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        loss = np.sort(rng.uniform(0.1, 1.0, n))
        acc = 1 - 0.3 * loss + noise * rng.standard_normal(n)
        rows += [{"run_id": f"{s}-{i}", "loss.name": "bce", "seed": s, "test/loss": loss[i], "test/accuracy": acc[i]}
                 for i in range(n)]
    return pd.DataFrame(rows)


def test_pair_counts_agree_with_kendalls_tau():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(1)
    loss, metric = rng.normal(size=12), rng.normal(size=12)
    c, d, ties = pair_counts(loss, metric)
    assert c + d + ties == 66 and ties == 0
    assert (c - d) / (c + d) == pytest.approx(kendalltau(loss, -metric).statistic)
    assert pair_counts(np.array([1.0, 2.0, 3.0]), np.array([0.9, 0.9, 0.5])) == (2, 0, 1)


def test_ranks_disagree_holds_fails_and_is_inconclusive():
    v = C.evaluate(_ranked(noise=0.2), RANK)
    assert v.verdict == "holds", v.text
    assert "Kendall's tau-b" in v.text and set(v.table.columns) >= {"flips", "kendall_tau", "lowest_loss_is_best"}
    v = C.evaluate(_ranked(noise=0.0), RANK)
    assert v.verdict == "does not hold" and "0 of 168 ordered pairs flip" in v.text, v.text
    one = _ranked(noise=0.2, seeds=1)
    assert C.evaluate(one, RANK).verdict == "inconclusive"                    # one group: no interval
    v = C.evaluate(_ranked(noise=0.03, seeds=2, n=4), RANK)
    assert v.verdict == "inconclusive", v.text                                # a few pairs: CI spans 10%
    tied = _ranked(0.0).assign(**{"test/accuracy": 0.9})
    assert C.evaluate(tied, RANK).verdict == "inconclusive"                   # every pair tied


def test_ranks_disagree_ranks_only_within_groups():
    """Two seeds whose levels differ (one split is easier): pooled, the split's level would make
    the rankings agree; within each seed they are reversed, and that is what is counted."""
    rows = [{"run_id": f"{s}{i}", "loss.name": "bce", "seed": s, "test/loss": 1.0 * s + 0.1 * i,
             "test/accuracy": 0.9 - 0.5 * s + 0.01 * i} for s in (0, 1) for i in range(5)]
    v = C.evaluate(pd.DataFrame(rows), RANK)
    assert v.table["flips"].tolist() == [10, 10] and v.verdict == "holds"


# -- does_not_move -------------------------------------------------------------------------------
MOVE = dict(check="does_not_move", losses=["custom"], learners=["bce"], metric="test/accuracy")


def _moving(stuck_grad: float = 0.0, learner_falls: bool = True):
    rows, table = [], {}
    for loss in ("custom", "bce"):
        for s in range(3):
            rid = f"{loss}{s}"
            rows.append({"run_id": rid, "status": "converged", "loss.name": loss, "seed": s})
            if loss == "custom":
                table[(rid, "train/grad_norm")] = np.full(len(STEPS), stuck_grad)
                table[(rid, "train/loss")] = np.full(len(STEPS), 0.63)
                table[(rid, "test/accuracy")] = np.full(len(STEPS), 0.37)
            else:
                table[(rid, "train/grad_norm")] = np.linspace(1.0, 0.1, len(STEPS))
                table[(rid, "train/loss")] = np.linspace(0.69, 0.1 if learner_falls else 0.69, len(STEPS))
                table[(rid, "test/accuracy")] = np.linspace(0.37, 0.97, len(STEPS))
    return pd.DataFrame(rows), _curves(table)


def test_does_not_move_holds_and_fails():
    runs, curves = _moving()
    v = C.evaluate(runs, MOVE, curves)
    assert v.verdict == "holds" and "custom: 3 of 3 runs did not move" in v.text and "bce: 3 of 3 runs learned" in v.text
    runs, curves = _moving(stuck_grad=1e-9)
    v = C.evaluate(runs, MOVE, curves)
    assert v.verdict == "does not hold" and "3 runs of custom moved" in v.text
    runs, curves = _moving(learner_falls=False)
    v = C.evaluate(runs, MOVE, curves)
    assert v.verdict == "does not hold" and "3 runs of bce did not learn" in v.text


def test_does_not_move_inconclusive_without_runs_or_curves():
    runs, curves = _moving()
    assert C.evaluate(runs, {**MOVE, "losses": ["hinge"]}, curves).verdict == "inconclusive"
    empty = lambda ids, key: pd.DataFrame(columns=["run_id", "step", "value"])
    assert C.evaluate(runs, MOVE, empty).verdict == "inconclusive"
    assert C.evaluate(runs, {"check": "does_not_move"}, curves).verdict == "inconclusive"


# -- the figure kind ----------------------------------------------------------------------------
def test_loss_and_metrics_figure_from_hand_made_curves(tmp_path):
    from harness.report.figures import FigureContext, study_figures

    rows = [{"run_id": f"{d}{l}{lr}{s}", "status": "converged", "eval": "binary", "loss.name": l, "dataset.name": d,
             "optimizer.lr": lr, "seed": s} for d in ("a", "b") for l in ("bce", "custom") for lr in (0.1, 1.0)
            for s in range(3)]
    runs = pd.DataFrame(rows)
    runs.loc[0, "status"] = "diverged"

    def fetch(ids, key):
        return pd.DataFrame([(i, s, (1.0 if "custom" in i else 1 / (1 + s)) + (key == "test/accuracy"))
                             for i in ids for s in range(0, 101, 10)], columns=["run_id", "step", "value"])

    study = {"figures": [{"kind": "loss_and_metrics", "name": "lm", "metrics": ["train/loss", "test/accuracy"],
                          "where": {"optimizer.lr": 0.1}, "labels": {"custom": "0-1 loss (custom)"}}]}
    (fig,) = study_figures(runs, study, FigureContext(tmp_path, fetch, prefix="p_"))
    assert fig.png == tmp_path / "p_lm.png" and fig.png.is_file()
    t = pd.read_csv(tmp_path / "p_lm.csv")
    assert set(t["row"]) == {"a", "b"} and set(t["line"]) == {"bce", "0-1 loss (custom)"}
    assert list(dict.fromkeys(t["metric"])) == ["train/loss", "test/accuracy"]
    a_bce = t[(t["row"] == "a") & (t["line"] == "bce") & (t["metric"] == "train/loss")]
    assert a_bce["n_runs"].max() == 2                          # one of its three seeds diverged: left out
    assert t.loc[t["line"] == "0-1 loss (custom)", "median"].isin([1.0, 2.0]).all()
    assert "1 diverged runs left out" in fig.caption and "optimizer.lr=0.1" in fig.caption
    nothing = {"figures": [{"kind": "loss_and_metrics", "where": {"optimizer.lr": 3}}]}
    assert study_figures(runs, nothing, FigureContext(tmp_path, fetch)) == []


# -- the study, shrunk --------------------------------------------------------------------------
SHRUNK = {"seed": "0,1", "optimizer.lr": "0.1,0.3", "regularization.weight": "0,0.01,0.1"}


@pytest.mark.slow
def test_loss_vs_metric_study_shrunk_decides_its_claims(tmp_path):
    """The study with the tour's overrides (96 runs): every claim is decided, and holds."""
    cmd = [sys.executable, "-m", "harness", "-m", "+experiment=loss_vs_metric", *(f"{k}={v}" for k, v in SHRUNK.items()),
           "hydra.launcher.progress=false"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (md,) = (tmp_path / "reports" / "loss_vs_metric").glob("*/report.md")
    text = md.read_text()
    for claim in ("loss_falls_after_accuracy_stops", "loss_falls_after_accuracy_stops_small_n", "rankings_disagree",
                  "rankings_disagree_small_n", "zero_one_gives_no_gradient", "surrogates_beat_zero_one"):
        assert f"**{claim}** — **holds**" in text, claim
    assert (md.parent / "loss_and_metrics_no_penalty.png").is_file() and (md.parent / "loss_and_metrics_l2.csv").is_file()
    claims = pd.read_csv(md.parent / "claims.csv")
    stuck = claims[(claims["claim"] == "zero_one_gives_no_gradient") & (claims["role"] == "stuck")]
    assert len(stuck) == 24 and (stuck["grad_max"] == 0).all()
