"""Every registered loss against PyTorch's own or a written-out formula, and its gradient
against finite differences (torch.autograd.gradcheck, float64). The tests loop over the
registry: a new loss is covered the moment it is registered (and fails until it has a reference)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.losses import LOSSES, Batch

torch.manual_seed(0)
U, K, N, C = 2, 3, 7, 4


def _regression_inputs():
    out = torch.randn(U, K, N, dtype=torch.float64) * 3
    y = torch.randn(U, 1, N, dtype=torch.float64) * 3
    return out, y


# name -> (inputs maker, params (python floats), reference per-example loss as a function of (out, y))
REFERENCES = {
    "mse": (_regression_inputs, {}, lambda o, y: (o - y) ** 2),
    "mae": (_regression_inputs, {}, lambda o, y: (o - y).abs()),
    "huber": (_regression_inputs, {"delta": 1.5},
              lambda o, y: F.huber_loss(o, y.expand_as(o), delta=1.5, reduction="none")),
    "log_cosh": (_regression_inputs, {}, lambda o, y: torch.log(torch.cosh(o - y))),
    "quantile": (_regression_inputs, {"tau": 0.3},
                 lambda o, y: torch.where(y - o >= 0, 0.3 * (y - o), (0.3 - 1) * (y - o))),
}


def _params(cls, values):
    return {k: torch.full((U, K, 1), float(values[k]), dtype=torch.float64) for k in cls.stacked}


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_has_a_reference(name):
    assert name in REFERENCES, f"loss {name!r} is registered but has no reference formula in this test"


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if n in REFERENCES])
def test_loss_matches_reference(name):
    cls = LOSSES.get(name)
    make, values, ref = REFERENCES[name]
    out, y = make()
    section = cls.normalize(values, "loss")
    loss = cls(cls.options_of(section))
    got = loss.per_example(out, y, **_params(cls, section))
    torch.testing.assert_close(got, ref(out, y), rtol=1e-10, atol=1e-10)
    reduced = loss(out, Batch(y), _params(cls, section))
    assert reduced.shape == (U, K)


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if n in REFERENCES])
def test_loss_gradient_gradcheck(name):
    cls = LOSSES.get(name)
    make, values, _ = REFERENCES[name]
    out, y = make()
    section = cls.normalize(values, "loss")
    loss = cls(cls.options_of(section))
    p = _params(cls, section)
    if not cls.differentiable:  # keep away from the kink, where finite differences are meaningless
        out = torch.where((out - y).abs() < 0.1, out + 0.5, out)
    out = out.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda o: loss(o, Batch(y), p), (out,), eps=1e-6, atol=1e-5)


def test_per_run_parameters_match_separate_calls():
    """Huber with a different delta per run in one call == one call per delta."""
    cls = LOSSES.get("huber")
    out, y = _regression_inputs()
    deltas = torch.tensor([[0.5, 1.0, 2.0], [0.1, 3.0, 1.5]], dtype=torch.float64)[..., None]
    got = cls().per_example(out, y, delta=deltas)
    for u in range(U):
        for k in range(K):
            want = F.huber_loss(out[u, k], y[u, 0], delta=float(deltas[u, k]), reduction="none")
            torch.testing.assert_close(got[u, k], want)


def test_losses_declare_their_metadata():
    for name, cls in LOSSES.items():
        assert cls.name == name and cls.tasks and cls.head and cls.formula, name
        assert set(cls.stacked) <= set(cls.schema), name


def test_every_loss_has_a_config_file():
    import yaml

    from conftest import ROOT

    for name, cls in LOSSES.items():
        path = ROOT / "conf" / "loss" / f"{name}.yaml"
        assert path.exists(), f"conf/loss/{name}.yaml is missing"
        section = yaml.safe_load(path.read_text())
        assert section.pop("name") == name
        assert section == dict(cls.schema), f"conf/loss/{name}.yaml keys/defaults differ from {cls.__name__}.schema"
