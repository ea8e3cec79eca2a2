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
from harness.report.claims import stats as S
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
                 "train_loss_curves.csv", "test_rmse_vs_outliers_ratio.png", "test_rmse_vs_outliers_ratio.csv",
                 "test_rmse_curves.png", "test_rmse_curves.csv"):
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
        uri="sqlite:///x.db", experiment="e", sweep="s", out="o", compare=None)
    assert parse(["compare=a,b"])["compare"] == "a,b"
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


def test_where_a_list_of_values_matches_any_of_them():
    runs = pd.concat([_runs({"mse": 1}, kind=k) for k in ("shift", "leverage", "heavy_tail")], ignore_index=True)
    got = C.select(runs, {"outliers.kind": ["shift", "heavy_tail"], "outliers.ratio": [0.1, 0.3]})
    assert set(got["outliers.kind"]) == {"shift", "heavy_tail"} and set(got["outliers.ratio"]) == {0.1, 0.3}
    assert len(got) == 2 * 2 * 5


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
    b, lo, hi = S.slope(x, 2 + 3 * x)
    assert b == pytest.approx(3) and lo == pytest.approx(3) and hi == pytest.approx(3)
    y = 2 + 3 * x + np.random.default_rng(1).standard_normal(len(x)) * 0.1
    b, lo, hi = S.slope(x, y)
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
def test_robust_regression_study(tmp_path):
    """A shrunk robust_regression study, from a fresh folder: the sweep builds its own report
    (hydra.sweeper.report=true) under ./reports; MSE's RMSE must rise with shift outliers faster
    than Huber's and MAE's (the first claim holds); claims about kinds not run are inconclusive."""
    cmd = [sys.executable, "-m", "harness", "-m", "+experiment=robust_regression", "seed=0,1,2",
           "outliers.kind=shift", "outliers.ratio=0,0.1,0.3", "train.steps=300"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "mlflow.db").is_file()          # the default store, in the folder it ran from
    said = [line.split("report: ", 1)[1] for line in done.stderr.splitlines() if line.startswith("report: ")]
    assert said, done.stderr[-2000:]
    folder = tmp_path / said[0]                    # the folder (or its index.html) the sweeper printed
    folder = folder if folder.is_dir() else folder.parent
    assert (folder / "index.html").is_file(), said
    assert folder.parent == tmp_path / "reports" / "robust_regression"
    md = (folder / "report.md").read_text()
    assert "**mse_pulled_by_outliers** — **holds**" in md and "**huber_between_mse_and_mae** — **holds**" in md
    assert "**robust_under_heavy_tails** — **inconclusive**" in md and "outliers.kind=heavy_tail" in md
    s = pd.read_csv(folder / "summary.csv").set_index(["loss.name", "outliers.ratio"])
    assert s.at[("mse", 0.3), "test/rmse mean"] > 2 * s.at[("huber", 0.3), "test/rmse mean"]
    claims = pd.read_csv(folder / "claims.csv")
    assert set(claims["claim"]) == {"mse_pulled_by_outliers", "huber_between_mse_and_mae"}  # those with numbers


# -- figures on hand-made tables (no MLflow) -----------------------------------------------
def _fake_curves(ids, key="train/loss"):
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
    assert names == ["test_rmse_curves.png", "test_rmse_vs_loss.png", "test_rmse_vs_loss_best.png",
                     "train_loss_curves.png"]
    best = pd.read_csv(tmp_path / "test_rmse_vs_loss_best.csv")
    assert set(best["setting"]) == {"optimizer.lr=0.01"} and len(best) == 2
    assert any("selected on test metric" in f.caption for f in figs)
    main = pd.read_csv(tmp_path / "test_rmse_vs_loss.csv")
    assert main["n_diverged"].sum() == 3


def test_no_figure_of_one_point_per_panel(tmp_path):
    """One loss, no outlier ratio, tuning params varying: every panel of the metric figures
    would hold one point, so there are none (the curves stay)."""
    from harness.report.figures import make_figures

    rows = [{"run_id": f"{lr}{k}{s}", "status": "converged", "eval": "regression", "loss.name": "mae",
             "optimizer.lr": lr, "optimizer.schedule": k, "outliers.ratio": 0.1, "seed": s, "test/rmse": 1 + lr}
            for lr in (0.01, 0.1) for k in ("constant", "cosine") for s in range(3)]
    names = sorted(f.png.name for f in make_figures(pd.DataFrame(rows), tmp_path, _fake_curves))
    assert names == ["test_rmse_curves.png", "train_loss_curves.png"]


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


