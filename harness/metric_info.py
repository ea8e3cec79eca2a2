"""Facts about metrics that reports need, without importing torch or scikit-learn.

HIGHER_IS_BETTER  metric name -> True when larger is better (absent: no direction, e.g. fit/mu)
LABELS            metric name -> how it reads on an axis, with its unit where it has one
BOUNDS            metric name -> (lowest, highest) value it can take, None where unbounded
PRIMARY           metric family -> the metric runs of that family are ranked by
TASK_METRICS      metric family -> the final metrics it logs (the report's table columns); some
                  only under a condition (multiclass retrieval metrics: model=mlp only)
CURVE_METRICS     metric family -> the test metrics it also logs at every eval point (curves);
                  the rest are final-only

A metric family is the `lossbench.eval` tag of a run: the task, or `embedding` for losses that
train an embedding (harness/metrics.py computes them; the names here must match its keys).
"""

HIGHER_IS_BETTER = {
    # training curves
    "train/loss": False, "train/objective": False, "train/grad_norm": False, "test/loss": False,
    # regression
    "test/rmse": False, "test/mae": False, "test/r2": True, "param_error": False,
    # classification
    "test/accuracy": True, "test/precision": True, "test/recall": True, "test/f1": True,
    "test/roc_auc": True, "test/log_loss": False, "test/ece": False,
    # distributions
    "test/kl": False, "test/reverse_kl": False, "test/nll": False,
    # embeddings
    "test/recall_at_1": True, "test/recall_at_5": True, "test/knn_accuracy": True,
}

LABELS = {
    "train/loss": "training loss (the run's own loss)", "train/objective": "training objective (loss + penalty)",
    "train/grad_norm": "gradient norm", "test/loss": "test loss (the run's own loss)",
    "test/rmse": "test RMSE (target units)", "test/mae": "test MAE (target units)", "test/r2": "test R²",
    "param_error": "‖ŵ − w*‖₂ (weight error)",
    "test/accuracy": "test accuracy (fraction)", "test/precision": "test precision (fraction)",
    "test/recall": "test recall (fraction)", "test/f1": "test F1",
    "test/roc_auc": "test ROC AUC", "test/log_loss": "test log loss (nats)",
    "test/ece": "test expected calibration error (fraction)",
    "test/kl": "test KL(p‖q) (nats)", "test/reverse_kl": "test KL(q‖p) (nats)",
    "test/nll": "held-out −log q(x) per sample (nats)",
    "fit/mu": "fitted mean μ", "fit/sigma": "fitted standard deviation σ",
    "test/recall_at_1": "test recall@1 (fraction)", "test/recall_at_5": "test recall@5 (fraction)",
    "test/knn_accuracy": "test 5-NN accuracy (fraction)",
}

_FRACTION = (0.0, 1.0)
BOUNDS = {
    "test/rmse": (0.0, None), "test/mae": (0.0, None), "test/r2": (None, 1.0), "param_error": (0.0, None),
    "test/accuracy": _FRACTION, "test/precision": _FRACTION, "test/recall": _FRACTION, "test/f1": _FRACTION,
    "test/roc_auc": _FRACTION, "test/log_loss": (0.0, None), "test/ece": _FRACTION,
    "test/kl": (0.0, None), "test/reverse_kl": (0.0, None), "fit/sigma": (0.0, None),
    "test/recall_at_1": _FRACTION, "test/recall_at_5": _FRACTION, "test/knn_accuracy": _FRACTION,
}

PRIMARY = {
    "regression": "test/rmse",
    "binary": "test/accuracy",
    "multiclass": "test/accuracy",
    "distribution": "test/kl",
    "density": "test/kl",
    "embedding": "test/recall_at_1",
}

TASK_METRICS = {
    "regression": ["test/rmse", "test/mae", "test/r2", "param_error"],
    "binary": ["test/accuracy", "test/precision", "test/recall", "test/f1", "test/roc_auc", "test/log_loss", "test/ece"],
    "multiclass": ["test/accuracy", "test/precision", "test/recall", "test/f1", "test/log_loss", "test/ece",
                   "test/recall_at_1", "test/recall_at_5", "test/knn_accuracy"],   # the last three: model=mlp
    "distribution": ["test/kl", "test/accuracy"],
    "density": ["test/kl", "test/reverse_kl", "test/nll", "fit/mu", "fit/sigma"],
    "embedding": ["test/recall_at_1", "test/recall_at_5", "test/knn_accuracy"],
}

CURVE_METRICS = {
    "regression": ["test/rmse", "test/mae", "test/r2", "param_error"],
    "binary": ["test/accuracy"],
    "multiclass": ["test/accuracy"],
    "distribution": ["test/kl", "test/accuracy"],
    "density": ["test/kl", "test/reverse_kl", "test/nll", "fit/mu", "fit/sigma"],
    "embedding": [],
}
