"""The mae_subgradient study's pieces: the loglog_slope and factor_closer checks on constructed
tables (holds / does not hold / inconclusive), the loglog_vs_x and gap_curves figures on a
hand-made table, and the study itself, shrunk, deciding its claims."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.report import claims as C
from harness.report.claims.settings import label

LRS = (0.01, 0.02, 0.05, 0.1, 0.2)


def _power_runs(slopes: dict[str, float], noise: float = 0.05, seeds: int = 6, lrs=LRS, group: str = "linear",
                scale: float = 0.1) -> pd.DataFrame:
    """opt/distance = scale * lr^b * exp(noise * z), one row per schedule x lr x seed."""
    rng = np.random.default_rng(1)
    rows = [{"run_id": f"{group}{k}{lr}{s}", "status": "converged", "loss.name": "mae", "dataset.name": group,
             "optimizer.name": "gd", "optimizer.schedule": k, "optimizer.lr": lr, "seed": s,
             "opt/distance": scale * lr ** b * np.exp(noise * rng.standard_normal())}
            for k, b in slopes.items() for lr in lrs for s in range(seeds)]
    return pd.DataFrame(rows)


SLOPE = dict(check="loglog_slope", metric="opt/distance", x="optimizer.lr", lo=0.8, hi=1.2,
             where={"optimizer.schedule": "constant"})


# -- loglog_slope ----------------------------------------------------------------------------
def test_loglog_slope_holds_fails_and_is_inconclusive():
    v = C.evaluate(_power_runs({"constant": 1.0}), SLOPE)
    assert v.verdict == "holds", v.text
    assert v.table.at[0, "slope"] == pytest.approx(1.0, abs=0.05) and v.table.at[0, "n"] == 30
    assert C.evaluate(_power_runs({"constant": 2.0}), SLOPE).verdict == "does not hold"
    assert C.evaluate(_power_runs({"constant": 0.3}), SLOPE).verdict == "does not hold"
    wide = C.evaluate(_power_runs({"constant": 1.2}, noise=1.0), SLOPE)
    assert wide.verdict == "inconclusive" and "straddles" in wide.text
    # the exponent of a power law, not a slope in lr's own units: scale does not matter
    assert C.evaluate(_power_runs({"constant": 1.0}, scale=1e-6), SLOPE).table.at[0, "slope"] == pytest.approx(1, abs=0.05)


def test_loglog_slope_open_ends_x_range_and_groups():
    runs = _power_runs({"constant": 1.0})
    assert C.evaluate(runs, {**SLOPE, "lo": None, "hi": 0.5}).verdict == "does not hold"
    assert C.evaluate(runs, {**SLOPE, "lo": 0.8, "hi": None}).verdict == "holds"
    assert C.evaluate(runs, {**SLOPE, "lo": None, "hi": None}).verdict == "inconclusive"
    # slope 1 below lr 0.1, slope 3 above: x_range picks the regime
    bent = runs.copy()
    hi = bent["optimizer.lr"] > 0.1
    bent.loc[hi, "opt/distance"] *= (bent.loc[hi, "optimizer.lr"] / 0.1) ** 2
    assert C.evaluate(bent, SLOPE).verdict != "holds"
    assert C.evaluate(bent, {**SLOPE, "x_range": [None, 0.1]}).verdict == "holds"
    assert C.evaluate(bent, {**SLOPE, "x_range": [0.1, 0.2], "lo": 2.5, "hi": 3.5}).verdict == "holds"
    # per group: one data set with slope 1, another with slope 2
    two = pd.concat([runs, _power_runs({"constant": 2.0}, group="stackloss")], ignore_index=True)
    v = C.evaluate(two, {**SLOPE, "by": ["dataset.name"]})
    assert v.verdict == "does not hold" and "dataset.name=stackloss" in v.text
    assert list(v.table["group"]) == ["dataset.name=linear", "dataset.name=stackloss"]
    assert C.evaluate(two, {**SLOPE, "by": ["dataset.name"], "where": {**SLOPE["where"], "dataset.name": ["linear"]}}
                      ).verdict == "holds"


def test_loglog_slope_needs_two_runs_per_x_and_positive_values():
    one = _power_runs({"constant": 1.0}, seeds=1)
    v = C.evaluate(one, SLOPE)
    assert v.verdict == "inconclusive" and "Fewer than 2 runs" in v.text
    runs = _power_runs({"constant": 1.0})
    runs.loc[0, "opt/distance"], runs.loc[1, "opt/distance"] = 0.0, np.nan     # no logarithm: left out, counted
    v = C.evaluate(runs, SLOPE)
    assert v.verdict == "holds" and v.table.at[0, "n_dropped"] == 2 and "2 runs without" in v.text
    assert C.evaluate(runs, {**SLOPE, "x_range": [0.05, 0.05]}).verdict == "inconclusive"   # one x value


def test_loglog_slope_of_named_series():
    runs = _power_runs({"constant": 1.0, "cosine": 0.3})
    claim = {**SLOPE, "where": {}, "series": [{"optimizer.schedule": "constant"}, {"optimizer.schedule": "cosine"}]}
    v = C.evaluate(runs, claim)
    assert v.verdict == "does not hold" and list(v.table["series"]) == ["constant", "cosine"]
    assert C.evaluate(runs, {**claim, "series": [{"optimizer.schedule": "step"}]}).verdict == "inconclusive"


# -- factor_closer ---------------------------------------------------------------------------
FACTOR = dict(check="factor_closer", metric="opt/distance", x="optimizer.lr", at=[0.1, 0.2],
              baseline={"optimizer.schedule": "constant"}, closer=[{"optimizer.schedule": "cosine"}], factor=10)


def _two(ratio: float, noise: float = 0.05, seeds: int = 6, **kw) -> pd.DataFrame:
    """constant at 0.1 lr, cosine `ratio` times closer, lognormal noise."""
    runs = _power_runs({"constant": 1.0, "cosine": 1.0}, noise=noise, seeds=seeds, **kw)
    cos = runs["optimizer.schedule"] == "cosine"
    runs.loc[cos, "opt/distance"] /= ratio
    return runs


def test_factor_closer_holds_fails_and_is_inconclusive():
    v = C.evaluate(_two(40), FACTOR)
    assert v.verdict == "holds", v.text
    assert v.table["ratio"].to_numpy() == pytest.approx([40, 40], rel=0.1) and v.table["paired"].all()
    assert C.evaluate(_two(3), FACTOR).verdict == "does not hold"
    assert C.evaluate(_two(0.5), FACTOR).verdict == "does not hold"      # farther, not closer
    wide = C.evaluate(_two(12, noise=1.0), {**FACTOR, "average": "geometric"})
    assert wide.verdict == "inconclusive" and "includes 10" in wide.text
    assert C.evaluate(_two(40), {**FACTOR, "factor": 50}).verdict == "does not hold"


def test_factor_closer_averages_pairing_and_direction():
    runs = _two(10, noise=0.0)
    runs.loc[(runs["optimizer.schedule"] == "constant") & (runs["seed"] == 0), "opt/distance"] *= 100
    mean = C.evaluate(runs, {**FACTOR, "factor": 1}).table
    geo = C.evaluate(runs, {**FACTOR, "factor": 1, "average": "geometric"}).table
    assert mean["ratio"].to_numpy() == pytest.approx(10 * (5 + 100) / 6)             # one seed sets the mean
    assert geo["ratio"].to_numpy() == pytest.approx(10 * 100 ** (1 / 6))             # exp of the mean log ratio
    # the closer side on other seeds: not paired, each side resampled on its own
    other = runs.copy()
    other.loc[other["optimizer.schedule"] == "cosine", "seed"] += 100
    assert not C.evaluate(other, FACTOR).table["paired"].any()
    # higher is better: the factor is closer / baseline
    acc = _two(0.05, noise=0.0).rename(columns={"opt/distance": "test/accuracy"})
    v = C.evaluate(acc, {**FACTOR, "metric": "test/accuracy"})
    assert v.verdict == "holds" and v.table["ratio"].to_numpy() == pytest.approx([20, 20])


def test_factor_closer_pairs_seeds_so_a_shared_draw_cancels():
    """Each seed's draw scales both sides alike (a hard or an easy data set): paired, the ratio
    is 20 on every seed and its CI has no width; resampled side by side it is wide."""
    runs = _two(20, noise=0.0)
    draw = np.exp(2.0 * np.random.default_rng(3).standard_normal(runs["seed"].max() + 1))
    runs["opt/distance"] *= draw[runs["seed"]]
    runs = runs.sample(frac=1.0, random_state=0)     # rows in any order: seeds are matched by value
    v = C.evaluate(runs, {**FACTOR, "average": "geometric"})
    assert v.verdict == "holds" and v.table["paired"].all()
    assert v.table["ci_lo"].to_numpy() == pytest.approx(20) and v.table["ci_hi"].to_numpy() == pytest.approx(20)
    apart = runs.copy()
    apart.loc[apart["optimizer.schedule"] == "cosine", "seed"] += 100       # no seed in common: not paired
    u = C.evaluate(apart, {**FACTOR, "average": "geometric"})
    assert u.verdict == "inconclusive" and (u.table["ci_hi"] / u.table["ci_lo"] > 5).all()


def test_factor_closer_groups_every_pair_and_missing_values():
    two = pd.concat([_two(40), _two(3, group="stackloss")], ignore_index=True)
    v = C.evaluate(two, {**FACTOR, "by": ["dataset.name"]})
    assert v.verdict == "does not hold" and len(v.table) == 4 and "dataset.name=stackloss" in v.text
    assert C.evaluate(two, {**FACTOR, "where": {"dataset.name": "linear"}}).verdict == "holds"
    v = C.evaluate(_two(40), {**FACTOR, "closer": [{"optimizer.schedule": "cosine"}, {"optimizer.schedule": "step"}]})
    assert v.verdict == "inconclusive" and "step" in v.text
    v = C.evaluate(_two(40), {**FACTOR, "at": [0.1, 0.3]})
    assert v.verdict == "inconclusive" and "no runs at optimizer.lr=0.3" in v.text
    thin = C.evaluate(_two(40, seeds=1), FACTOR)
    assert thin.verdict == "inconclusive" and "fewer than 2 runs" in thin.text
    assert C.evaluate(_two(40), {**FACTOR, "average": "median"}).verdict == "inconclusive"


def test_series_of_settings_are_named_by_their_values():
    assert label({"optimizer.name": "gd", "optimizer.schedule": "cosine"}) == "gd (cosine)"
    assert label({"optimizer.schedule": "step", "optimizer.decay_rate": 0.5}) == "step (decay_rate=0.5)"
    assert label({"loss.name": "huber", "loss.delta": 0.5}) == "huber (delta=0.5)" and label("mae") == "mae"


# -- figures ---------------------------------------------------------------------------------
def _figure_runs() -> pd.DataFrame:
    runs = pd.concat([_power_runs({"constant": 1.0, "cosine": 1.0}, noise=0.0, seeds=3, group=g)
                      for g in ("linear", "diabetes")], ignore_index=True)
    cos = runs["optimizer.schedule"] == "cosine"
    runs.loc[cos, "opt/distance"] /= 100
    runs["opt/gap"] = runs["opt/distance"] / 10
    runs["train/objective"] = 0.5 + runs["opt/gap"]
    return runs


def test_loglog_figure_png_csv_and_reference(tmp_path):
    from harness.report.figures import FigureContext, study_figures

    runs = _figure_runs()
    study = {"figures": [{"kind": "loglog_vs_x", "lines": ["optimizer.schedule"], "panels": "dataset.name",
                          "order": {"dataset.name": ["linear", "diabetes"]},
                          "reference": {"slope": 1, "through": {"optimizer.schedule": "constant"},
                                        "x_range": [0.01, 0.1]}}]}
    (fig,) = study_figures(runs, study, FigureContext(tmp_path, lambda ids, key: pd.DataFrame()))
    assert fig.png.is_file() and fig.png.name == "opt_distance_vs_optimizer_lr_loglog.png"
    t = pd.read_csv(fig.png.with_suffix(".csv"))
    assert list(dict.fromkeys(t["col"])) == ["linear", "diabetes"]                  # the order asked for
    pts = t[t["line"] == "cosine"].set_index(["col", "x"])
    assert pts.at[("linear", 0.1), "mean"] == pytest.approx(0.1 * 0.1 / 100)        # geometric mean of equal runs
    ref = t[t["line"].str.startswith("slope 1")]
    assert len(ref) == 2 * len(LRS) and ref["mean"].to_numpy() == pytest.approx(0.1 * ref["x"].to_numpy())
    assert "fitted log-log slope: linear 1.00, diabetes 1.00" in fig.caption


def test_gap_curves_end_at_each_runs_gap(tmp_path):
    from harness.report.figures import FigureContext, study_figures

    runs = _figure_runs()
    gap = dict(zip(runs["run_id"], runs["opt/gap"]))
    steps = np.arange(0, 300, 100)

    def curves(ids, key):      # J(theta_t) = J* + gap * (1 + (T - t)): ends at J* + opt/gap
        assert key == "train/objective"
        return pd.DataFrame([(i, s, 0.5 + gap[i] * (1 + (200 - s))) for i in ids for s in steps],
                            columns=["run_id", "step", "value"])

    study = {"figures": [{"kind": "gap_curves", "at": {"optimizer.lr": 0.1}, "lines": ["optimizer.schedule"]}]}
    (fig,) = study_figures(runs, study, FigureContext(tmp_path, curves))
    assert fig.png.is_file() and fig.png.name == "objective_gap_curves_0_1.png"
    t = pd.read_csv(fig.png.with_suffix(".csv"))
    last = t[t["step"] == 200].set_index(["col", "line"])["median"]
    assert last[("linear", "constant")] == pytest.approx(0.1 * 0.1 / 10)
    assert last[("diabetes", "cosine")] == pytest.approx(0.1 * 0.1 / 1000)
    assert t["n_runs"].eq(3).all()


# -- the study, shrunk -----------------------------------------------------------------------
SHRUNK = ["dataset=linear,diabetes", "optimizer.lr=0.01,0.02,0.05,0.1,0.2,1"]


@pytest.mark.slow
def test_mae_subgradient_study_shrunk(tmp_path):
    """The tour's version (linear and diabetes, six lrs, 960 runs): every claim decided as in
    the full study (on linear alone where it names linear and stackloss), its figures drawn."""
    cmd = [sys.executable, "-m", "harness", "-m", "+experiment=mae_subgradient", *SHRUNK,
           f"tracking.uri=sqlite:///{tmp_path}/m.db", "hydra.launcher.progress=false"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = next((tmp_path / "reports" / "mae_subgradient").iterdir())
    md = (folder / "report.md").read_text()
    want = {"distance_proportional_to_lr": "holds", "faster_than_lr_past_the_smooth_edge": "holds",
            "decay_ten_times_closer": "holds", "adam_reaches_it": "does not hold",
            "adam_with_a_decaying_lr_reaches_it": "holds", "budget_binds_on_diabetes": "holds"}
    for claim, verdict in want.items():
        assert f"**{claim}** — **{verdict}**" in md, (claim, md[:4000])
    for name in ("opt_distance_vs_optimizer_lr_loglog", "objective_gap_curves_gd_0_1"):
        assert (folder / f"{name}.png").is_file() and (folder / f"{name}.csv").is_file()
    assert not (folder / "test_rmse_vs_loss.png").exists()     # one point per panel: not drawn