# -- every metric family, end to end -----------------------------------------------------------
FAMILY_SWEEPS = {
    "multiclass": ["loss=cross_entropy,gce", "dataset=digits", "outliers.kind=symmetric", "outliers.ratio=0,0.4",
                   "seed=0,1", "train.steps=30", "optimizer=adam"],
    "density": ["loss=kl", "loss.direction=forward,reverse", "dataset=mixture", "model=gaussian", "optimizer=adam",
                "optimizer.lr=0.05", "train.steps=100", "seed=0,1"],
    "embedding": ["loss=triplet,contrastive", "dataset=digits", "train.steps=20", "train.batch_size=128",
                  "optimizer=sgd"],
}


@pytest.fixture(scope="module")
def family_reports(tmp_path_factory):
    """The three sweeps above, run side by side (each in its own store), and their reports."""
    from harness.report import build_report

    tmp = tmp_path_factory.mktemp("families")
    procs = {}
    for fam, args in FAMILY_SWEEPS.items():
        uri = f"sqlite:///{tmp}/{fam}.db"
        cmd = [sys.executable, "-m", "harness", "-m", *args, f"tracking.uri={uri}", f"tracking.experiment={fam}",
               f"hydra.sweep.dir={tmp}/ms_{fam}"]
        procs[fam] = (uri, subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = {}
    for fam, (uri, p) in procs.items():
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"{fam}: {err[-3000:]}"
        out[fam] = build_report(uri, fam, out=tmp / "reports", attach=False)
    return out


def _pngs_have_csvs(folder: Path) -> set[str]:
    names = {p.name for p in folder.glob("*.png")}
    for n in names:
        assert (folder / n).with_suffix(".csv").is_file(), f"{n} has no CSV beside it"
    return names


@pytest.mark.slow
def test_classification_report(family_reports):
    folder = family_reports["multiclass"]
    pngs = _pngs_have_csvs(folder)
    assert {"test_accuracy_vs_outliers_ratio.png", "test_accuracy_curves.png", "train_loss_curves.png"} <= pngs
    s = pd.read_csv(folder / "summary.csv")
    assert len(s) == 4 and set(s["eval"]) == {"multiclass"}
    for m in ("test/accuracy", "test/precision", "test/recall", "test/f1", "test/log_loss", "test/ece"):
        assert s[f"{m} mean"].between(0, 10).all(), m
    assert "test/roc_auc mean" not in s and "test/rmse mean" not in s
    plot = pd.read_csv(folder / "test_accuracy_vs_outliers_ratio.csv")
    assert set(plot["line"]) == {"cross_entropy", "gce"} and set(plot["x"]) == {0.0, 0.4}
    md = (folder / "report.md").read_text()
    assert "label-noise ratio" in md and "outlier ratio" not in md
    header = next(line for line in md.splitlines() if line.startswith("| loss.name"))
    assert "| test/accuracy | test/precision |" in header and "test/roc_auc" not in header


@pytest.mark.slow
def test_density_report(family_reports):
    folder = family_reports["density"]
    pngs = _pngs_have_csvs(folder)
    assert {"density_fits.png", "test_kl_vs_loss.png", "test_kl_curves.png", "train_loss_curves.png"} <= pngs
    s = pd.read_csv(folder / "summary.csv")
    assert list(s["loss.direction"]) == ["forward", "reverse"] and set(s["loss.name"]) == {"kl"}
    for m in ("test/kl", "test/reverse_kl", "fit/mu", "fit/sigma"):
        assert np.isfinite(s[f"{m} mean"]).all(), m
    d = pd.read_csv(folder / "density_fits.csv")
    assert {"x", "p", "q", "line", "seed", "run_id"} <= set(d.columns)
    assert set(d["line"]) == {"target p", "kl (forward)", "kl (reverse)"}
    assert d.loc[d["line"] != "target p", "run_id"].nunique() == 4          # one curve per run
    target = d[d["line"] == "target p"]
    assert np.trapezoid(target["p"], target["x"]) == pytest.approx(1, abs=1e-3)
    for _, q in d[d["line"] != "target p"].groupby("run_id"):
        assert np.trapezoid(q["q"], q["x"]) == pytest.approx(1, abs=0.02)
    runs = pd.read_csv(folder / "runs.csv").set_index("run_id")
    one = d[d["line"] == "kl (forward)"].groupby("run_id")
    for rid, q in one:       # the drawn q peaks at the logged fit/mu
        assert q["x"].to_numpy()[q["q"].argmax()] == pytest.approx(runs.at[rid, "fit/mu"], abs=0.05)
    md = (folder / "report.md").read_text()
    assert "kl (forward): q on both modes in 2/2 runs" in md       # maximum likelihood covers both modes


@pytest.mark.slow
def test_embedding_report(family_reports):
    folder = family_reports["embedding"]
    pngs = _pngs_have_csvs(folder)
    assert {"test_recall_at_1_vs_loss.png", "train_loss_curves.png"} <= pngs
    assert "test_recall_at_1_curves.png" not in pngs        # final-only metric: no curve
    s = pd.read_csv(folder / "summary.csv")
    assert set(s["loss.name"]) == {"triplet", "contrastive"}
    for m in ("test/recall_at_1", "test/recall_at_5", "test/knn_accuracy"):
        assert s[f"{m} mean"].between(0, 1).all(), m
    assert (s["test/recall_at_5 mean"] >= s["test/recall_at_1 mean"]).all()
    md = (folder / "report.md").read_text()
    assert "one seed" in md and "test/knn_accuracy" in md


# -- claims: degradation and pairwise comparisons ----------------------------------------------
LEVERAGE = dict(check="degrades_alike", metric="test/rmse", x="outliers.ratio", where={"outliers.kind": "shift"},
                reference="mse", losses=["huber", "mae"])


def test_degrades_alike_holds_and_fails():
    v = C.evaluate(_runs({"mse": 10, "huber": 8, "mae": 9}), LEVERAGE)
    assert v.verdict == "holds", v.text
    t = v.table.set_index("loss")
    assert t.at["mse", "degradation"] == pytest.approx(10 * 0.3, abs=0.1)   # at: max (0.3) by default
    assert "from outliers.ratio=0 to 0.3" in v.text and "Rise of test/rmse" in v.text
    v = C.evaluate(_runs({"mse": 10, "huber": 8, "mae": 1}), LEVERAGE)
    assert v.verdict == "does not hold" and "mae" in v.text.split("Relative")[1], v.text
    # the reference does not degrade: nothing to compare with
    v = C.evaluate(_runs({"mse": 0, "huber": 0, "mae": 0}), LEVERAGE)
    assert v.verdict == "inconclusive" and "does not clearly degrade" in v.text


def test_degrades_alike_at_all_and_within_factor():
    # non-monotone, like leverage points: worst at the smallest ratio
    rows = _runs({"mse": 0, "huber": 0, "mae": 0})
    bump = {0.0: 0.0, 0.1: 3.0, 0.2: 2.0, 0.3: 1.0}
    rows["test/rmse"] += rows["outliers.ratio"].map(bump) * rows["loss.name"].map({"mse": 1.0, "huber": 0.6, "mae": 0.9})
    v = C.evaluate(rows, {**LEVERAGE, "at": "all"})
    assert v.verdict == "holds", v.text              # huber 0.6x: CIs apart, but within a factor 2
    assert v.table.set_index("loss").at["mse", "degradation"] == pytest.approx(2.0, abs=0.05)
    assert C.evaluate(rows, {**LEVERAGE, "at": "all", "factor": 1.2}).verdict == "does not hold"
    v = C.evaluate(rows, {**LEVERAGE, "at": [0.1]})
    assert v.table.set_index("loss").at["mse", "degradation"] == pytest.approx(3.0, abs=0.05)
    assert C.evaluate(rows, {**LEVERAGE, "at": [0.15]}).verdict == "inconclusive"


def test_degradation_direction_for_accuracy():
    runs = _runs({"mse": -1.0, "huber": -0.9})       # a metric that falls: accuracy
    runs = runs.rename(columns={"test/rmse": "test/accuracy"})
    claim = {**LEVERAGE, "metric": "test/accuracy", "losses": ["huber"]}
    v = C.evaluate(runs, claim)
    assert v.verdict == "holds" and "Fall of test/accuracy" in v.text
    assert v.table.set_index("loss").at["mse", "degradation"] == pytest.approx(0.3, abs=0.05)


BETTER = dict(check="better_than", metric="test/accuracy", x="outliers.ratio", where={"outliers.kind": "shift"},
              better="gce", worse=["cross_entropy"])


def _acc(offsets: dict[str, float], noise: float = 0.005) -> pd.DataFrame:
    r = _runs({k: -0.5 for k in offsets}, noise=noise).rename(columns={"test/rmse": "test/accuracy"})
    r["test/accuracy"] += r["loss.name"].map(offsets) * r["outliers.ratio"] - 0.1
    return r


def test_better_than():
    runs = _acc({"gce": 0.5, "cross_entropy": 0.0})      # gce ahead wherever the ratio > 0
    assert C.evaluate(runs, {**BETTER, "at": [0.2, 0.3]}).verdict == "holds"
    v = C.evaluate(runs, BETTER)                          # every ratio, 0 included: tied at 0
    assert v.verdict == "inconclusive" and "outliers.ratio=0:" in v.text
    assert C.evaluate(runs, {**BETTER, "better": "cross_entropy", "worse": "gce", "at": 0.3}).verdict == "does not hold"
    # lower is better for a loss-like metric: the direction comes from metric_table
    low = runs.rename(columns={"test/accuracy": "test/ece"})
    assert C.evaluate(low, {**BETTER, "metric": "test/ece", "at": [0.3]}).verdict == "does not hold"
    # no x: every run of the where filter, one comparison
    assert C.evaluate(runs, {**BETTER, "x": None, "where": {"outliers.ratio": 0.3}}).verdict == "holds"
    # unknown metric direction: said, unless the claim gives it
    odd = runs.rename(columns={"test/accuracy": "test/odd"})
    assert "higher_is_better" in C.evaluate(odd, {**BETTER, "metric": "test/odd", "at": 0.3}).text
    assert C.evaluate(odd, {**BETTER, "metric": "test/odd", "at": 0.3, "higher_is_better": True}).verdict == "holds"


def test_better_than_pairs_runs_by_seed():
    """Seeds share their data: a small, consistent gain under a large seed-to-seed spread is
    established by the paired differences, not by the two means' intervals."""
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.1, 6)                  # per seed: the data draw, shared by both losses
    rows = [{"loss.name": loss, "seed": s, "outliers.kind": "shift", "outliers.ratio": 0.3, "status": "converged",
             "test/accuracy": 0.7 + shared[s] + gain + 0.002 * rng.standard_normal()}
            for loss, gain in (("gce", 0.02), ("cross_entropy", 0.0)) for s in range(6)]
    runs = pd.DataFrame(rows)
    v = C.evaluate(runs, {**BETTER, "at": 0.3})
    assert v.verdict == "holds" and "Paired by seed" in v.text, v.text
    d = v.table[v.table["role"] == "paired difference"].iloc[0]
    assert d["loss"] == "gce - cross_entropy" and d["ci_lo"] > 0.01 and d["ci_hi"] < 0.03 and d["n"] == 6
    means = v.table[v.table["role"] != "paired difference"]
    assert means["ci_lo"].max() < means["ci_hi"].min()  # the unpaired intervals overlap
    # seeds that do not pair: back to the means' intervals, which overlap here
    unpaired = runs.assign(seed=np.where(runs["loss.name"] == "gce", runs["seed"] + 100, runs["seed"]))
    v = C.evaluate(unpaired, {**BETTER, "at": 0.3})
    assert v.verdict == "inconclusive" and "Paired" not in v.text, v.text
    assert C.evaluate(runs, {**BETTER, "better": "cross_entropy", "worse": "gce", "at": 0.3}).verdict == "does not hold"


