"""The dataset contract, checked for every registered dataset, plus the special paths: the
clean test split of the robust-statistics sets, the OpenML cache, the MNIST-1D cache.

    cd /work/main && .venv/bin/python -m pytest tests/test_datasets.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.data import DATASETS, TASKS, load
from harness.data import openml as openml_mod
from harness.data import public
from harness.data.prepare import prepare
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NONE = ("none", 0.0, None)                   # outliers: kind, ratio, scale
BYO = {"file", "openml"}                     # bring-your-own: need a file / an id, tested below
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
def test_card_and_yaml(name):
    cls = DATASETS.get(name)
    assert cls.card == f"datasets/{name}.md" and (ROOT / cls.card).is_file()
    conf = yaml.safe_load((ROOT / "conf" / "dataset" / f"{name}.yaml").read_text())
    assert conf.pop("name") == name
    assert conf == dict(cls.schema)      # same keys, and the YAML shows the defaults


# ---------------------------------------------------------------- bad options


@pytest.mark.parametrize("name, over, key", [
    ("blobs", {"n_classes": 1}, "dataset.n_classes"),
    ("blobs", {"cluster_std": 0.0}, "dataset.cluster_std"),
    ("classification", {"n_informative": 1, "n_classes": 3}, "dataset.n_informative"),
    ("classification", {"d": 4}, "dataset.d"),
    ("soft_targets", {"temperature": 0.0}, "dataset.temperature"),
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
