"""Stacked models: every parameter has two leading run axes [U, K] (U data groups, K runs per
group), so one forward pass evaluates every run of a stack on its own group's data.

    forward(params, X)       X [U, n, d]  ->  out [U, K, n, o]
    features(params, X)      the representation before the output layer, [U, K, n, h] (None for linear)
    linear_weights(params)   the weights of a linear fit, [U, K, d] (for param_error; None unless
                             the model is one linear map to one output)

Weights of run (u, k) only ever see the data of group u; gradients of a sum of per-run losses
are therefore each run's own gradient. Every product goes through harness/products.py, whose
sums run in a fixed order per entry: a run computes the same bits alone or in any stack (a
batched GEMM does not: its rounding depends on the stack's size and the run's slot).
Initialization is drawn per seed on the CPU in float64 (the same numbers on any device and
inside any stack), then cast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from harness.component import Component, require
from harness.products import run_mm
from harness.registry import Registry

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu,
               "silu": torch.nn.functional.silu}


class Model(Component):
    group = "model"
    # heads this model can produce (harness/heads.py)
    heads: ClassVar[frozenset[str]] = frozenset({"value", "logit", "logits", "embedding"})  # not density
    penalized: ClassVar[tuple[str, ...]] = ()  # parameter names the regularization applies to
    linear: ClassVar[bool] = False

    def __init__(self, section: dict, in_dim: int, out_dim: int, zero_start: bool = True):
        """`zero_start`: the head allows starting at zero (harness/heads.py)."""
        self.section, self.in_dim, self.out_dim, self.zero_start = section, in_dim, out_dim, zero_start

    def shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    @classmethod
    def size(cls, section: dict, in_dim: int, out_dim: int, rows: int) -> tuple[int, int]:
        """(parameters per run, floats held per run for a forward+backward pass on `rows`
        rows), from the config alone: what the memory planner needs."""
        m = cls(section, in_dim, out_dim)
        return sum(math.prod(s) for s in m.shapes().values()), m.n_activations(rows)

    def init_one(self, g: np.random.Generator, data=None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def init(self, seeds: np.ndarray, device, dtype, datas=None) -> dict[str, torch.Tensor]:
        """seeds [U, K] -> parameters [U, K, ...]; one draw per distinct (seed, data group),
        datas[u] being group u's prepared data (for models that start from the data)."""
        from harness.data.base import rng

        datas = datas or [None] * seeds.shape[0]
        draws = {(int(s), u): self.init_one(rng(int(s), "init"), datas[u])
                 for u, row in enumerate(seeds) for s in set(row.tolist())}
        out = {}
        for name in self.shapes():
            a = np.stack([np.stack([draws[(int(s), u)][name] for s in row]) for u, row in enumerate(seeds)])
            out[name] = torch.tensor(a, dtype=dtype, device=device).requires_grad_(True)
        return out

    def forward(self, p: dict[str, torch.Tensor], X: torch.Tensor, rows: "Rows | None" = None) -> torch.Tensor:
        """X [U, n, d] -> [U, K, n, o]; rows, when given, is Rows.of(X), made once (the engine
        keeps one for the full training and test splits)."""
        raise NotImplementedError

    def features(self, p, X):
        return None

    def linear_weights(self, p: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return None

    def n_activations(self, n: int) -> int:
        """Floats per run held for one forward+backward pass on n rows (for the memory budget)."""
        return 4 * n * self.out_dim


@dataclass(frozen=True)
class Rows:
    """A data split as products.run_mm reads it: X [U, n, d] and X1t = [X | 1]^T [U, d + 1, n],
    both contiguous; the row of ones carries the bias."""

    X: torch.Tensor
    X1t: torch.Tensor

    @classmethod
    def of(cls, X: torch.Tensor) -> "Rows":
        X = X.contiguous()
        return cls(X, torch.cat([X, torch.ones_like(X[..., :1])], -1).transpose(1, 2).contiguous())


def _affine(W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, rows: Rows | None) -> torch.Tensor:
    """X W + b for each run on its group's data: W [U, K, d, o], b [U, K, o], X [U, n, d] ->
    [U, K, o, n] (transposed: the layout run_mm chains in). Each entry sums x_1 w_1, ..., x_d w_d,
    then b, in that order."""
    rows = Rows.of(X) if rows is None else rows
    return run_mm(torch.cat([W, b[:, :, None, :]], 2), rows.X1t[:, None], rows.X[:, None], ones=True)


class Linear(Model):
    """out = X W + b, W [d, o], b [o]. Starts at zero (the problems are convex), except as an
    embedding (o = embed_dim): at zero every point would sit at the origin, where distance-based
    losses have no direction to move, so it starts as torch.nn.Linear does."""

    name = "linear"
    schema = {"embed_dim": int}
    penalized = ("W",)
    linear = True      # a linear map: its training problem is convex for a convex loss

    def shapes(self):
        return {"W": (self.in_dim, self.out_dim), "b": (self.out_dim,)}

    def init_one(self, g, data=None):
        if not self.zero_start:
            bound = 1.0 / math.sqrt(self.in_dim)
            return {"W": g.uniform(-bound, bound, (self.in_dim, self.out_dim)), "b": g.uniform(-bound, bound, self.out_dim)}
        return {"W": np.zeros((self.in_dim, self.out_dim)), "b": np.zeros(self.out_dim)}

    def linear_weights(self, p):
        return p["W"][..., 0] if self.out_dim == 1 else None

    def forward(self, p, X, rows=None):
        Y = _affine(p["W"], p["b"], X, rows)                                   # [U, K, o, n]
        # o = 1: [U, K, 1, n] is [U, K, n, 1] in memory; a view (a select would cost a pass backward)
        return Y.view(*Y.shape[:2], -1, 1) if self.out_dim == 1 else Y.transpose(-1, -2).contiguous()


class MLP(Model):
    """depth hidden layers of `width` units and an output layer:
    h_0 = X, h_l = act(h_{l-1} W_l + b_l), out = h_depth W_out + b_out.
    Init as torch.nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""

    name = "mlp"
    schema = {"width": int, "depth": int, "activation": str, "embed_dim": int}

    @classmethod
    def check(cls, s, group):
        require(s["width"] >= 1, f"{group}.width", s["width"], "an integer >= 1")
        require(s["depth"] >= 1, f"{group}.depth", s["depth"], "an integer >= 1")
        require(s["activation"] in ACTIVATIONS, f"{group}.activation", s["activation"],
                "one of " + ", ".join(sorted(ACTIVATIONS)))

    @property
    def penalized(self):
        return tuple(f"W{i}" for i in range(self.section["depth"] + 1))

    def shapes(self):
        w, depth = self.section["width"], self.section["depth"]
        dims = [self.in_dim] + [w] * depth + [self.out_dim]
        out = {}
        for i in range(depth + 1):
            out[f"W{i}"], out[f"b{i}"] = (dims[i], dims[i + 1]), (dims[i + 1],)
        return out

    def init_one(self, g, data=None):
        out = {}
        for name, shape in self.shapes().items():
            fan_in = self.shapes()["W" + name[1:]][0]
            bound = 1.0 / math.sqrt(fan_in)
            out[name] = g.uniform(-bound, bound, size=shape)
        return out

    def _hidden(self, p, X, rows=None):
        """The last hidden layer transposed, [U, K, width, n] (the layout run_mm chains in)."""
        act = ACTIVATIONS[self.section["activation"]]
        h = act(_affine(p["W0"], p["b0"], X, rows))
        for i in range(1, self.section["depth"]):
            h = act(run_mm(p[f"W{i}"], h) + p[f"b{i}"][..., None])
        return h

    def features(self, p, X):
        return self._hidden(p, X).transpose(-1, -2)

    def forward(self, p, X, rows=None):
        i = self.section["depth"]
        return (run_mm(p[f"W{i}"], self._hidden(p, X, rows)) + p[f"b{i}"][..., None]).transpose(-1, -2).contiguous()

    def n_activations(self, n):
        return 4 * n * (self.section["width"] * self.section["depth"] + self.out_dim)


class Gaussian(Model):
    """A 1-D Gaussian density q = N(mu, sigma^2), parameterized as (mu, log sigma). It starts at
    sigma = 1 and mu = a training sample drawn by the seed (so from one of the modes): between two
    symmetric modes, mu near 0 is a stationary point of reverse KL, even a local minimum for
    well-separated modes, where it would stay. It has no inputs: out [U, K, n, 2] repeats
    (mu, log sigma) for every row."""

    name = "gaussian"
    heads = frozenset({"density"})

    def shapes(self):
        return {"mu": (1,), "log_sigma": (1,)}

    def init_one(self, g, data=None):
        y = np.ravel(data.y_train) if data is not None else np.zeros(1)
        return {"mu": np.array([y[g.integers(len(y))]], dtype=float), "log_sigma": np.zeros(1)}

    def forward(self, p, X, rows=None):
        theta = torch.cat([p["mu"], p["log_sigma"]], dim=-1)          # [U, K, 2]
        return theta[:, :, None, :].expand(-1, -1, X.shape[1], -1)

    def n_activations(self, n):
        return 4 * n


MODELS: Registry[type[Model]] = Registry("model")
for _cls in (Linear, MLP, Gaussian):
    MODELS.add(_cls.name, _cls)