def test_a_loss_name_stands_for_each_of_its_variants():
    """`huber` in a claim, on a sweep with two deltas, is checked for each Huber series."""
    runs = _runs({"mse": 10, "mae": 0.5})
    small, large = _runs({"huber": 2}), _runs({"huber": 6})
    runs = pd.concat([runs, small.assign(**{"loss.delta": 0.3}), large.assign(**{"loss.delta": 3.0})], ignore_index=True)
    v = C.evaluate(runs, {**CLAIM, "smaller": ["huber", "mae"]})
    assert v.verdict == "holds" and set(v.table["loss"]) == {"mse", "huber (delta=0.3)", "huber (delta=3)", "mae"}, v.text
    v = C.evaluate(runs, {**CLAIM, "larger": ["huber"], "smaller": ["mae"]})
    assert v.verdict == "holds" and len(v.table) == 3
    v = C.evaluate(runs, {**CLAIM, "larger": [{"loss.name": "huber", "loss.delta": 3.0}], "smaller": ["huber"]})
    assert v.verdict == "holds" and len(v.table) == 2   # against delta=0.3; a series is not compared with itself
    v = C.evaluate(runs, {**LEVERAGE, "where": {"outliers.kind": "shift"}, "reference": "huber", "losses": ["mae"]})
    assert v.verdict == "inconclusive" and "2 variants" in v.text and "loss.delta: 0.3" in v.text, v.text


