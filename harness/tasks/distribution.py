"""Distributions: each example's target is a class distribution (soft targets)."""
from __future__ import annotations

from harness.tasks.base import Task


class Distribution(Task):
    """y float [n, C], rows summing to 1; `extra["y_hard"]` holds one label drawn from each row.
    A loss that declares `soft_targets` (KL) trains on the distributions; any other (cross-
    entropy) on the drawn labels, so that both learn from the same inputs. Metrics: KL(teacher ||
    student) and argmax agreement."""

    name = family = "distribution"
    head = "logits"

    def targets(self, datas, loss, stack):
        t = super().targets(datas, loss, stack)
        if not loss.soft_targets:
            t.train_eval = t.train                         # the metrics compare with the soft targets
            t.train = stack([d.extra["y_hard"] for d in datas], integer=True)
            t.test_loss = stack([d.extra_test["y_hard"] for d in datas], integer=True)
        return t

    def target_width(self, n_classes):
        return n_classes or 1


TASKS = [Distribution]
