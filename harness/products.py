"""The matrix products of a stack, computed so that a run gets the same numbers, to the last bit,
alone or in a stack of any size, in any slot.

Why not BLAS: a batched GEMM (MKL, OpenBLAS, cuBLAS) picks its kernel, blocking and
vectorization from the matrix shapes and the operands' alignment, so one run's entries can be
summed in another order, and round otherwise, when the stack holds another number of runs or
the run sits in another slot. Measured with MKL on an AVX-512 CPU, float32: the rows of a
[K x 20] x [20 x 2000] product differ between K <= 3 and K >= 4 in 70% of their entries, and
per-run batched products [n x m] x [m x o] differ with the slot (operand alignment). One ulp is
enough: full-batch GD on MAE at lr 0.1 amplifies it to 7e-3 relative in 300 steps.

The method: every product here is a weighted sum of rows taken by
`torch.nn.functional.embedding_bag` (mode "sum", per-sample weights),

    out[b, :] = sum over t = 0, 1, ..., T-1 of  w[b, t] * table[idx[b, t], :]

which accumulates each bag's terms one after the other, in the order t, and each output entry
separately from every other (vectorized across the row, never across the terms; bags are split
among threads, a bag never is). So an entry's rounding depends on its own terms alone: not on
how many bags (runs) there are, nor where. Tested for K = 1..500, float32 and float64, 1 to 4
threads (tests/test_reproducibility.py). The cost against the batched GEMM it replaces is in
README, "Sweeping fast".

    run_mm(A, T, Tr, ones)  A [U, K, m, o], T [U, K, m, n] (each run's own rows) or
                            [U, 1, m, n] (its data group's: the data, shared by the group's runs)
                            ->  Y [U, K, o, n],  Y[u, k] = A[u, k]^T T[u, k]   (sums over m, in order)
                            Tr: T^T [U, 1|K, n, m] contiguous, when the caller has it already;
                            ones: T's last row is ones (a bias), left out of Tr
    gram(E)                 E [U, K, b, e] -> E E^T [U, K, b, b] (sums over e, in order)
    pairwise_distance(a, b) Euclidean distances [U, K, p, q] from the Gram expansion, as
                            torch.cdist computes them for more than 25 rows

Gradients (autograd): dA[u, k] = T[u, k] dY[u, k]^T (sums over n, in order), and, for a run's
own rows, dT[u, k] = A[u, k] dY[u, k] (sums over o, in order): embedding_bag again. Data rows
(T shared by a group) take no gradient.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=64)
def _bags(U: int, K: int, o: int, t: int, per_run: bool, device: torch.device) -> torch.Tensor:
    """Indices [U*K*o, t]: bag (u, k, c) takes rows base + 0, ..., base + t - 1 of a table of
    blocks of t rows, one block per group (base = u * t) or per run (base = (u * K + k) * t)."""
    base = (torch.arange(U * K, device=device) if per_run else torch.arange(U, device=device).repeat_interleave(K)) * t
    idx = base[:, None, None] + torch.arange(t, device=device)[None, None, :]
    return idx.expand(U * K, o, t).reshape(U * K * o, t)


def _rowsum(idx: torch.Tensor, table: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.embedding_bag(idx, table, mode="sum", per_sample_weights=w)


class _RunMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, T, Tr, ones):
        U, K, m, o = A.shape
        n, per_run = T.shape[-1], T.shape[1] != 1        # with K = 1 both index alike
        ctx.save_for_backward(A, T, Tr)
        ctx.per_run, ctx.ones = per_run, ones
        # bag (u, k, c) weighs rows by A[u, k, :, c]; detached: no bookkeeping for embedding_bag's own backward
        w = A.detach().transpose(-1, -2).reshape(U * K * o, m)
        Y = _rowsum(_bags(U, K, o, m, per_run, A.device), T.detach().reshape(-1, n), w)
        return Y.view(U, K, o, n)

    @staticmethod
    def backward(ctx, dY):
        A, T, Tr = ctx.saved_tensors
        U, K, m, o = A.shape
        n = T.shape[-1]
        dY = dY.contiguous()
        dA = dT = None
        if ctx.needs_input_grad[0]:
            # with `ones`, T's last row is ones: its weights' gradient is a plain sum over n
            # (torch.sum: a fixed order for each row), and the bags skip that column (cheaper)
            mm = m - ctx.ones
            rows = (T[:, :, :mm].transpose(-1, -2).contiguous() if Tr is None else Tr).reshape(-1, mm)
            dAt = _rowsum(_bags(U, K, o, n, ctx.per_run, A.device), rows, dY.view(U * K * o, n)).view(U, K, o, mm)
            if ctx.ones:
                dAt = torch.cat([dAt, dY.sum(-1, keepdim=True)], -1)
            dA = dAt.transpose(-1, -2).contiguous()
        if ctx.needs_input_grad[1]:
            dT = _rowsum(_bags(U, K, m, o, True, A.device), dY.view(U * K * o, n),
                         A.reshape(U * K * m, o)).view(U, K, m, n)
        return dA, dT, None, None


def run_mm(A: torch.Tensor, T: torch.Tensor, Tr: torch.Tensor | None = None, ones: bool = False) -> torch.Tensor:
    """Y[u, k] = A[u, k]^T T[u, k]: A [U, K, m, o], T [U, K | 1, m, n] -> [U, K, o, n] (module
    docstring). `ones`: T's last row is all ones (it carries a bias) and Tr, if given, leaves it out."""
    return _RunMM.apply(A.contiguous(), T.contiguous(), None if Tr is None else Tr.contiguous(), ones)


def gram(E: torch.Tensor) -> torch.Tensor:
    """E E^T per run: [U, K, b, e] -> [U, K, b, b]; exactly symmetric (the same products, in
    the same order, for (i, j) and (j, i))."""
    Et = E.transpose(-1, -2).contiguous()
    return run_mm(Et, Et, E)


def pairwise_distance(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances between the rows of a [U, K, p, e] and of b [U, K, q, e] (a itself
    when None), sqrt(max(|x|^2 + |y|^2 - 2 x.y, 0)): torch.cdist's method beyond 25 rows, with
    the dot products of run_mm. Not differentiated through (mining, retrieval)."""
    b = a if b is None else b
    sa, sb = (a * a).sum(-1), (b * b).sum(-1)
    dot = gram(a) if b is a else run_mm(a.transpose(-1, -2), b.transpose(-1, -2), b)
    return (sa.unsqueeze(-1) + sb.unsqueeze(-2) - 2 * dot).clamp(min=0).sqrt()