def test_claim_losses_as_variants():
    """A loss entry may be a mapping of params, named like the report's series."""
    runs = _acc({"triplet": 0.0})
    runs["loss.mining"] = np.where(runs["seed"] % 2 == 0, "hard", "random")
    runs.loc[runs["loss.mining"] == "hard", "test/accuracy"] += 0.2 * runs["outliers.ratio"]
    runs = pd.concat([runs, runs.assign(seed=runs["seed"] + 10)], ignore_index=True)
    hard, rand = {"loss.name": "triplet", "loss.mining": "hard"}, {"loss.name": "triplet", "loss.mining": "random"}
    v = C.evaluate(runs, {**BETTER, "better": hard, "worse": rand, "at": 0.3})
    assert v.verdict == "holds" and "triplet (hard) better than triplet (random)" in v.text, v.text
    assert C.series_label({"loss.name": "gce", "loss.q": 0.5}) == "gce (q=0.5)"
    semi = {"loss.name": "triplet", "loss.mining": "semi_hard"}       # not in this sweep
    v = C.evaluate(runs, {**BETTER, "better": semi, "worse": rand, "at": 0.3})
    assert v.verdict == "inconclusive" and "no runs of triplet (semi_hard)" in v.text, v.text
    v = C.evaluate(runs, {"check": "slope_greater", "metric": "test/accuracy", "x": "outliers.ratio",
                          "larger": [hard], "smaller": [rand]})
    assert v.verdict == "holds" and set(v.table["loss"]) == {"triplet (hard)", "triplet (random)"}


