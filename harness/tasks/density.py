"""Densities: the targets are samples of a 1-D density p whose form is known."""
from __future__ import annotations

import json

import numpy as np

from harness.tasks.base import Targets, Task

MIXTURE_KEYS = ("weights", "means", "sds")


class Density(Task):
    """y float [n, 1] samples of p, a Gaussian mixture given by `extra["mixture"]` (weights,
    means, sds; a kernel density estimate is one, with a component per sample). On the device
    the samples are [U, n] and the mixture a per-group constant, `const["mixture"]` = (weights,
    means, sds), each [U, 1, 1, J], for exact log p in the losses and the metrics. Each run also
    records p itself (artifact `target.json`), so the report can draw the fits against it."""

    name = family = "density"
    head = "density"
    figures = ("density_fits",)

    def targets(self, datas, loss, stack):
        U = len(datas)
        y = stack([d.y_train for d in datas]).reshape(U, -1)
        yte = stack([d.y_test for d in datas]).reshape(U, -1)
        mix = [d.extra["mixture"] for d in datas]
        const = {"mixture": tuple(stack([np.asarray(m[k], dtype=float) for m in mix])[:, None, None, :]
                                  for k in MIXTURE_KEYS)}
        return Targets(y, yte, yte, const)

    def artifacts(self, data) -> dict[str, str]:
        return {"target.json": json.dumps({k: list(map(float, data.extra["mixture"][k])) for k in MIXTURE_KEYS})}


TASKS = [Density]
