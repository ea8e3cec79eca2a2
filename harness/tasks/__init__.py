"""All tasks, one registry (see base.py for the contract). `TASKS.get(name)` returns an
instance: tasks hold no state, one of each serves every run."""
from __future__ import annotations

from harness.registry import Registry
from harness.tasks.base import LABEL_NOISE, OUTLIER_RATIO, Targets, Task, check_numeric

TASKS: Registry[Task] = Registry("task")

from harness.tasks import classification, count, density, distribution, regression  # noqa: E402

for _m in (regression, classification, count, distribution, density):
    for _cls in _m.TASKS:
        TASKS.add(_cls.name, _cls())


def user_tasks() -> list[str]:
    """Tasks that bring-your-own data (dataset=file, openml) may declare."""
    return [n for n, t in TASKS.items() if t.user_data]


__all__ = ["TASKS", "Task", "Targets", "check_numeric", "user_tasks", "LABEL_NOISE", "OUTLIER_RATIO"]
