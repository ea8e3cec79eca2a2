"""The CUDA path: the same engine on a GPU gives the CPU's numbers, and a GPU stack never
synchronizes with the host inside its loop. Skipped cleanly where no CUDA device is present."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import spec
from harness.engine import train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("overrides", [
    ("loss=huber", "outliers.ratio=0.2"),
    ("loss=cross_entropy", "dataset=digits", "optimizer=adam", "optimizer.lr=0.01"),
    ("loss=triplet", "dataset=digits", "optimizer=adam", "train.batch_size=64"),
])
def test_cuda_matches_cpu(overrides):
    cpu = spec(*overrides, "device=cpu", "train.steps=50", "train.dtype=float64")
    gpu = spec(*overrides, "device=cuda", "train.steps=50", "train.dtype=float64")
    (a,), (b,) = train([cpu]), train([gpu])
    assert b.device.startswith("cuda") and a.status == b.status
    for k, v in a.final.items():
        assert np.isclose(v, b.final[k], rtol=1e-6, atol=1e-8), k


@pytest.mark.parametrize("overrides", [
    ("loss=mse",),
    ("loss=gce", "dataset=digits", "optimizer=adam", "train.batch_size=64"),
    ("loss=kl", "loss.direction=reverse", "dataset=mixture", "model=gaussian", "optimizer=adam"),
])
def test_stack_loop_does_not_sync_with_the_host(overrides):
    """torch.cuda.set_sync_debug_mode('error') around the loop: any .item(), host copy or
    synchronizing call in a step raises."""
    specs = [spec(*overrides, f"optimizer.lr={lr}", "device=cuda", "train.steps=30") for lr in (0.01, 0.1, 1.0)]
    results = train(specs, sync_check=True)
    assert len(results) == 3
