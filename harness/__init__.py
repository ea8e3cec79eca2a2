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

# PyTorch's CPU threads wait for each other at the end of every parallel op. Spinning there
# (OpenMP's default) is ~15% faster on an idle machine, but when anything else wants the cores a
# spinning thread steals the time its partner needs: we measured a 180-run stack at 0.83 s idle
# and 3.3 s beside one busy process with spinning, 0.97 s and 1.18 s with passive waits. Set
# OMP_WAIT_POLICY=ACTIVE to choose spinning. (Must be set before torch is imported.)
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
