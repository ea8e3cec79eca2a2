"""The sweeper's fast per-job composition gives exactly the config Hydra composes itself."""
from __future__ import annotations

import pytest
from hydra import compose as hcompose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import ROOT
from harness.compose import FastComposer
from harness.errors import ConfigError

JOBS = [
    ["loss=huber", "optimizer.lr=0.5", "outliers.ratio=0.2", "seed=3"],
    ["loss=huber", "loss.delta=0.25", "regularization.kind=l2", "regularization.weight=0.01"],
    ["loss=mse", "model=mlp", "model.width=8", "train.batch_size=32", "optimizer=adam"],
    ["dataset=diabetes", "+loss.extra=1.5", "loss=mse"],
    ["loss=mse", "~tracking.curves", "train.steps=7"],
    ["+experiment=robust_regression", "seed=1"],
    ["loss=mse", "++train.steps=9", "optimizer.lr=1e-3"],
]


def _hydra(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=overrides, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        d = OmegaConf.to_container(cfg, resolve=False)
    d.pop("hydra")
    return OmegaConf.to_container(OmegaConf.create(d), resolve=True), loader, cfg


@pytest.mark.parametrize("job", JOBS, ids=lambda j: " ".join(j))
def test_fast_composition_equals_hydra(job):
    want, loader, master = _hydra(job)
    got = FastComposer(loader, master).task_config(job)
    assert got == want


@pytest.mark.parametrize("job, key", [
    (["optimizer.nolr=1"], "optimizer.nolr"),
    (["+optimizer.lr=1"], "optimizer.lr"),
    (["~train.nothing"], "train.nothing"),
])
def test_fast_composition_refuses_what_hydra_refuses(job, key):
    _, loader, master = _hydra([])
    with pytest.raises(ConfigError) as e:
        FastComposer(loader, master).task_config(job)
    assert e.value.key == key
