"""The loss contract.

A loss is a small class: which tasks it fits, what it needs the model to output (its *head*),
which of its numbers may differ between runs trained together in one stack, and a
`per_example` function that states the math and delegates to `torch.nn.functional` where
PyTorch has the loss.

Shapes (the engine trains a *stack* of runs, laid out as U data groups x K runs per group):

    out     [U, K, n]        for heads `value` and `logit`
            [U, K, n, o]     for heads `logits` (o = classes), `embedding` (o = embed_dim)
    target  [U, 1, n]        (or [U, 1, n, C] for soft targets); broadcasts over K
    params  [U, K, 1]        one value per run, e.g. Huber's delta -- or a Python float when every
                             run of the stack has the same value (the common case), so a loss
                             can hand it to torch.nn.functional unchanged: for Huber that halves
                             the step time
    result  [U, K, m]        one loss value per example (m = n), anchor or pair

`__call__` reduces to one number per run, [U, K] (the mean over examples, unless a loss says
otherwise), and the engine sums runs only to get every run's own gradient in one backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from harness.component import Component


@dataclass
class Batch:
    """What a loss sees of the data at one step: the targets, and extras some losses need
    (hard labels beside soft targets, pre-drawn triplets, samples for reverse KL, ...)."""

    y: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


class Loss(Component):
    group = "loss"
    tasks: ClassVar[frozenset[str]] = frozenset()
    head: ClassVar[str] = "value"                      # what it reads of the model (harness/heads.py)
    heads_by_task: ClassVar[dict[str, str]] = {}       # another head on some task (KL on densities)
    # schema keys whose values may differ run to run inside a stack (numbers, passed as [U,K,1]
    # tensors); every other schema key is an *option*, fixed for a stack.
    stacked: ClassVar[tuple[str, ...]] = ()
    soft_targets: ClassVar[bool] = False    # on the distribution task: trains on the soft targets
                                            # (else on labels sampled from them, extra["y_hard"])
    robust: ClassVar[bool] = False          # designed to resist outliers / label noise
    floats_ok: ClassVar[bool] = True        # takes a float for a parameter shared by the whole stack
    differentiable: ClassVar[bool] = True   # everywhere (MAE is not, at 0: subgradient)
    optimum: ClassVar[str | None] = None    # how the convex problem's exact optimum is found (harness/optimum.py)
    formula: ClassVar[str] = ""             # one line for reports and --help

    def __init__(self, options: dict[str, Any] | None = None):
        defaults = {k: v for k, v in self.defaults().items() if k not in self.stacked}
        self.options = {**defaults, **(options or {})}

    def per_example(self, out: torch.Tensor, target: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, out: torch.Tensor, batch: Batch, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.per_example(out, batch.y, **params).mean(-1)

    @classmethod
    def head_for(cls, task: str) -> str:
        """What the model must output for this task (most losses: always the same head)."""
        return cls.heads_by_task.get(task, cls.head)

    @classmethod
    def options_of(cls, section: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in section.items() if k != "name" and k not in cls.stacked}


def param(x, like: torch.Tensor):
    """A loss parameter in `like`'s dtype: a float stays a float, a [U, K, 1] tensor is cast."""
    return x if isinstance(x, float) else x.to(like.dtype)


def expand(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a [U,1,n,...] target over the K runs of `like` (F.*_loss warn on implicit broadcast)."""
    return target.expand_as(like)
