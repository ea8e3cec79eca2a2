"""lossbench: which loss should I train with, on this data, at which learning rate and
regularization, and how does it hold up when the data is dirty?

The flow (see README.md):

    overrides --Hydra--> configs --> RunSpec per job --group--> Stack --engine--> RunResult per job
                                                                                   |
                                      report <-- long table <-- MLflow (parent + children)

Where a new piece goes (README.md, "Where a new piece goes", says more):
    loss      harness/losses/<family>.py (+ its LOSSES list), conf/loss/<name>.yaml
    data set  harness/data/<module>.py (+ its DATASETS list), conf/dataset/<name>.yaml, datasets/<name>.md
    task      harness/tasks/<name>.py (+ harness/tasks/__init__.py), its metrics in metric_table.py
    study     experiments/<name>.yaml (found by hydra_plugins/lossbench/experiments.py)
    check     harness/report/claims/<check>.py (+ its import in claims/__init__.py)

Nothing heavy is imported here: `python -m harness.report` must not pay for torch, and
`python -m harness` must not pay for matplotlib.
"""
import os as _os

__version__ = "0.1.0"

# MLflow sends usage telemetry unless told not to; lossbench sends nothing unless the user
# asks (set MLFLOW_DISABLE_TELEMETRY=false to opt in).
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

