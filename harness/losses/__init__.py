"""All losses, one registry. `loss_class(section)` gives the class that trains a normalized
loss section (for `loss=custom`, the user's function wrapped as a Loss). The tests loop over the
registry."""
from __future__ import annotations

from typing import Any

from harness.losses.base import Batch, Loss
from harness.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")

from harness.losses import classification, count, custom, distribution, regression, similarity  # noqa: E402

for _m in (regression, classification, count, distribution, similarity, custom):
    for _cls in _m.LOSSES:
        LOSSES.add(_cls.name, _cls)


def fitting(task: str, model: str = "linear") -> list[str]:
    """The built-in losses that train a predictor for `task` with `model`: they fit the task,
    the model has their head, and their head is judged by the task's own metrics (not a loss
    that trains an embedding of classes). What `loss=auto` sweeps (the advise study)."""
    from harness.heads import HEADS
    from harness.models import MODELS

    heads = MODELS.get(model).heads
    return [n for n, c in LOSSES.items() if n != "custom" and task in c.tasks
            and c.head_for(task) in heads and HEADS.get(c.head_for(task)).family is None]


def loss_class(section: dict[str, Any]) -> type[Loss]:
    cls = LOSSES.get(section["name"])
    return cls.resolve(section) if hasattr(cls, "resolve") else cls


__all__ = ["LOSSES", "Loss", "Batch", "fitting", "loss_class"]
