"""Example losses as a user writes them, for `loss=custom loss._target_=...` (harness/losses/custom.py).

    python -m harness loss=custom loss._target_=harness.losses.examples.zero_one loss.task=binary dataset=breast_cancer

Not registered as built-ins: they show the custom-loss path, and one of them shows why a loss
must be differentiable (experiments/loss_vs_metric.yaml).
"""
from __future__ import annotations

import torch


def zero_one(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The 0-1 loss of a binary classifier, per example: 1 where the predicted class, pred > 0
    (a logit; the threshold of test/accuracy), differs from the label y in {0, 1}, else 0.
    Its mean is the error rate, 1 - accuracy: the metric itself, written as a loss.

    It is piecewise constant in the model's parameters, so its gradient is 0 wherever it
    exists (and undefined on the decision boundary). Autograd agrees: a comparison has no
    derivative, so `(pred > 0) != target` is a tensor outside the graph, and asking for its
    gradient is an error (nothing to differentiate). `+ 0 * pred` puts the loss back in the
    graph without changing its value: d/dpred = 0 exactly, so the run trains, and gradient
    descent, given a zero gradient at every step, never moves (train/grad_norm = 0; with the
    linear model's zero start, its penalty's gradient is 0 too).
    """
    wrong = ((pred > 0) != (target > 0.5)).to(pred.dtype)
    return wrong + 0.0 * pred
