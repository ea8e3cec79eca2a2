"""lossbench: which loss should I train with, on this data, at which learning rate and
regularization, and how does it hold up when the data is dirty?

The flow (see README.md):

    overrides --Hydra--> configs --> RunSpec per job --group--> Stack --engine--> RunResult per job
                                                                                   |
                                      report <-- long table <-- MLflow (parent + children)

Nothing heavy is imported here: `python -m harness.report` must not pay for torch, and
`python -m harness` must not pay for matplotlib.
"""
import os as _os

__version__ = "0.1.0"

# MLflow sends usage telemetry unless told not to; lossbench sends nothing unless the user
# asks (set MLFLOW_DISABLE_TELEMETRY=false to opt in).
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

