"""The loss catalogue, end to end: every registered loss on the data of its task, and the
reference results the issue names.

* L2-regularized logistic regression by full-batch GD on breast_cancer reaches the optimum of
  the same objective found by scikit-learn and by SciPy;
* multinomial logistic regression on MNIST-1D reaches about its published ~32% test accuracy,
  and an MLP well above it;
* every registered loss (custom aside) runs in a small command-line sweep into MLflow, on a
  synthetic and a public data set of its task, and logs its metric family; every task has
  public data (kl: faithful, and soft_targets distilled from a teacher on digits), and
  forward KL on faithful is maximum likelihood;
* every loss put on data of a task it does not fit is refused in one line naming `loss`, and
  bad dataset options are refused in one line on the command line;
* a user's own loss (a Cauchy loss in a module of the working directory) sweeps like a built-in;
* every study in experiments/ opens with its command, validates over its grid, and its claims
  name registered checks and swept losses (the studies themselves take ~0.5-1 min each: run them
  by hand, see experiments/README.md).

    .venv/bin/python -m pytest tests/test_catalogue.py -q            # all (slow ones ~1-2 min)
    .venv/bin/python -m pytest tests/test_catalogue.py -q -m "not slow"
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import spec
from harness.data import DATASETS, load
from harness.errors import ConfigError
from harness.losses import LOSSES
from harness.metric_table import FAMILIES
from harness.models import MODELS
from harness.tasks import TASKS

BUILTIN = [n for n in LOSSES.names() if n != "custom"]
BYO = {n for n, c in DATASETS.items() if c.user_data}   # bring-your-own: a file or an id from the user


def _task_of(name: str, example: dict) -> str:
    cls = DATASETS.get(name)
    return cls.task_of(cls.normalize(example, "dataset"))


# every registered data set, each in the variants it names (soft_targets: synthetic and distilled on digits)
EXAMPLES = {n: DATASETS.get(n).examples() for n in DATASETS.names() if n not in BYO}
BY_DATA_TASK = {t: [n for n in EXAMPLES if _task_of(n, {}) == t] for t in TASKS.names()}


def _is_public(params: dict[str, str]) -> bool:
    """Whether a run (its MLflow params) trained on public data."""
    section = {k[len("dataset."):]: v for k, v in params.items() if k.startswith("dataset.")}
    return DATASETS.get(params["dataset.name"]).public(section)


def _model_for(loss: str, task: str) -> str:
    """The default model where it has the loss's head, else the first model that has it."""
    head = LOSSES.get(loss).head_for(task)
    return "linear" if head in MODELS.get("linear").heads else next(n for n, c in MODELS.items() if head in c.heads)


def _sweeps() -> dict[str, list[str]]:
    """One command-line sweep per (task, model): every loss of the task (that model trains) x
    every data set of the task, in each of its variants. Derived from the registries, so a new
    loss, data set or task is swept here the moment it is registered."""
    out = {}
    for task in TASKS.names():
        by_model: dict[str, list[str]] = {}
        for loss in BUILTIN:
            if task in LOSSES.get(loss).tasks:
                by_model.setdefault(_model_for(loss, task), []).append(loss)
        data = BY_DATA_TASK[task]
        if not data:
            continue
        options: dict[str, list] = {}
        for name in data:
            for example in EXAMPLES[name]:
                for k, v in example.items():
                    options.setdefault(k, [])
                    if v not in options[k]:
                        options[k].append(v)
        for model, losses in by_model.items():
            grid = [f"loss={','.join(losses)}", f"dataset={','.join(data)}", f"model={model}"]
            grid += [f"dataset.{k}={','.join(map(str, vs))}" for k, vs in options.items()]
            out[f"{task}-{model}"] = grid
    return out


SWEEPS = _sweeps()
# one data set per task, for the mismatch checks (the registry's own, no user file needed)
BY_TASK = {t: names[0] for t, names in BY_DATA_TASK.items() if names}


