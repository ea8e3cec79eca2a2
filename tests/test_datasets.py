"""The dataset contract, checked for every registered dataset, plus the special paths: the
clean test split of the robust-statistics sets, Old Faithful's KDE target, soft targets
distilled from a teacher fitted to a public set, the OpenML cache, the MNIST-1D cache.

    cd /work/main && .venv/bin/python -m pytest tests/test_datasets.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.data import DATASETS, load
from harness.data import openml as openml_mod
from harness.data import public
from harness.data.prepare import prepare
from harness.errors import ConfigError
from harness.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
NONE = ("none", 0.0, None)                   # outliers: kind, ratio, scale
BYO = {n for n, c in DATASETS.items() if c.user_data}   # bring-your-own: need a file / an id, tested below
BUILT = [n for n in DATASETS if n not in BYO]
FIXED = {"mnist1d"}                          # data and split fixed by the publisher, for every seed


def section(name: str, **over):
    return DATASETS.get(name).normalize(over, "dataset")


def prepared(name: str, seed: int, **over):
    """Build + prepare without load()'s caches, so that two calls really rebuild."""
    s = section(name, **over)
    return prepare(DATASETS.get(name).build(s, seed), name=name, section=s, seed=seed, outliers=NONE)


def check_one_line(e: pytest.ExceptionInfo, key: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(key + "="), msg


# ---------------------------------------------------------------- every dataset


@pytest.mark.parametrize("name", BUILT)
def test_contract(name):
    cls, s = DATASETS.get(name), section(name)
    p = load(s, 0, NONE)
    task = cls.task_of(s)
    assert task in TASKS and p.task == task
    n, m = len(p.X_train), len(p.X_test)
    assert p.X_train.ndim == p.X_test.ndim == 2 and p.X_train.shape[1] == p.X_test.shape[1] >= 1
    assert n >= 1 and m >= 1 and len(p.y_train) == n and len(p.y_test) == m
    for a in (p.X_train, p.X_test, p.y_train, p.y_test):
        assert np.isfinite(a).all()
    if task == "regression":
        assert p.y_train.ndim == 1 and p.y_train.dtype.kind == "f"
    elif task in ("binary", "multiclass"):
        C = p.n_classes
        assert C == 2 if task == "binary" else C >= 3
        for y in (p.y_train, p.y_test):
            assert y.ndim == 1 and y.dtype.kind == "i" and y.min() >= 0 and y.max() <= C - 1
        assert len(np.unique(p.y_train)) == C
    elif task == "distribution":
        C = p.n_classes
        for y, extra in ((p.y_train, p.extra), (p.y_test, p.extra_test)):
            assert y.shape == (len(y), C) and (y >= 0).all() and np.allclose(y.sum(1), 1.0)
            hard = extra["y_hard"]
            assert hard.shape == (len(y),) and hard.dtype.kind == "i" and 0 <= hard.min() and hard.max() < C
    elif task == "density":
        assert p.y_train.shape == (n, 1) and p.y_test.shape == (m, 1)
        mix = p.extra["mixture"]
        assert set(mix) == {"weights", "means", "sds"} and np.isclose(sum(mix["weights"]), 1.0)
        assert p.extra_test["mixture"] == mix
    # per-row extras follow their split
    for extra, k in ((p.extra, n), (p.extra_test, m)):
        assert all(len(v) == k for v in extra.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", BUILT)
def test_seeds(name):
    a, b, c = prepared(name, 0), prepared(name, 0), prepared(name, 1)
    for f in ("X_train", "y_train", "X_test", "y_test"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    same = np.array_equal(a.X_train, c.X_train) and np.array_equal(a.y_train, c.y_train)
    assert same == (name in FIXED)


@pytest.mark.parametrize("name", list(DATASETS))
def test_card(name):
    cls = DATASETS.get(name)
    assert cls.card == f"datasets/{name}.md" and (ROOT / cls.card).is_file()


# ---------------------------------------------------------------- bad options


@pytest.mark.parametrize("name, over, key", [
    ("blobs", {"n_classes": 1}, "dataset.n_classes"),
    ("blobs", {"cluster_std": 0.0}, "dataset.cluster_std"),
    ("classification", {"n_informative": 1, "n_classes": 3}, "dataset.n_informative"),
    ("classification", {"d": 4}, "dataset.d"),
    ("soft_targets", {"temperature": 0.0}, "dataset.temperature"),
    ("soft_targets", {"base": "mnist"}, "dataset.base"),
    ("soft_targets", {"base": "diabetes"}, "dataset.base"),       # public, but no classes to teach
    ("faithful", {"bandwidth": 0.0}, "dataset.bandwidth"),
    ("faithful", {"bandwidth": "sj"}, "dataset.bandwidth"),
    ("faithful", {"test_size": 0.999}, "dataset.test_size"),
    ("mixture", {"weight": 1.0}, "dataset.weight"),
    ("mixture", {"sd2": -1.0}, "dataset.sd2"),
    ("stackloss", {"test_size": 0.9}, "dataset.test_size"),
    ("stars_cyg", {"clean_test": "yes"}, "dataset.clean_test"),
    ("iris", {"n_train": 10}, "dataset.n_train"),
    ("openml", {}, "dataset.id"),
    ("openml", {"id": 61}, "dataset.task"),
    ("openml", {"id": 61, "task": "ranking"}, "dataset.task"),
])
def test_bad_options(name, over, key):
    with pytest.raises(ConfigError) as e:
        section(name, **over)
    check_one_line(e, key)


# ---------------------------------------------------------------- known outliers


KNOWN = {"stackloss": (1, 3, 4, 21), "stars_cyg": (11, 20, 30, 34), "hbk": tuple(range(1, 15))}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_clean_test(name):
    cls = DATASETS.get(name)
    df = cls.frame()
    X = df.drop(columns=["rownames", cls.target]).to_numpy(float)
    y = df[cls.target].to_numpy(float)
    bad = {tuple(r) for r in np.column_stack([X, y])[df["rownames"].isin(KNOWN[name]).to_numpy()]}
    assert len(bad) == len(KNOWN[name])
    for seed in range(5):
        t = cls.build(section(name), seed)
        assert t.extra["known_outliers"].sum() == len(KNOWN[name])       # all of them in training
        assert not t.extra_test["known_outliers"].any()
        assert not {tuple(r) for r in np.column_stack([t.X_test, t.y_test])} & bad
        assert len(t.y) + len(t.y_test) == len(df)
    # clean_test=false: prepare() splits at random and the mask follows the rows
    p = prepared(name, 0, clean_test=False)
    assert p.extra["known_outliers"].sum() + p.extra_test["known_outliers"].sum() == len(KNOWN[name])


def test_known_outliers_are_the_documented_rows():
    """1-based rownames: the giants are the 4 coolest stars; HBK's 14 have x far out."""
    stars = DATASETS.get("stars_cyg").build(section("stars_cyg", clean_test=False), 0)
    giant = stars.extra["known_outliers"]
    assert (stars.X[giant, 0] < 3.6).all() and (stars.X[~giant, 0] > 3.6).all()
    hbk = DATASETS.get("hbk").build(section("hbk", clean_test=False), 0)
    assert (hbk.X[hbk.extra["known_outliers"]].min(0) > hbk.X[~hbk.extra["known_outliers"]].max(0)).all()


# ---------------------------------------------------------------- Old Faithful


def test_faithful_target_is_the_kde_of_the_training_split():
    """p = the Gaussian KDE of the training samples (Scott's rule, as scipy's gaussian_kde): a
    mixture with J = n_train equal weights, means = the samples, one sd = h > 0; it integrates to
    one, and every one of the 272 durations is in exactly one split."""
    import torch
    from scipy.stats import gaussian_kde

    from harness.losses.distribution import mixture_logpdf

    cls = DATASETS.get("faithful")
    every = np.sort(cls.eruptions())
    assert len(every) == 272 and 1.5 < every.min() and every.max() < 5.2
    for seed in (0, 1):
        t = cls.build(section("faithful"), seed)
        y, yt = t.y[:, 0], t.y_test[:, 0]
        assert len(y) == 204 and len(yt) == 68 and np.array_equal(np.sort(np.r_[y, yt]), every)
        assert t.X.shape == (204, 1) and (t.X == 1).all() and (t.X_test == 1).all()
        mix = t.extra["mixture"]
        assert t.extra_test["mixture"] == mix and t.extra_test["mixture"] is not mix
        J, h = len(mix["means"]), mix["sds"][0]
        assert J == 204 and np.array_equal(mix["means"], y) and mix["sds"] == [h] * J and h > 0
        assert np.isclose(h, y.std(ddof=1) * J ** -0.2) and 0.3 < h < 0.5   # Scott's rule
        assert np.allclose(mix["weights"], 1 / J) and np.isclose(sum(mix["weights"]), 1.0)
        x = np.linspace(every.min() - 10 * h, every.max() + 10 * h, 20001)
        f64 = lambda a: torch.tensor(a, dtype=torch.float64)
        logp = mixture_logpdf(f64(x), *(f64(mix[k]) for k in ("weights", "means", "sds"))).numpy()
        assert abs(np.trapezoid(np.exp(logp), x) - 1.0) < 1e-6
        np.testing.assert_allclose(np.exp(logp), gaussian_kde(y).pdf(x), rtol=1e-9, atol=1e-300)
        modes = x[1:-1][(logp[1:-1] > logp[:-2]) & (logp[1:-1] > logp[2:])]
        assert len(modes) == 2 and abs(modes[0] - 2.0) < 0.2 and abs(modes[1] - 4.4) < 0.2, modes
    a, b = cls.build(section("faithful"), 0), cls.build(section("faithful"), 1)
    assert not np.array_equal(a.y, b.y) and a.extra["mixture"] != b.extra["mixture"]


def test_faithful_bandwidth_option():
    cls = DATASETS.get("faithful")
    h = lambda **over: cls.build(section("faithful", **over), 0).extra["mixture"]["sds"][0]
    assert h() == h(bandwidth="scott") < h(bandwidth="silverman")        # scipy: (3n/4)^(-1/5) > n^(-1/5)
    assert h(bandwidth=0.2) == 0.2 and h(bandwidth=1) == 1.0


# ---------------------------------------------------------------- soft targets on public data


@pytest.mark.parametrize("base", ["digits", "iris", "wine", "breast_cancer", "mnist1d"])
def test_soft_targets_on_a_public_base(base):
    """The public set's own features and split (the rows `dataset=<base>` trains on at the same
    seed), soft targets from a logistic-regression teacher fitted to its training rows, y_hard
    drawn from them; the synthetic teacher's keys change nothing."""
    from harness.data.synthetic import PUBLIC_BASES

    assert set(PUBLIC_BASES) <= {c.name for c in public.DATASETS}
    p = load(section("soft_targets", base=base), 0, NONE)
    own = load(section(base), 0, NONE)
    C = own.n_classes
    assert p.task == "distribution" and p.n_classes == C
    assert np.array_equal(p.X_train, own.X_train) and np.array_equal(p.X_test, own.X_test)
    for y, extra, labels in ((p.y_train, p.extra, own.y_train), (p.y_test, p.extra_test, own.y_test)):
        assert y.shape == (len(labels), C) and (y >= 0).all() and np.allclose(y.sum(1), 1.0)
        hard = extra["y_hard"]
        assert hard.dtype.kind == "i" and hard.min() >= 0 and hard.max() < C
        assert np.array_equal(extra["y_true"], labels)
    acc = (p.y_test.argmax(1) == own.y_test).mean()     # the teacher's test accuracy
    assert acc >= (0.28 if base == "mnist1d" else 0.9), acc   # mnist1d: linear models get ~32%
    ignored = load(section("soft_targets", base=base, n_train=10, n_test=5, d=3, n_classes=4), 0, NONE)
    assert np.array_equal(ignored.y_train, p.y_train) and np.array_equal(ignored.X_test, p.X_test)


def test_soft_targets_public_teacher_and_temperature():
    """digits: the teacher gets ~97% of the test rows right; a higher temperature softens the
    rows (same argmax), and y_hard follows them; another seed, another split."""
    cls = DATASETS.get("soft_targets")
    t1 = cls.build(section("soft_targets", base="digits", temperature=1.0), 0)
    t2 = cls.build(section("soft_targets", base="digits"), 0)     # default temperature 2
    assert (t1.y_test.argmax(1) == t1.extra_test["y_true"]).mean() >= 0.93
    assert np.array_equal(t1.y.argmax(1), t2.y.argmax(1))
    assert t1.y.max(1).mean() > t2.y.max(1).mean() > 0.5
    hard = np.r_[t2.extra["y_hard"], t2.extra_test["y_hard"]]
    soft = np.r_[t2.y, t2.y_test]
    assert abs((hard == soft.argmax(1)).mean() - soft.max(1).mean()) < 0.03   # drawn from the rows
    other = cls.build(section("soft_targets", base="digits"), 1)
    assert not np.array_equal(other.X, t2.X)
    b = cls.build(section("soft_targets", base="breast_cancer"), 0)        # binary: softmax([0, z])
    assert b.y.shape[1] == 2 and np.allclose(b.y.sum(1), 1.0)


# ---------------------------------------------------------------- MNIST-1D cache


def test_mnist1d_cache(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "mnist1d.npz"
    monkeypatch.setattr(public, "MNIST1D_CACHE", path)
    first = DATASETS.get("mnist1d").build(section("mnist1d"), 0)
    assert path.is_file()
    assert first.X.shape == (4000, 40) and first.X_test.shape == (1000, 40) and first.n_classes == 10

    def no_generation():
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(public, "_mnist1d_generate", no_generation)
    again = DATASETS.get("mnist1d").build(section("mnist1d"), 1)
    assert np.array_equal(first.X, again.X) and np.array_equal(first.y_test, again.y_test)


# ---------------------------------------------------------------- OpenML (no network)


def tiny_openml(n=40):
    g = np.random.default_rng(0)
    return pd.DataFrame({
        "size": g.normal(size=n),
        "colour": pd.Categorical(g.choice(["red", "green", "blue"], size=n)),
        "count": g.integers(0, 5, size=n),
        "class": pd.Categorical(g.choice(["no", "yes"], size=n)),
    })


def write_cache(directory: Path, data_id: int, frame: pd.DataFrame, default_target="class"):
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(directory / f"{data_id}.parquet", index=False)
    meta = {"id": data_id, "name": "tiny", "default_target": default_target,
            "url": f"https://www.openml.org/d/{data_id}", "licence": "CC0"}
    (directory / f"{data_id}.json").write_text(json.dumps(meta))


def offline(data_id):
    raise OSError("<urlopen error [Errno -2] Name or service not known>\nsecond line")


def test_openml_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(openml_mod, "download", offline)
    write_cache(tmp_path, 7, tiny_openml())
    s = section("openml", id=7, task="binary", cache_dir=str(tmp_path))
    p = load(s, 0, NONE)
    assert p.task == "binary" and p.n_classes == 2 and set(np.unique(p.y_train)) <= {0, 1}
    assert p.X_train.shape[1] == 1 + 3 + 1            # size, colour one-hot (3 levels), count
    assert p.source == "https://www.openml.org/d/7"
    s = section("openml", id=7, task="regression", target="size", cache_dir=str(tmp_path))
    reg = DATASETS.get("openml").build(s, 0)
    assert reg.y.dtype.kind == "f" and reg.X.shape == (40, 3 + 1 + 2)   # colour and class one-hot


def test_openml_downloads_once(tmp_path, monkeypatch):
    calls = []

    def fake(data_id):
        calls.append(data_id)
        return tiny_openml(), {"id": data_id, "default_target": "class", "url": f"https://www.openml.org/d/{data_id}"}

    monkeypatch.setattr(openml_mod, "download", fake)
    s = section("openml", id=9, task="binary", cache_dir=str(tmp_path / "c"))
    a = DATASETS.get("openml").build(s, 0)
    assert (tmp_path / "c" / "9.parquet").is_file() and (tmp_path / "c" / "9.json").is_file()
    monkeypatch.setattr(openml_mod, "download", offline)
    b = DATASETS.get("openml").build(s, 0)
    assert calls == [9] and np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)


def test_openml_offline_without_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(openml_mod, "download", offline)
    with pytest.raises(ConfigError) as e:
        DATASETS.get("openml").build(section("openml", id=5, task="regression", cache_dir=str(tmp_path)), 0)
    check_one_line(e, "dataset.id")
    assert str(tmp_path / "5.parquet") in str(e.value) and "download failed: OSError" in str(e.value)


def test_openml_data_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(openml_mod, "download", offline)
    f = tiny_openml()
    f.loc[3, "size"] = np.nan
    write_cache(tmp_path, 11, f)
    with pytest.raises(ConfigError) as e:
        DATASETS.get("openml").build(section("openml", id=11, task="binary", cache_dir=str(tmp_path)), 0)
    check_one_line(e, "dataset.id")
    assert "'size'" in str(e.value)
    write_cache(tmp_path, 12, tiny_openml())
    with pytest.raises(ConfigError) as e:   # a categorical target is no regression target
        DATASETS.get("openml").build(section("openml", id=12, task="regression", cache_dir=str(tmp_path)), 0)
    check_one_line(e, "dataset.task")
    with pytest.raises(ConfigError) as e:
        DATASETS.get("openml").build(section("openml", id=12, task="binary", target="nope", cache_dir=str(tmp_path)), 0)
    check_one_line(e, "dataset.target")


# ---------------------------------------------------------------- file


def test_file_csv(tmp_path):
    path = tmp_path / "d.csv"
    g = np.random.default_rng(0)
    df = pd.DataFrame({"a": g.normal(size=30), "b": g.normal(size=30), "y": g.choice([3, 7, 9], size=30)})
    df.to_csv(path, index=False)
    p = load(section("file", path=str(path), target="y", task="multiclass"), 0, NONE)
    assert p.task == "multiclass" and p.n_classes == 3 and p.X_train.shape[1] == 2
    assert len(p.y_train) + len(p.y_test) == 30 and p.y_train.max() <= 2
