"""Facts about metrics that reports need, without importing torch or scikit-learn.

HIGHER_IS_BETTER  metric name -> True when larger is better
PRIMARY           task -> the metric runs of that task are ranked by
TASK_METRICS      task -> the final test metrics that task logs (the report's table columns)
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
    "test/kl": False, "test/reverse_kl": False,
    # embeddings
    "test/recall_at_1": True, "test/recall_at_5": True, "test/knn_accuracy": True,
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
    "multiclass": ["test/accuracy", "test/precision", "test/recall", "test/f1", "test/log_loss", "test/ece"],
    "distribution": ["test/kl", "test/accuracy"],
    "density": ["test/kl", "test/reverse_kl"],
    "embedding": ["test/recall_at_1", "test/recall_at_5", "test/knn_accuracy"],
}