# -- series names, axes, density geometry, curve sources -------------------------------------------
def test_series_keep_their_colour_across_a_reports_figures():
    from harness.report import plots

    plots.reset_colors()
    first = plots.colors(["triplet (hard)", "contrastive", "cross_entropy (hidden layer)"])
    second = plots.colors(["triplet (hard)", "contrastive", "triplet (random)"])
    assert second["triplet (hard)"] == first["triplet (hard)"] and second["contrastive"] == first["contrastive"]
    assert len(set(second.values())) == 3 and second["triplet (random)"] not in first.values()
    many = plots.colors([f"loss{i}" for i in range(9)])     # 12 labels in the report: no clash in a figure
    assert len(set(many.values())) == 9
    plots.reset_colors()


def test_line_labels():
    line = ["loss.name", "loss.direction", "loss.margin", "loss.mining"]
    assert A.line_label({"loss.name": "kl", "loss.direction": "reverse", "loss.margin": np.nan,
                         "loss.mining": np.nan}, line) == "kl (reverse)"
    assert A.line_label({"loss.name": "triplet", "loss.direction": np.nan, "loss.margin": 0.5,
                         "loss.mining": "hard"}, line) == "triplet (hard, margin=0.5)"
    assert A.line_label({"loss.name": "mse"}, ["loss.name"]) == "mse"


# (a claim's loss entry, the series name); the same options as a runs-table row give the same name
SERIES_NAMES = [
    ("mse", "mse"),
    ({"loss.name": "huber"}, "huber"),
    ({"loss.name": "kl", "loss.direction": "reverse"}, "kl (reverse)"),
    ({"loss.name": "triplet", "loss.mining": "hard"}, "triplet (hard)"),
    ({"loss.name": "gce", "loss.q": 0.5}, "gce (q=0.5)"),
    ({"loss.name": "huber", "loss.delta": 1.0}, "huber (delta=1)"),
    ({"loss.name": "huber", "loss.delta": 3}, "huber (delta=3)"),
    ({"loss.name": "huber", "loss.delta": np.float64(0.25)}, "huber (delta=0.25)"),
    ({"loss.name": "quantile", "loss.tau": 1e-4}, "quantile (tau=0.0001)"),
    ({"loss.name": "triplet", "loss.margin": 0.5, "loss.mining": "hard"}, "triplet (hard, margin=0.5)"),
    ({"loss.name": "cross_entropy", "loss.label_smoothing": 0.1, "loss.weighting": "balanced"},
     "cross_entropy (balanced, label_smoothing=0.1)"),
]


@pytest.mark.parametrize("entry, name", SERIES_NAMES, ids=[n for _, n in SERIES_NAMES])
def test_claims_and_figures_name_a_series_alike(entry, name):
    """claims.series_label (a claim's loss entry) and aggregate.line_label (a runs-table row, other
    loss columns NaN or "null", as in a sweep of several losses) give one name: both are
    series.series_name, and must stay so, or a claim's verdict names a series no figure shows."""
    opts = entry if isinstance(entry, dict) else {"loss.name": entry}
    row = pd.Series({"loss.name": opts["loss.name"], "loss.other": np.nan, "loss.unset": "null",
                     **{k: v for k, v in opts.items() if k != "loss.name"}, "outliers.ratio": 0.1})
    line = ["loss.name", "loss.other", "loss.unset"] + [k for k in opts if k != "loss.name"]
    assert C.series_label(entry) == name
    assert A.line_label(row, line) == name
    assert A.line_label(dict(row), line) == name


def test_a_claims_variants_are_the_figures_series():
    """On a sweep's runs table, the series a claim's bare loss names expand to (claims.variants)
    are named exactly as the figures' lines (aggregate.roles, line_label)."""
    rows = [{"loss.name": loss, **opts, "outliers.ratio": r, "seed": s, "eval": "regression", "test/rmse": 1.0}
            for loss, opts in [("mse", {}), ("huber", {"loss.delta": 0.3}), ("huber", {"loss.delta": 1.0}),
                               ("huber", {"loss.delta": 3.0}), ("triplet", {"loss.mining": "hard"}),
                               ("triplet", {"loss.mining": "semi_hard"}), ("gce", {"loss.q": 0.5}),
                               ("gce", {"loss.q": 1.0}), ("mae", {"loss.margin": 1.0})]
            for r in (0.0, 0.2) for s in range(2)]
    runs = pd.DataFrame(rows)
    line = A.roles(runs).line
    figures = set(runs.apply(lambda row: A.line_label(row, line), axis=1))
    claims = {C.series_label(e) for e in C.variants(runs, ["mse", "huber", "triplet", "gce", "mae"])}
    assert claims == figures == {"mse", "huber (delta=0.3)", "huber (delta=1)", "huber (delta=3)", "triplet (hard)",
                                 "triplet (semi_hard)", "gce (q=0.5)", "gce (q=1)", "mae"}   # mae's one margin: no name

