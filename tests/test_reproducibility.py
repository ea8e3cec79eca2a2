"""A run computes the same numbers, to the last bit, alone or in a stack of any size at any slot.

For every loss family, one run is trained alone and then inside stacks whose data group holds
K = 1, 2, 3, 12, 64, 500 runs (the others differ in learning rate, regularization and the loss's
own numbers) beside a second group (another seed, so other data); every curve and every final
value must be bit-identical. The learning rates are chaotic where that matters (full-batch GD on
MAE at lr 0.3 oscillates and amplifies a one-ulp difference to ~1e-2 within 100 steps), but
bit-identity would catch one ulp anyway. How it holds: harness/products.py.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from conftest import compose
from harness.engine import train
from harness.losses import loss_class
from harness.products import gram, pairwise_distance, run_mm
from harness.spec import build_spec

SMALL = ["dataset.n_train=200", "dataset.n_test=100", "train.steps=40", "regularization.kind=l2",
         "regularization.weight=0.001"]
FAMILIES = {
    "mse": ["loss=mse", "dataset=linear", "optimizer.lr=0.3"],
    "mae": ["loss=mae", "dataset=linear", "optimizer.lr=0.3", "outliers.ratio=0.1"],
    "mae_lr1": ["loss=mae", "dataset=linear", "optimizer.lr=1.0", "outliers.ratio=0.2"],
    "mae_minibatch": ["loss=mae", "dataset=linear", "optimizer=sgd", "optimizer.lr=0.1", "train.batch_size=32"],
    "huber": ["loss=huber", "loss.delta=0.5", "dataset=linear", "optimizer.lr=0.3"],
    "binary": ["loss=bce", "dataset=classification", "optimizer.lr=1.0"],
    "binary_hinge": ["loss=hinge", "dataset=classification", "optimizer.lr=0.5"],
    "count": ["loss=poisson", "dataset=counts", "optimizer.lr=0.1"],
    "multiclass": ["loss=cross_entropy", "dataset=blobs", "optimizer=adam", "optimizer.lr=0.05"],
    "multiclass_mlp": ["loss=cross_entropy", "dataset=blobs", "model=mlp", "model.width=16",
                       "optimizer=adam", "optimizer.lr=0.05"],
    "distribution": ["loss=kl", "dataset=soft_targets", "optimizer.lr=1.0"],
    "density": ["loss=kl", "loss.direction=reverse", "dataset=mixture", "model=gaussian", "optimizer=adam",
                "optimizer.lr=0.05", "regularization.kind=none", "regularization.weight=0"],
    "embedding": ["loss=triplet", "dataset=blobs", "model.embed_dim=8", "optimizer=sgd", "optimizer.lr=0.05",
                  "train.batch_size=64"],
    "embedding_mlp": ["loss=contrastive", "dataset=blobs", "model=mlp", "model.width=16", "model.embed_dim=8",
                      "optimizer=adam", "optimizer.lr=0.01", "train.batch_size=64"],
}
SIZES = [1, 2, 3, 12, 64, pytest.param(500, marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def runs():
    """Per family: the run under test, a run of another group (seed 1), and the run alone."""
    out = {}
    for name, overrides in FAMILIES.items():
        cfg = compose(*SMALL, *overrides)
        other = copy.deepcopy(cfg)
        other["seed"] = 1
        target = build_spec(cfg)
        (alone,) = train([target])
        out[name] = (target, build_spec(other), alone)
    return out


def variant(s, i: int, n: int):
    """Run i of n beside s in its data group: another learning rate, penalty weight and loss
    numbers (each inside its allowed range), same data, seed and stack."""
    f = 1.0 - 0.5 * (i + 1) / (n + 1)                       # in (0.5, 1)
    loss = {**s.loss, **{k: s.loss[k] * f for k in loss_class(s.loss).stacked}}
    reg = {**s.regularization, "weight": s.regularization["weight"] * (i % 3)}
    return dataclasses.replace(s, optimizer={**s.optimizer, "lr": s.optimizer["lr"] * (2 - f) ** 2}, loss=loss,
                               regularization=reg, config_hash=f"{s.config_hash}-{i}")


def assert_same(a, b) -> None:
    assert a.status == b.status and a.diverged_step == b.diverged_step
    assert a.curves.keys() == b.curves.keys() and a.final.keys() == b.final.keys()
    for k, (steps, values) in a.curves.items():
        np.testing.assert_array_equal(steps, b.curves[k][0], err_msg=k)
        np.testing.assert_array_equal(values, b.curves[k][1], err_msg=k)   # NaN == NaN, else bitwise
    for k, v in a.final.items():
        np.testing.assert_array_equal(v, b.final[k], err_msg=k)


@pytest.mark.parametrize("K", SIZES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_run_alone_equals_it_in_any_stack(runs, family, K):
    target, other, alone = runs[family]
    mates = [variant(target, i, K - 1) for i in range(K - 1)]
    slot = K // 2
    group = mates[:slot] + [target] + mates[slot:]
    stack = [other, variant(other, 0, 2)] + group                # the run's group is the second one
    results = train(stack)
    assert_same(results[2 + slot], alone)
    assert results[2 + slot].curves["train/loss"][1][-1] != results[2 + (slot + 1) % K].curves["train/loss"][1][-1] or K == 1


def _gemm_mm(A, T, Tr=None, ones=False):
    """The products as they were before products.py: Linear's one batched GEMM of a group's K
    rows of weights against its data (torch.baddbmm), matmul elsewhere."""
    if A.shape[-1] == 1 and T.shape[1] == 1:
        return torch.bmm(A[..., 0], T[:, 0]).unsqueeze(-2)
    return torch.matmul(A.transpose(-1, -2), T)


@pytest.mark.parametrize("family", ["mae", "mse"])
def test_the_check_catches_a_batched_gemm(runs, family, monkeypatch):
    """The stack test can fail: with Linear's products back on a batched GEMM, the run in a
    12-run stack no longer matches it alone on this CPU (skipped where the BLAS rounds a row
    alike whatever the rows beside it)."""
    import harness.models
    g = torch.Generator().manual_seed(0)
    W, Xt = torch.randn(1, 12, 20, generator=g), torch.randn(1, 20, 200, generator=g)
    if torch.equal(torch.bmm(W[:, :2], Xt)[0, 0], torch.bmm(W, Xt)[0, 0]):
        pytest.skip("this BLAS rounds a row alike whatever the rows beside it")
    monkeypatch.setattr(harness.models, "run_mm", _gemm_mm)
    target = runs[family][0]
    (alone,) = train([target])
    mates = [variant(target, i, 11) for i in range(11)]
    with pytest.raises(AssertionError):
        assert_same(train(mates[:6] + [target] + mates[6:])[6], alone)


# -- the products themselves ----------------------------------------------------------------
SHAPES = [(2000, 20, 1), (200, 5, 3), (1347, 64, 10), (97, 1, 1), (150, 33, 16)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_run_mm_rows_do_not_depend_on_the_stack(dtype, threads):
    """A run's products and gradients (data rows shared by the group, and rows of its own) are
    the same bits at any slot of any K; a batched GEMM's are not (see the last assertion)."""
    g = torch.Generator().manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n, m, o in SHAPES:
            Xt = torch.randn(1, 1, m, n, generator=g, dtype=dtype)
            A = torch.randn(1, 64, m, o, generator=g, dtype=dtype)
            H = torch.randn(1, 64, m, n, generator=g, dtype=dtype)
            dY = torch.randn(1, 64, o, n, generator=g, dtype=dtype)
            ref = None
            for K in (1, 2, 3, 4, 5, 12, 17, 64):
                for slot in sorted({0, K // 2, K - 1}):
                    idx = list(range(1, K))
                    idx.insert(slot, 0)
                    a = A[:, idx].clone().requires_grad_(True)
                    h = H[:, idx].clone().requires_grad_(True)
                    shared, own = run_mm(a, Xt), run_mm(a, h)
                    (shared * dY[:, idx]).sum().backward(inputs=[a])
                    da_shared = a.grad[:, slot].clone()
                    a.grad = None
                    (own * dY[:, idx]).sum().backward(inputs=[a, h])
                    got = [shared[:, slot], own[:, slot], da_shared, a.grad[:, slot], h.grad[:, slot]]
                    if ref is None:
                        ref = [t.detach().clone() for t in got]
                    for r, t in zip(ref, got):
                        assert torch.equal(r, t), (n, m, o, K, slot)
                    torch.testing.assert_close(shared[:, slot], (a[:, slot].transpose(-1, -2) @ Xt[:, 0]))
            ref = None
    finally:
        torch.set_num_threads(before)


def test_a_batched_gemm_would_not_do():
    """Why products.py exists: on this kind of CPU a run's row of a batched GEMM changes with
    the number of rows beside it (skipped where the BLAS happens to be invariant)."""
    g = torch.Generator().manual_seed(0)
    W, Xt = torch.randn(1, 12, 20, generator=g), torch.randn(1, 20, 2000, generator=g)
    rows = {K: torch.bmm(W[:, :K], Xt)[0, 0] for K in (1, 2, 3, 4, 12)}
    if all(torch.equal(rows[1], r) for r in rows.values()):
        pytest.skip("this BLAS rounds a row alike whatever the rows beside it")
    assert all(torch.equal(run_mm(W[:, :K, :, None], Xt[:, None])[0, 0, 0], run_mm(W[:, :1, :, None], Xt[:, None])[0, 0, 0])
               for K in rows)


def test_gram_and_distances():
    g = torch.Generator().manual_seed(1)
    E = torch.randn(2, 3, 50, 8, generator=g, dtype=torch.float64, requires_grad=True)
    G = gram(E)
    assert torch.equal(G, G.transpose(-1, -2))
    torch.testing.assert_close(G, E @ E.transpose(-1, -2))
    torch.autograd.gradcheck(gram, (E[:1, :1, :6],))
    F_ = torch.randn(2, 3, 30, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(pairwise_distance(E.detach(), F_), torch.cdist(E.detach(), F_))
    torch.testing.assert_close(pairwise_distance(E.detach()), torch.cdist(E.detach(), E.detach()), atol=1e-6, rtol=1e-6)
