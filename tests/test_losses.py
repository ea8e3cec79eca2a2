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


def _binary_inputs():
    out = torch.randn(U, K, N, dtype=torch.float64) * 2
    y = (torch.rand(U, 1, N) > 0.5).double()
    return out, y


def _multi_inputs():
    out = torch.randn(U, K, N, C, dtype=torch.float64) * 2
    y = torch.randint(0, C, (U, 1, N))
    return out, y


def _soft_inputs():
    out = torch.randn(U, K, N, C, dtype=torch.float64)
    y = torch.softmax(torch.randn(U, 1, N, C, dtype=torch.float64) * 2, -1)
    return out, y


def _sig(f):
    return 1 / (1 + torch.exp(-f))


def _focal_ref(o, y, gamma=2.0, alpha=0.25):
    """Lin et al. (2017), eq. 5, written with probabilities."""
    p = _sig(o)
    p_t = torch.where(y == 1, p, 1 - p)
    a_t = torch.where(y == 1, torch.full_like(p, alpha), torch.full_like(p, 1 - alpha))
    return -a_t * (1 - p_t) ** gamma * torch.log(p_t)


def _onehot(y, like):
    return F.one_hot(y.expand(like.shape[:-1]), like.shape[-1]).double()


REFERENCES.update({
    "bce": (_binary_inputs, {}, lambda o, y: -(y * torch.log(_sig(o)) + (1 - y) * torch.log(1 - _sig(o)))),
    # PyTorch's multi-class margin loss on scores [0, f] is hinge / 2 (it divides by the 2 classes)
    "hinge": (_binary_inputs, {}, lambda o, y: 2 * F.multi_margin_loss(
        torch.stack([torch.zeros_like(o), o], -1).reshape(-1, 2), y.expand_as(o).reshape(-1).long(),
        reduction="none").reshape(o.shape)),
    "squared_hinge": (_binary_inputs, {}, lambda o, y: 2 * F.multi_margin_loss(
        torch.stack([torch.zeros_like(o), o], -1).reshape(-1, 2), y.expand_as(o).reshape(-1).long(), p=2,
        reduction="none").reshape(o.shape)),
    "focal": (_binary_inputs, {"gamma": 2.0, "alpha": 0.25}, _focal_ref),
    "cross_entropy": (_multi_inputs, {"label_smoothing": 0.1}, lambda o, y: -(
        (0.9 * _onehot(y, o) + 0.1 / C) * torch.log_softmax(o, -1)).sum(-1)),
    "multi_hinge": (_multi_inputs, {"margin": 1.0}, lambda o, y: (torch.relu(
        1.0 - o.gather(-1, y.expand(o.shape[:-1]).unsqueeze(-1)) + o) * (1 - _onehot(y, o))).sum(-1) / C),
    "mae_prob": (_multi_inputs, {}, lambda o, y: (torch.softmax(o, -1) - _onehot(y, o)).abs().sum(-1)),
    "gce": (_multi_inputs, {"q": 0.7}, lambda o, y: (1 - (torch.softmax(o, -1) * _onehot(y, o)).sum(-1) ** 0.7) / 0.7),
    "kl": (_soft_inputs, {}, lambda o, p: (p * (torch.log(p) - torch.log_softmax(o, -1))).sum(-1)),
    # Poisson NLL with the log link, up to log y!: mu - y log mu, mu = exp(f)
    "poisson": (lambda: (torch.randn(U, K, N, dtype=torch.float64), torch.poisson(torch.full((U, 1, N), 3.0, dtype=torch.float64))),
                {}, lambda o, y: torch.exp(o) - y * o),
})
# losses whose value is not one number per example of (out, target): tested below, one by one
SPECIAL = {"triplet", "contrastive", "custom"}


def _params(cls, values):
    return {k: torch.full((U, K, 1), float(values[k]), dtype=torch.float64) for k in cls.stacked}


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_has_a_reference(name):
    assert name in REFERENCES or name in SPECIAL, f"loss {name!r} is registered but has no reference in this test"


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
    # kinks (MAE at r = 0, hinges at the margin) have measure zero: random inputs miss them
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
        if name == "custom":
            continue
        assert cls.name == name and cls.tasks and cls.head and cls.formula, name
        assert set(cls.stacked) <= set(cls.schema), name


def test_reverse_kl_on_soft_targets():
    out, p = _soft_inputs()
    loss = LOSSES.get("kl")({"direction": "reverse"})
    q = torch.softmax(out, -1)
    torch.testing.assert_close(loss.per_example(out, p), (q * (torch.log(q) - torch.log(p))).sum(-1))


def test_kl_density_estimates():
    """forward: log p(x) - log q(x) on samples of p; reverse: log q(z) - log p(z), z = mu + sigma eps."""
    from scipy.stats import norm

    w, m, s = [0.3, 0.7], [-2.0, 1.0], [0.5, 0.8]
    mix = tuple(torch.tensor(v, dtype=torch.float64)[None, None, None, :] for v in (w, m, s))
    x = torch.linspace(-4, 4, N, dtype=torch.float64)[None, None, :].expand(U, 1, N)
    theta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    out = theta.expand(U, K, N, 2)
    logp = np.log(sum(wi * norm.pdf(x.numpy(), mi, si) for wi, mi, si in zip(w, m, s)))
    logq = lambda z: norm.logpdf(z, 0.3, np.exp(-0.2))
    fwd = LOSSES.get("kl")({"direction": "forward"}).density(out, Batch(x, {"mixture": mix}))
    np.testing.assert_allclose(fwd.numpy(), np.broadcast_to(logp - logq(x.numpy()), fwd.shape), rtol=1e-10)
    eps = torch.randn(U, 1, N, dtype=torch.float64)
    rev = LOSSES.get("kl")({"direction": "reverse"}).density(out, Batch(x, {"mixture": mix, "eps": eps}))
    z = (0.3 + np.exp(-0.2) * eps).numpy()
    logpz = np.log(sum(wi * norm.pdf(z, mi, si) for wi, mi, si in zip(w, m, s)))
    np.testing.assert_allclose(rev.numpy(), np.broadcast_to(logq(z) - logpz, rev.shape), rtol=1e-10)


