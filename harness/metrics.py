"""Evaluation metrics, per task. A metric is not a loss: it need not be differentiable, and it
is what a run is judged by.

Two kinds of call:
  curve(...)  cheap metrics for every run at once, as [U, K] tensors, at each eval point;
  final(...)  the rest, once per run at the end, with scikit-learn where it has the metric.

Each metric declares whether higher is better, so reports never guess from a name.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.metric_info import HIGHER_IS_BETTER, PRIMARY  # noqa: F401  (facts live in metric_info)


@dataclass
class EvalData:
    """Test split on the device: X [U, n, d], y [U, 1, n(, C)], and how to undo target scaling."""

    X: torch.Tensor
    y: torch.Tensor
    y_center: torch.Tensor  # [U, 1, 1]
    y_scale: torch.Tensor   # [U, 1, 1]


def regression_curve(pred: torch.Tensor, ev: EvalData) -> dict[str, torch.Tensor]:
    """pred [U, K, n] in scaled units -> RMSE, MAE, R^2 in the target's original units."""
    p = pred * ev.y_scale + ev.y_center
    y = ev.y * ev.y_scale + ev.y_center
    r = p - y
    sse = (r * r).sum(-1)
    sst = ((y - y.mean(-1, keepdim=True)) ** 2).sum(-1)
    return {"test/rmse": (sse / r.shape[-1]).sqrt(), "test/mae": r.abs().mean(-1), "test/r2": 1 - sse / sst}