def test_x_label_says_label_noise_for_classification():
    from harness.report.figures import x_label

    cls = pd.DataFrame({"task": ["multiclass", "multiclass"]})
    assert x_label("outliers.ratio", cls).startswith("label-noise ratio")
    assert x_label("outliers.ratio", pd.DataFrame({"task": ["regression"]})).startswith("outlier ratio")


MIX = {"weights": [0.5, 0.5], "means": [-2.0, 2.0], "sds": [0.5, 0.5]}


def test_modes_of_a_mixture_and_of_a_kde():
    from harness.report.density import modes

    (a, lo1, hi1), (b, lo2, hi2) = modes(MIX)          # a lone Gaussian's extent: mean +- 2 sd
    assert (a, lo1, hi1) == pytest.approx((-2, -3, -1), abs=2e-3) and (b, lo2, hi2) == pytest.approx((2, 1, 3), abs=2e-3)
    g = np.random.default_rng(0)
    x = np.r_[g.normal(-2, 0.5, 200), g.normal(2, 0.5, 200)]
    kde = {"weights": [1 / len(x)] * len(x), "means": x.tolist(), "sds": [0.3] * len(x)}
    assert [round(m) for m, _, _ in modes(kde)] == [-2, 2]


def test_fit_place():
    from harness.report.density import fit_place, modes

    where = modes(MIX)
    assert fit_place(0.0, 2.06, where) == "both modes"         # the forward-KL (moment-matching) fit
    assert fit_place(2.0, 0.5, where) == "one mode" and fit_place(-1.98, 0.52, where) == "one mode"
    assert fit_place(8.0, 0.5, where) == "neither mode"


def test_density_figure_one_line_per_run(tmp_path):
    """Seeds on opposite modes are drawn apart (their mean would sit between the modes)."""
    import json

    from harness.report.density import density_figure

    rows = [dict(run_id="f0", seed=0, mu=0.0, sigma=2.06, d="forward"), dict(run_id="f1", seed=1, mu=0.01, sigma=2.05, d="forward"),
            dict(run_id="r0", seed=0, mu=-2.0, sigma=0.5, d="reverse"), dict(run_id="r1", seed=1, mu=2.0, sigma=0.5, d="reverse")]
    runs = pd.DataFrame([{"run_id": r["run_id"], "status": "converged", "eval": "density", "task": "density",
                          "loss.name": "kl", "loss.direction": r["d"], "seed": r["seed"], "fit/mu": r["mu"],
                          "fit/sigma": r["sigma"], "test/kl": 1.0} for r in rows])
    fig = density_figure(runs, tmp_path, "", "", lambda rid, name: json.dumps(MIX) if name == "target.json" else None)
    assert fig.png.is_file() and fig.png.with_suffix(".csv").is_file()
    assert "kl (forward): q on both modes in 2/2 runs" in fig.caption
    assert "kl (reverse): q on one mode in 2/2 runs" in fig.caption
    d = pd.read_csv(fig.png.with_suffix(".csv"))
    peaks = {rid: g["x"].to_numpy()[g["q"].argmax()] for rid, g in d[d["run_id"].notna()].groupby("run_id")}
    assert peaks["r0"] == pytest.approx(-2, abs=0.05) and peaks["r1"] == pytest.approx(2, abs=0.05)


def test_curves_from_parquet_and_history(monkeypatch):
    """Runs written with tracking.curves=parquet are read from their file, the others from
    MLflow's metric history; one table either way."""
    from types import SimpleNamespace

    from harness.report import load as L

    class Client:
        tracking_uri = "sqlite:///nowhere.db"

        def get_metric_history(self, rid, key):
            return [SimpleNamespace(step=s, value=float(s)) for s in (0, 10)] if rid == "m" else []

    uri = "runs:/parent/curves/x.parquet"
    monkeypatch.setitem(L._CURVE_FILES, (Client.tracking_uri, uri), pd.DataFrame(
        {"run_id": ["p", "p", "p", "q"], "metric": ["train/loss", "train/loss", "test/kl", "train/loss"],
         "step": [0, 5, 0, 0], "value": [3.0, 2.0, 9.0, 7.0]}))
    got = L.curves(Client(), ["m", "p"], "train/loss", {"m": None, "p": uri})
    assert list(zip(got["run_id"], got["step"], got["value"])) == [("m", 0, 0.0), ("m", 10, 10.0), ("p", 0, 3.0), ("p", 5, 2.0)]
    assert got["value"].dtype == float