def _embedding_batch(b=12, e=3, classes=3):
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(U, K, b, e, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (U, 1, b), generator=g)
    u = torch.rand(U, 1, b, 2, generator=g, dtype=torch.float64)
    return emb, y, u


def test_triplet_formula_matches_torch():
    from harness.losses.similarity import triplet

    a, p, n = (torch.randn(5, 4, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(triplet(a, p, n, torch.tensor(0.7, dtype=torch.float64)),
                               F.triplet_margin_loss(a, p, n, margin=0.7, reduction="none"))


@pytest.mark.parametrize("mining", ["random", "semi_hard", "hard"])
def test_triplet_mining_against_brute_force(mining):
    emb, y, u = _embedding_batch()
    cls = LOSSES.get("triplet")
    loss = cls({"mining": mining, "margin": 0.5})
    margin = torch.full((U, K, 1), 0.5, dtype=torch.float64)
    got = loss(emb, Batch(y, {"u": u}), {"margin": margin})
    b = emb.shape[2]
    for uu in range(U):
        for k in range(K):
            E, lab = emb[uu, k], y[uu, 0]
            d = torch.cdist(E, E)
            vals = []
            for a in range(b):
                pos = [j for j in range(b) if j != a and lab[j] == lab[a]]
                neg = [j for j in range(b) if lab[j] != lab[a]]
                if not pos or not neg:
                    continue
                if mining == "hard":
                    p_, n_ = max(pos, key=lambda j: d[a, j]), min(neg, key=lambda j: d[a, j])
                else:
                    p_ = pos[min(int(u[uu, 0, a, 0] * len(pos)), len(pos) - 1)]
                    if mining == "random":
                        n_ = neg[min(int(u[uu, 0, a, 1] * len(neg)), len(neg) - 1)]
                    else:
                        harder = [j for j in neg if d[a, j] > d[a, p_]]
                        n_ = min(harder or neg, key=lambda j: d[a, j])
                vals.append(F.triplet_margin_loss(E[a], E[p_], E[n_], margin=0.5))
            torch.testing.assert_close(got[uu, k], torch.stack(vals).mean())


def test_contrastive_against_written_formula():
    emb, y, _ = _embedding_batch()
    margin = torch.full((U, K, 1), 1.3, dtype=torch.float64)
    got = LOSSES.get("contrastive")()(emb, Batch(y), {"margin": margin})
    b = emb.shape[2]
    for uu in range(U):
        for k in range(K):
            tot = 0.0
            for i in range(b):
                for j in range(b):
                    if i == j:
                        continue
                    d = torch.linalg.norm(emb[uu, k, i] - emb[uu, k, j])
                    same = bool(y[uu, 0, i] == y[uu, 0, j])
                    tot += d**2 if same else torch.relu(1.3 - d) ** 2
            torch.testing.assert_close(got[uu, k], tot / (b * (b - 1)))


@pytest.mark.parametrize("name", sorted(SPECIAL - {"custom"}) + ["kl"])
def test_special_losses_gradcheck(name):
    emb, y, u = _embedding_batch(b=8)
    cls = LOSSES.get(name)
    if name == "kl":
        out, p = _soft_inputs()
        fn = lambda o: cls()(o, Batch(p), {})
        x = out
    else:
        params = {"margin": torch.full((U, K, 1), 0.8, dtype=torch.float64)}
        loss = cls({"mining": "random", "margin": 0.8}) if name == "triplet" else cls()
        fn = lambda o: loss(o, Batch(y, {"u": u}), params)
        x = emb
    assert torch.autograd.gradcheck(fn, (x.detach().requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_custom_loss_from_a_function(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(
        "import torch\n"
        "def cauchy(pred, target, c=1.0):\n"
        "    r = (pred - target) / c\n"
        "    return 0.5 * c**2 * torch.log1p(r * r)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from harness.losses import loss_class

    section = LOSSES.get("custom").normalize({"_target_": "my_losses.cauchy", "task": "regression", "c": 2}, "loss")
    cls = loss_class(section)
    assert cls.stacked == ("c",) and cls.head == "value"
    out, y = _regression_inputs()
    c = torch.full((U, K, 1), 2.0, dtype=torch.float64)
    torch.testing.assert_close(cls().per_example(out, y, c=c), 2.0 * torch.log1p(((out - y) / 2) ** 2))
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="loss._target_"):
        LOSSES.get("custom").normalize({"_target_": "my_losses.nope"}, "loss")


@pytest.mark.parametrize("name", [n for n, c in LOSSES.items() if c.stacked and c.floats_ok and n in REFERENCES])
def test_shared_parameter_as_float_equals_tensor(name):
    """The engine passes a parameter every run shares as a float (so F.* losses take it as is):
    same values as the per-run tensor path."""
    cls = LOSSES.get(name)
    make, values, _ = REFERENCES[name]
    out, y = make()
    section = cls.normalize(values, "loss")
    loss = cls(cls.options_of(section))
    as_tensor = loss.per_example(out, y, **_params(cls, section))
    as_float = loss.per_example(out, y, **{k: float(section[k]) for k in cls.stacked})
    torch.testing.assert_close(as_float, as_tensor, rtol=1e-12, atol=1e-12)