def _expected_runs(grid: list[str]) -> int:
    losses = grid[0].split("=", 1)[1].split(",")
    data = grid[1].split("=", 1)[1].split(",")
    return len(losses) * sum(len(EXAMPLES[d]) for d in data)


def _env() -> dict[str, str]:
    # The sweeps below run side by side; one intra-op thread each keeps them from fighting over
    # the cores (two OpenMP threads per process on a busy 2-core machine run ~10x slower).
    return {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1", "OMP_NUM_THREADS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true"}


def _launch(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(procs: dict[str, subprocess.Popen], timeout: float = 600) -> dict[str, tuple[int, str, str]]:
    """{name: (returncode, stdout, stderr)} once every process has ended."""
    out = {k: p.communicate(timeout=timeout) for k, p in procs.items()}
    return {k: (procs[k].returncode, *out[k]) for k in procs}


# ------------------------------------------------------- logistic regression: the optimum


@pytest.mark.slow   # ~2 s on an idle 2-core machine, 30-40 s when other processes share the cores
def test_l2_logistic_regression_by_gd_reaches_sklearn_and_scipy_optimum():
    """objective(W, b) = mean_i BCE(x_i W + b, y_i) + w |W|^2  (b unpenalized).
    scikit-learn's LogisticRegression minimizes |W|^2 / 2 + C sum_i BCE_i: the same minimizer
    when C = 1 / (2 n w). w = 0.03 keeps the problem well conditioned (kappa ~ 150), so plain GD
    at lr = 0.2 (< 2 / L, L ~ 9) gets every coefficient within 5e-4 in 1200 steps, ~5e-5 in 1500."""
    import scipy.optimize
    from sklearn.linear_model import LogisticRegression

    from harness.engine import train

    w = 0.03
    s = spec("dataset=breast_cancer", "loss=bce", "model=linear", "optimizer=gd", "optimizer.lr=0.2",
             "train.steps=1500", "train.eval_every=1500", "train.dtype=float64",
             "regularization.kind=l2", f"regularization.weight={w}")
    (r,) = train([s], keep_params=True)
    d = load(s.dataset, s.seed, s.outlier_tuple())      # the exact arrays the run trained on
    X, y = d.X_train, d.y_train.astype(float)
    n = len(y)
    got = np.r_[r.params["W"][:, 0], r.params["b"]]

    sk = LogisticRegression(C=1.0 / (2 * n * w), tol=1e-12, max_iter=100_000).fit(X, y)
    ref = np.r_[sk.coef_[0], sk.intercept_]

    def objective(theta):
        z = X @ theta[:-1] + theta[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        bce = np.logaddexp(0.0, z) - y * z                           # -[y log p + (1-y) log(1-p)]
        grad = np.r_[X.T @ (p - y) / n + 2 * w * theta[:-1], np.mean(p - y)]
        return bce.mean() + w * theta[:-1] @ theta[:-1], grad

    sp = scipy.optimize.minimize(objective, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                                 options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000})
    assert r.status == "converged"
    np.testing.assert_allclose(ref, sp.x, rtol=1e-5, atol=1e-7)      # C matched: the same optimum
    rel = np.abs(got - ref) / np.abs(ref)                            # every coefficient, and the bias
    assert rel.max() <= 1e-3, f"max relative coefficient error {rel.max():.2e}"
    assert objective(got)[0] - sp.fun <= 1e-9


# ------------------------------------------------------------- MNIST-1D reference numbers


@pytest.mark.slow
def test_mnist1d_logistic_regression_and_mlp():
    """Greydanus (2020): logistic regression ~32% test accuracy, an MLP ~68%. Multinomial
    logistic regression is loss=cross_entropy on model=linear (full-batch GD); the MLP (two
    hidden layers of 100, Adam, minibatches of 100) gets ~0.60-0.64 in 800 steps here."""
    from harness.engine import train

    lin = spec("dataset=mnist1d", "loss=cross_entropy", "model=linear", "optimizer=gd", "optimizer.lr=0.5",
               "train.steps=500", "train.eval_every=100")
    mlp = spec("dataset=mnist1d", "loss=cross_entropy", "model=mlp", "model.width=100", "optimizer=adam",
               "optimizer.lr=0.01", "train.batch_size=100", "train.steps=800", "train.eval_every=100")
    (rl,), (rm,) = train([lin]), train([mlp])
    acc_lin, acc_mlp = rl.final["test/accuracy"], rm.final["test/accuracy"]
    assert 0.28 <= acc_lin <= 0.38, acc_lin
    assert acc_mlp >= 0.55 and acc_mlp >= acc_lin + 0.2, (acc_lin, acc_mlp)


# ------------------------------------------------------- every loss, end to end into MLflow

# Adam, because one step size must suit every loss of a sweep: full-batch GD at its default
# lr=0.1 diverges on contrastive + breast_cancer within 10 steps (squared distances of heavy-
# tailed features), while Adam's steps do not scale with the gradient.
STEPS = 20


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """Runs the sweeps above (and the custom-loss sweep) side by side; returns
    {name: (uri, returncode, stdout, stderr)}."""
    tmp = tmp_path_factory.mktemp("catalogue")
    procs, uris = {}, {}
    for name, grid in SWEEPS.items():
        uris[name] = f"sqlite:///{tmp}/{name}.db"
        procs[name] = _launch(["-m", *grid, "optimizer=adam", f"train.steps={STEPS}", "train.eval_every=10",
                               f"tracking.uri={uris[name]}",
                               f"tracking.experiment={name}", f"hydra.sweep.dir={tmp}/{name}"], cwd=tmp)
    custom = tmp / "custom"
    custom.mkdir()
    (custom / "my_losses.py").write_text(CAUCHY)
    uris["custom"] = f"sqlite:///{custom}/mlflow.db"
    procs["custom"] = _launch(["-m", "loss=custom", "loss._target_=my_losses.cauchy", "+loss.c=0.5,2",
                               "outliers.ratio=0,0.2", "train.steps=30", f"tracking.uri={uris['custom']}",
                               "tracking.experiment=custom", f"hydra.sweep.dir={custom}/ms"], cwd=custom)
    return {k: (uris[k], *v) for k, v in _wait(procs).items()}


def _child_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _spec_of(params: dict[str, str]):
    """The spec of a logged run, as far as its expected metrics go: loss, model, data set and
    the options its variant sets."""
    name = params["dataset.name"]
    keys = {k for example in EXAMPLES[name] for k in example}
    extra = [f"dataset.{k}={params[f'dataset.{k}']}" for k in sorted(keys)]
    return spec(f"loss={params['loss.name']}", f"dataset={name}", f"model={params['model.name']}", *extra)


def _expected_metrics(s) -> set[str]:
    """The final metrics a run must have: its family's members (metric_table.py), param_error
    where the data's true weights are known (a linear model; these sweeps train no MLP, so no
    hidden-layer retrieval metrics)."""
    fam = FAMILIES[s.family]
    want = set(fam.members) | {"train/loss", "train/objective", "train/grad_norm"}
    if "param_error" in fam.extras and load(s.dataset, s.seed, s.outlier_tuple()).w_true is not None:
        want.add("param_error")
    return want


@pytest.mark.slow
@pytest.mark.parametrize("task", list(SWEEPS))
def test_each_task_sweep_logs_its_metric_family(catalogue, task):
    uri, rc, out, err = catalogue[task]
    assert rc == 0, err[-3000:]
    runs = _child_runs(uri, task)
    assert len(runs) == _expected_runs(SWEEPS[task])
    for r in runs:
        p, tags, m = r.data.params, r.data.tags, r.data.metrics
        assert tags["lossbench.status"] == "converged", (p["loss.name"], p["dataset.name"])
        s = _spec_of(p)
        assert tags["lossbench.eval"] == s.eval_family
        want = _expected_metrics(s)
        missing = want - set(m)
        assert not missing, f"{p['loss.name']} on {p['dataset.name']}: no {sorted(missing)}"
        assert all(np.isfinite(m[k]) for k in want), {k: m[k] for k in want}


@pytest.mark.slow
def test_every_loss_swept_on_synthetic_and_public_data_of_its_task(catalogue):
    """Each registered loss (custom aside) ran on at least one synthetic data set and, where
    the registry has public data for one of its tasks, on a public one."""
    seen: dict[str, set[tuple[str, bool]]] = {n: set() for n in BUILTIN}   # (dataset, public)
    for task in SWEEPS:
        uri, rc, _, err = catalogue[task]
        assert rc == 0, err[-3000:]
        for r in _child_runs(uri, task):
            p = r.data.params
            seen[p["loss.name"]].add((p["dataset.name"], _is_public(p)))
    for name in BUILTIN:
        assert any(not pub for _, pub in seen[name]), f"{name}: no synthetic data set swept"
        assert any(pub for _, pub in seen[name]), f"{name}: no public data set swept"
    assert {("faithful", True), ("soft_targets", True)} <= seen["kl"]


def test_every_task_has_synthetic_and_public_data():
    """Every task some loss fits has a data set drawn by our code (known ground truth) and a
    public one (distribution: soft_targets with a public base; density: faithful)."""
    tasks = {t for n in BUILTIN for t in LOSSES.get(n).tasks}
    have = {(_task_of(n, ex), DATASETS.get(n).public(DATASETS.get(n).normalize(ex, "dataset")))
            for n, examples in EXAMPLES.items() for ex in examples}
    for t in tasks:
        assert (t, False) in have, f"task {t}: no synthetic data set"
        assert (t, True) in have, f"task {t}: no public data set"


def test_forward_kl_on_faithful_is_maximum_likelihood():
    """Forward KL on the samples of faithful drives q to the maximum-likelihood Gaussian of the
    training split (its mean and ddof-0 sd), and test/kl is KL(training KDE || q) by
    quadrature, as NumPy computes it; reverse KL runs on the same data."""
    from harness.engine import train

    common = ("dataset=faithful", "model=gaussian", "optimizer=adam", "optimizer.lr=0.05", "train.steps=300",
              "train.eval_every=300", "train.dtype=float64", "seed=0")
    (fwd,) = train([spec("loss=kl", "loss.direction=forward", *common)])
    (rev,) = train([spec("loss=kl", "loss.direction=reverse", *common)])
    d = load(fwd.spec.dataset, fwd.spec.seed, fwd.spec.outlier_tuple())
    y = d.y_train[:, 0]
    mu, sigma = fwd.final["fit/mu"], fwd.final["fit/sigma"]
    assert fwd.status == rev.status == "converged"
    assert abs(mu - y.mean()) < 1e-3 and abs(sigma - y.std()) < 1e-3, (mu, sigma, y.mean(), y.std())
    mix = d.extra["mixture"]
    m, h = np.asarray(mix["means"]), mix["sds"][0]
    x = np.linspace(m.min() - 8 * h, m.max() + 8 * h, 40001)
    logp = np.log(np.exp(-0.5 * ((x[:, None] - m) / h) ** 2).mean(1) / (h * np.sqrt(2 * np.pi)))
    logq = -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    kl = np.trapezoid(np.exp(logp) * (logp - logq), x)
    assert abs(fwd.final["test/kl"] - kl) < 1e-4 and 0.15 < kl < 0.3, (fwd.final["test/kl"], kl)
    assert np.isfinite(rev.final["test/reverse_kl"]) and rev.final["fit/sigma"] < sigma


# ----------------------------------------------------------------------- a custom loss

CAUCHY = '''import torch


def cauchy(pred, target, c=1.0):
    """Cauchy (Lorentzian) loss c^2/2 log(1 + (r/c)^2), r = pred - target: bounded influence."""
    r = (pred - target) / c
    return 0.5 * c**2 * torch.log1p(r * r)
'''


@pytest.mark.slow
def test_custom_loss_sweeps_from_the_command_line(catalogue):
    """python -m harness -m loss=custom loss._target_=my_losses.cauchy +loss.c=0.5,2
    outliers.ratio=0,0.2 train.steps=30, in the folder holding my_losses.py: 4 child runs, each
    with its c as the param loss.c, trained (its loss fell)."""
    uri, rc, out, err = catalogue["custom"]
    assert rc == 0, err[-3000:]
    runs = _child_runs(uri, "custom")
    assert len(runs) == 4
    grid = sorted((float(r.data.params["loss.c"]), float(r.data.params["outliers.ratio"])) for r in runs)
    assert grid == [(0.5, 0.0), (0.5, 0.2), (2.0, 0.0), (2.0, 0.2)]
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    for r in runs:
        assert r.data.params["loss.name"] == "custom" and r.data.params["loss._target_"] == "my_losses.cauchy"
        assert r.data.tags["lossbench.status"] == "converged"
        hist = [m.value for m in sorted(c.get_metric_history(r.info.run_id, "train/loss"), key=lambda m: m.step)]
        assert len(hist) == 31 and hist[-1] < hist[0]
        assert {"test/rmse", "test/mae", "test/r2", "param_error"} <= set(r.data.metrics)


# ------------------------------------------------------------------- refused in one line


def _mismatches() -> list[tuple[str, str]]:
    return [(loss, ds) for loss in BUILTIN for task, ds in BY_TASK.items() if task not in LOSSES.get(loss).tasks]


def test_by_task_covers_every_task():
    assert set(BY_TASK) == set(TASKS)
    assert all(_task_of(ds, {}) == task for task, ds in BY_TASK.items())


@pytest.mark.parametrize("loss, dataset", _mismatches())
def test_loss_on_data_of_another_task_is_one_line_naming_loss(loss, dataset):
    with pytest.raises(ConfigError) as e:
        spec(f"loss={loss}", f"dataset={dataset}")
    line = e.value.line()
    assert e.value.key == "loss" and "\n" not in line and line.startswith(f"error: loss='{loss}'"), line
    task = _task_of(dataset, {})
    assert f"task {task}" in line
    fits = [n for n in BUILTIN if task in LOSSES.get(n).tasks]
    assert all(n in line for n in fits), line        # it lists the losses that do fit


def test_custom_loss_on_data_of_another_task_is_one_line_naming_loss():
    with pytest.raises(ConfigError) as e:
        spec("loss=custom", "loss._target_=harness.losses.examples.zero_one", "loss.task=binary", "dataset=digits")
    assert e.value.key == "loss" and "\n" not in e.value.line()


def test_density_needs_the_gaussian_model():
    with pytest.raises(ConfigError) as e:
        spec("loss=kl", "dataset=mixture")
    assert e.value.key == "model" and "gaussian" in e.value.line()


# Bad options of the catalogue's data sets, and mismatches, through the command line (exit 2,
# one `error:` line naming the key, no traceback, nothing in MLflow): tests/test_bad_input.py,
# with the rest of the bad-input catalogue. (The options themselves are checked one by one in
# test_datasets.py::test_bad_options.)


# --------------------------------------------------------------- numerics of bounded losses


def test_gce_gradient_is_finite_when_the_labelled_class_underflows():
    """A confidently mislabelled example has p_y = 0 in floating point; GCE's (1 - p_y^q) / q
    must still give a finite gradient (it is computed as exp(q log p_y))."""
    import torch

    from harness.losses import Batch

    out = torch.tensor([[[[-200.0, 200.0, 0.0], [1.0, 0.0, -1.0]]]], requires_grad=True)   # [U,K,n,C]
    y = torch.tensor([[[0, 0]]])
    for name, params in (("gce", {"q": torch.full((1, 1, 1), 0.7)}), ("mae_prob", {})):
        loss = LOSSES.get(name)()(out, Batch(y), params)
        (g,) = torch.autograd.grad(loss.sum(), out)
        assert torch.isfinite(loss).all() and torch.isfinite(g).all(), name


# ------------------------------------------------------------------------------ studies

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
STUDIES = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
TOURS = [n for n in STUDIES if "parts:" in (EXPERIMENTS / f"{n}.yaml").read_text()]


@pytest.mark.parametrize("name", TOURS)
def test_a_tour_names_studies_and_shrinks_their_grids(name):
    """A study of parts names studies of experiments/ (not tours), each once, and shrinks only
    keys its part's grid sweeps."""
    import yaml

    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    assert text.splitlines()[0] == "# @package _global_" and f"python -m harness -m +experiment={name}" in text
    parts = yaml.safe_load(text)["study"]["parts"]
    names = [p["name"] for p in parts]
    assert len(set(names)) == len(names) and set(names) <= set(STUDIES) - set(TOURS)
    for p in parts:
        grid = yaml.safe_load((EXPERIMENTS / f"{p['name']}.yaml").read_text())["hydra"]["sweeper"]["params"]
        assert set(p.get("overrides") or {}) <= set(grid), p["name"]


@pytest.mark.parametrize("name", [n for n in STUDIES if n not in TOURS])
def test_study_grid_validates_and_its_claims_use_known_checks(name):
    """Each study opens with its command, every value of its grid composes into a valid run
    (one value at a time, the rest at their first value), and every claim names a registered
    check and losses (or mappings of params) that the grid sweeps."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from conftest import ROOT
    from harness.report.claims import CHECKS
    from harness.spec import build_spec

    text = (ROOT / "experiments" / f"{name}.yaml").read_text()
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if "python -m harness -m +experiment=" in ln)
    assert lines[0] == "# @package _global_" and at <= 4 and all(ln.startswith("#") for ln in lines[:at])
    command = lines[at].split("python -m harness -m ", 1)[1].split()
    assert command[0] == f"+experiment={name}", "the file opens with its command"
    assert all("=" in a or a.startswith("[") for a in command[1:]), command   # then overrides only
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        full = hcompose(config_name="config", overrides=[f"+experiment={name}"], return_hydra_config=True)
        sweep = OmegaConf.to_container(full.hydra.sweeper, resolve=True)
        assert sweep["report"] is True
        grid = {k: str(v).split(",") for k, v in sweep["params"].items()}
        if grid.get("loss") == ["auto"]:   # as the sweeper expands it: the losses of the default data's task
            from harness.data import DATASETS
            from harness.losses import fitting

            base = OmegaConf.to_container(full, resolve=False)
            cls = DATASETS.get(base["dataset"]["name"])
            grid["loss"] = fitting(cls.task_of(cls.normalize(base["dataset"], "dataset")), base["model"]["name"])
            assert len(grid["loss"]) > 1
        jobs = [[f"{k}={v[0]}" for k, v in grid.items()]]
        jobs += [[f"{k}={vals[i] if k == key else vals[0]}" for k, vals in grid.items()]
                 for key, values in grid.items() for i in range(1, len(values))]
        from harness.conditional import prune   # as the sweeper: options only where the choice has them

        jobs = prune(jobs, {str(k): str(v) for k, v in full.hydra.runtime.choices.items() if v is not None})
        for job in jobs:
            cfg = OmegaConf.to_container(hcompose(config_name="config", overrides=[f"+experiment={name}", *job]),
                                         resolve=True)
            cfg.pop("hydra", None)
            build_spec(cfg, tuple(job))
    study = cfg["study"]
    assert study["name"] == name and study["question"]
    assert study.get("claims") or study.get("advise"), "a study checks claims or answers its question (advise)"
    swept = set(grid.get("loss", [cfg["loss"]["name"]]))
    for claim in study.get("claims") or []:
        assert claim["check"] in CHECKS, claim["id"]
        named = [claim.get(k) for k in ("larger", "smaller", "losses", "reference", "better", "worse")]
        for entry in [e for v in named if v is not None for e in (v if isinstance(v, list) else [v])]:
            if not isinstance(entry, dict):
                assert entry in swept, f"{claim['id']}: {entry} is not swept"
                continue
            # a mapping of params ({loss.name: triplet, loss.mining: hard}, {regularization.kind: l1}):
            # each param the grid sweeps must take that value there
            for key, value in entry.items():
                values = swept if key == "loss.name" else grid.get(key)
                assert values is None or str(value) in {str(v) for v in values}, f"{claim['id']}: {key}={value} is not swept"