@pytest.mark.slow
def test_a_study_of_parts_is_one_sweep_and_one_report(tmp_path):
    """The tour: every part's runs in one sweep (one parent), each tagged with its study; one
    report that opens with a table of every claim linking to its part's section, and a section
    per part with that part's figures (file names prefixed by the part)."""
    from conftest import harness
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/m.db"
    harness("-m", "+experiment=tour", "seed=0,1", "train.steps=20", f"tracking.uri={uri}",
            f"hydra.sweep.dir={tmp_path}/ms", cwd=tmp_path)
    c = MlflowClient(uri)
    e = c.get_experiment_by_name("tour")
    runs = c.search_runs([e.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    import yaml

    tour = yaml.safe_load((Path(__file__).resolve().parents[1] / "experiments" / "tour.yaml").read_text())
    names = [p["name"] for p in tour["study"]["parts"]]
    assert len(parents) == 1 and {r.data.tags["lossbench.study"] for r in kids} == set(names)
    folder = next((tmp_path / "reports" / "tour").iterdir())
    md = (folder / "report.md").read_text()
    head, _, rest = md.partition("## Claims of the article")
    table = [ln for ln in rest.splitlines() if ln.startswith("| [")]
    study = yaml.safe_load(Path(c.download_artifacts(parents[0].info.run_id, "study.yaml", str(tmp_path))).read_text())
    assert [p["name"] for p in study["parts"]] == names and all(p["claims"] for p in study["parts"])
    assert len(table) == sum(len(p["claims"]) for p in study["parts"])
    for name in names:
        assert f"[{name}](#{name})" in md and f"\n## {name}\n" in md
        assert any(p.name.startswith(f"{name}_") for p in folder.glob("*.png")), name
    html = (folder / "index.html").read_text()
    assert all(f'<h2 id="{n}">' in html and f'href="#{n}"' in html for n in names)
    claims = pd.read_csv(folder / "claims.csv")
    assert set(claims["part"]) <= set(names) and {"part", "claim", "verdict"} <= set(claims.columns)


def test_intervals_respect_the_metrics_bounds():
    """A bounded metric's interval stays within its bounds (a KL near 0 does not reach below 0,
    an accuracy near 1 not above 1); an unbounded one keeps the t interval."""
    from scipy.stats import t

    from harness.metric_table import metric
    from harness.report.claims.stats import mean_interval

    kl = np.array([1e-6, 2e-6, 5e-5, 3e-7, 4e-6])
    lo, hi = mean_interval(kl, metric("test/kl").bounds)
    assert 0 <= kl.min() <= lo <= kl.mean() <= hi <= kl.max()
    naive = kl.mean() - t.ppf(0.975, 4) * kl.std(ddof=1) / np.sqrt(5)
    assert naive < 0                                   # what the t interval said
    acc = np.array([1.0, 1.0, 0.99, 1.0])
    lo, hi = mean_interval(acc, metric("test/accuracy").bounds)
    assert hi <= 1.0 and lo >= 0.99
    nll = np.array([1.0, 2.0, 3.0, 4.0])
    lo, hi = mean_interval(nll, metric("test/nll").bounds)
    half = t.ppf(0.975, 3) * nll.std(ddof=1) / 2
    assert (lo, hi) == pytest.approx((2.5 - half, 2.5 + half))
    assert np.isnan(mean_interval([1.0], (0.0, None))).all()
    # the summary table carries it beside the t half-width
    runs = pd.DataFrame({"loss.name": ["a"] * 5, "seed": range(5), "status": "converged", "test/kl": kl})
    s = A.stats(runs, ["loss.name"], ["test/kl"])
    assert s.at[0, "test/kl ci_lo"] >= 0 and s.at[0, "test/kl mean"] - s.at[0, "test/kl ci95"] < 0


def test_capped_panels_keep_every_row():
    from harness.report.figures import MAX_PANELS, _cap_panels

    t = pd.DataFrame([{"row": r, "col": f"c{c}", "line": "x"} for r in ("a", "b") for c in range(9)])
    shown, note = _cap_panels(t)
    assert set(shown["row"]) == {"a", "b"} and shown["col"].nunique() == MAX_PANELS // 2 and "12 of 18" in note


def test_curves_read_in_one_query_equal_the_metric_history_and_are_remembered(tmp_path):
    """From an SQL store, L.curves reads histories in bulk (tracking/sql.py: read_history) with
    the same rows as MLflow's get_metric_history; build.remembered fetches each (run, key) once."""
    from mlflow.tracking import MlflowClient

    from harness.report import load as L
    from harness.report.build import remembered
    from harness.tracking.sql import store_of

    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    eid = client.create_experiment("x")
    ids = []
    for k in range(3):
        rid = client.create_run(eid).info.run_id
        for s in range(5):
            client.log_metric(rid, "train/loss", float("nan") if (k, s) == (1, 2) else 1.0 / (1 + s + k), step=s)
        ids.append(rid)
    assert store_of(client) is not None
    bulk = L.curves(client, ids, "train/loss")
    slow = pd.DataFrame([(rid, m.step, m.value) for rid in ids for m in client.get_metric_history(rid, "train/loss")],
                        columns=["run_id", "step", "value"]).sort_values(["run_id", "step"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(bulk, slow.astype({"step": "int64"}))
    assert bulk["value"].isna().sum() == 1
    calls = []
    fetch = remembered(lambda ids_, key: calls.append(list(ids_)) or L.curves(client, ids_, key))
    a = fetch(ids[:2], "train/loss")
    b = fetch(ids, "train/loss")
    assert calls == [ids[:2], ids[2:]] and len(a) == 10 and len(b) == 15
    pd.testing.assert_frame_equal(b, bulk)


def test_performance_profile_against_a_hand_computed_table():
    """Three problems, two losses, RMSE: a = (1, 2, 3), b = (2, 2, 1.5). Ratios: a (1, 1, 2),
    b (2, 1, 1); rho_a(1) = 2/3, rho_b(1) = 2/3, rho_a(1.9) = 2/3, rho_a(2) = 1, rho_b(2) = 1.
    Accuracy costs are 1 - m; a diverged run never counts."""
    from harness.report import profile as P

    runs = pd.DataFrame({"dataset.name": ["x", "y", "z"] * 2, "loss.name": ["a"] * 3 + ["b"] * 3,
                         "test/rmse": [1.0, 2.0, 3.0, 2.0, 2.0, 1.5]})
    rt = P.ratios(runs, "test/rmse", ["dataset.name"], ["loss.name"]).set_index(["dataset.name", "line"])
    assert rt["ratio"].to_dict() == {("x", "a"): 1.0, ("y", "a"): 1.0, ("z", "a"): 2.0,
                                     ("x", "b"): 2.0, ("y", "b"): 1.0, ("z", "b"): 1.0}
    prof = P.profile(rt.reset_index(), ["dataset.name"], taus=[1.0, 1.9, 2.0]).set_index(["line", "tau"])["rho"]
    assert prof[("a", 1.0)] == pytest.approx(2 / 3) and prof[("b", 1.0)] == pytest.approx(2 / 3)
    assert prof[("a", 1.9)] == pytest.approx(2 / 3) and prof[("a", 2.0)] == 1.0 and prof[("b", 2.0)] == 1.0
    acc = pd.DataFrame({"dataset.name": ["x", "x"], "loss.name": ["a", "b"], "test/accuracy": [0.9, 0.8]})
    r = P.ratios(acc, "test/accuracy", ["dataset.name"], ["loss.name"]).set_index("line")["ratio"]
    assert r["a"] == 1.0 and r["b"] == pytest.approx(2.0)           # errors 0.1 and 0.2
    div = runs.assign(**{"test/rmse": [1.0, 2.0, np.nan, 2.0, 2.0, 1.5]})
    prof = P.profile(P.ratios(div, "test/rmse", ["dataset.name"], ["loss.name"]), ["dataset.name"], taus=[10.0])
    assert prof.set_index("line")["rho"].to_dict() == {"a": pytest.approx(2 / 3), "b": 1.0}


def test_two_sweeps_side_by_side(tmp_path):
    """compare=B: the settings both sweeps ran, paired by seed; a sweep against itself is tied
    everywhere, against a worse learning rate it is better where it should be."""
    from conftest import harness

    from harness.report import build_report
    from harness.report import load as L

    uri = f"sqlite:///{tmp_path}/m.db"
    base = ["-m", "loss=mse,huber", "outliers.ratio=0,0.2", "seed=0,1,2", "train.steps=60", f"tracking.uri={uri}"]
    harness(*base, "optimizer.lr=0.1", f"hydra.sweep.dir={tmp_path}/a", cwd=tmp_path)
    harness(*base, "optimizer.lr=0.1", f"hydra.sweep.dir={tmp_path}/b", cwd=tmp_path)
    harness(*base[:2], "outliers.ratio=0", *base[3:], "optimizer.lr=0.001", f"hydra.sweep.dir={tmp_path}/c", cwd=tmp_path)
    c = L.client_for(uri)
    ids = [r.data.tags["lossbench.sweep_id"] for r in
           c.search_runs([c.get_experiment_by_name("lossbench").experiment_id], "tags.`lossbench.kind` = 'sweep'",
                         order_by=["attributes.start_time ASC"])]
    same = build_report(uri, "lossbench", sweep=ids[0], compare=ids[1], out=tmp_path / "r1", attach=False)
    md = (same / "report.md").read_text()
    assert f"## Compared with sweep {ids[1]}" in md and "4 shared settings: A better on 0, B better on 0, tied on 4" in md
    slow = build_report(uri, "lossbench", sweep=ids[0], compare=ids[2], out=tmp_path / "r2", attach=False)
    md = (slow / "report.md").read_text()
    # on clean data lr 0.1 beats lr 0.001 after 60 steps (paired by seed); only the clean settings are shared
    assert "2 shared settings: A better on 2, B better on 0, tied on 0" in md
