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

    def facts(self, data):
        """data/outlier_share: the share of training rows whose residual from a first fit
        (least squares on the features as trained) lies more than 3 robust sd (1.4826 MAD of the
        residuals) from their median; ~0.003 for Gaussian noise, the outliers' share for gross
        ones (a first fit is itself pulled by them: a lower bound for leverage points)."""
        import numpy as np

        A = np.column_stack([np.ones(len(data.X_train)), data.X_train])
        r = data.y_train - A @ np.linalg.lstsq(A, data.y_train, rcond=None)[0]
        dev = np.abs(r - np.median(r))
        sd = 1.482602218505602 * np.median(dev)
        return {"data/outlier_share": float(np.mean(dev > 3 * sd)) if sd > 0 else 0.0}

    def read_targets(self, key, value, y, y_test):
        y = check_numeric(key, value, "y", y)
        return y, (None if y_test is None else check_numeric(key, "y_test", "y_test", y_test)), None


TASKS = [Regression]
