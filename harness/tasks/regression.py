"""Regression: real-valued targets, scaled robustly for training, judged in original units."""
from __future__ import annotations

from harness.tasks.base import Task, check_numeric


class Regression(Task):
    """y float [n]. Metrics: RMSE, MAE, R² (+ param_error where the true weights are known)."""

    name = family = "regression"
    head = "value"
    outliers = ("shift", "heavy_tail", "leverage")
    scale_target = True
    user_data = True

    def read_targets(self, key, value, y, y_test):
        y = check_numeric(key, value, "y", y)
        return y, (None if y_test is None else check_numeric(key, "y_test", "y_test", y_test)), None


TASKS = [Regression]
