"""All losses, one registry: `LOSSES.get(name)` gives the class. The tests loop over it."""
from harness.losses.base import Batch, Loss
from harness.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")


def _register(classes):
    for cls in classes:
        LOSSES.add(cls.name, cls)


from harness.losses import regression  # noqa: E402

_register(regression.LOSSES)

__all__ = ["LOSSES", "Loss", "Batch"]
