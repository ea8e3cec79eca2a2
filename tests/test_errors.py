"""Bad input: one line naming the key, the value and what is allowed, before any training and
before anything reaches MLflow."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import compose, spec
from harness.errors import ConfigError


@pytest.mark.parametrize("overrides, key", [
    (("optimizer.lr=-1",), "optimizer.lr"),
    (("optimizer.lr=0",), "optimizer.lr"),
    (("outliers.ratio=0.9",), "outliers.ratio"),
    (("outliers.ratio=-0.1",), "outliers.ratio"),
    (("outliers.kind=sideways", "outliers.ratio=0.1"), "outliers.kind"),
    (("regularization.kind=l3",), "regularization.kind"),
    (("regularization.weight=-1",), "regularization.weight"),
    (("loss.delta=0", "loss=huber"), "loss.delta"),
    (("train.steps=0",), "train.steps"),
    (("train.batch_size=16",), "train.batch_size"),           # gd is full batch
    (("optimizer=sgd", "train.batch_size=100000"), "train.batch_size"),
    (("device=tpu",), "device"),
    (("train.dtype=float16",), "train.dtype"),
    (("dataset=file", "dataset.path=/no/such/file.csv", "dataset.target=y"), "dataset.path"),
])
def test_bad_values_name_key_value_and_allowed(overrides, key):
    with pytest.raises(ConfigError) as e:
        spec(*overrides)
    assert e.value.key == key
    line = e.value.line()
    assert "\n" not in line and line.startswith(f"error: {key}=")
    assert str(e.value.value) in line or repr(e.value.value) in line


def test_cuda_refused_cleanly_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError) as e:
        spec("device=cuda")
    assert e.value.key == "device"


def test_file_data_errors(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n2,2,2\n")
    with pytest.raises(ConfigError, match="dataset.target"):
        spec("dataset=file", f"dataset.path={csv}", "dataset.target=nope")
    bad = tmp_path / "text.csv"
    bad.write_text("a,b,y\n1,x,3\n4,5,6\n7,8,9\n1,1,1\n")
    with pytest.raises(ConfigError, match="numeric"):
        spec("dataset=file", f"dataset.path={bad}", "dataset.target=y")
    nan = tmp_path / "nan.csv"
    nan.write_text("a,b,y\n1,,3\n4,5,6\n7,8,9\n1,1,1\n")
    with pytest.raises(ConfigError, match="NaN"):
        spec("dataset=file", f"dataset.path={nan}", "dataset.target=y")
    npz = tmp_path / "d.npz"
    np.savez(npz, X=np.array([[1.0, np.nan], [1, 2], [3, 4], [5, 6]]), y=np.arange(4.0))
    with pytest.raises(ConfigError, match="NaN"):
        spec("dataset=file", f"dataset.path={npz}")


def test_loss_not_suited_to_the_task(tmp_path):
    csv = tmp_path / "c.csv"
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a:.3f},{b:.3f},{int(a > b)}" for a, b in rng.normal(size=(40, 2)))
    csv.write_text("a,b,label\n" + rows + "\n")
    with pytest.raises(ConfigError) as e:
        spec("dataset=file", f"dataset.path={csv}", "dataset.target=label", "dataset.task=binary", "loss=mse")
    assert e.value.key == "loss" and "binary" in str(e.value)


# The same refusals through the command line (exit 2, one line, nothing in MLflow), with the
# other bad inputs a user can type: tests/test_bad_input.py.


def test_every_config_option_composes():
    """Each file in every conf/ group composes and validates (a typo in a YAML fails here)."""
    from conftest import ROOT

    from harness.data import DATASETS
    from harness.losses import LOSSES
    from harness.models import MODELS
    from harness.optim import OPTIMIZERS

    registries = {"loss": LOSSES, "dataset": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS}
    for group, registry in registries.items():
        files = sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
        assert set(registry.names()) <= set(files), f"conf/{group}/ lacks a file for a registered {group}"
        for name in files:
            section = compose(f"{group}={name}")[group]
            if section["name"] not in ("custom", "file", "openml"):  # these need a user's value; tested apart
                registry.get(section["name"]).normalize(section, group)
