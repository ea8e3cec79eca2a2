"""The MLflow record schema: every tag, param, metric and artifact name that lossbench writes
(harness/tracking, the sweeper in hydra_plugins/) and reads back (harness/report). Each name is
spelled here once. Plain Python: no torch, no MLflow.

    parent run (one per sweep)
      tags      lossbench.kind=sweep, lossbench.sweep_id, lossbench.study (a study's sweeps),
                lossbench.sweep_status (running | finished | failed | killed), mlflow.runName
                "sweep <id>", lossbench.sweep_key / owner / argv / cwd (resume)
      params    sweep.<key> (each override as given), sweep.n_runs, sweep.launcher
      metrics   sweep/runs, sweep/diverged, sweep/failed, sweep/seconds
      artifacts multirun.yaml, study.yaml, curves/<file>.parquet (tracking.curves=parquet)
    child run (one per job)
      tags      lossbench.kind=run, lossbench.sweep_id, lossbench.status, lossbench.config_hash,
                lossbench.task, lossbench.eval, lossbench.device, lossbench.diverged_step (diverged
                runs), lossbench.curves (tracking.curves=parquet), mlflow.parentRunId, mlflow.runName
      params    the config flattened (`loss.delta`), without the sections in NOT_PARAMS
      inputs    train and test datasets, input tag mlflow.data.context = train | test
      artifacts config.yaml
    both        mlflow.user, mlflow.source.name (the command line), mlflow.source.type=LOCAL
"""
from __future__ import annotations

from typing import Any, Mapping

# -- tags -------------------------------------------------------------------------------------
KIND_TAG = "lossbench.kind"            # which kind of run: one of the two below
KIND_SWEEP = "sweep"                   # a sweep's parent run
KIND_RUN = "run"                       # a training run
SWEEP_TAG = "lossbench.sweep_id"       # on parents and runs
STATUS_TAG = "lossbench.status"        # one of the run statuses below (RunResult.status)
CONVERGED, DIVERGED = "converged", "diverged"
HASH_TAG = "lossbench.config_hash"     # harness.spec.config_hash
TASK_TAG = "lossbench.task"            # the data's task
EVAL_TAG = "lossbench.eval"            # the metric family: the task, or embedding
DEVICE_TAG = "lossbench.device"
DIVERGED_STEP_TAG = "lossbench.diverged_step"  # diverged runs only
CURVES_TAG = "lossbench.curves"        # tracking.curves=parquet: runs:/ URI of the file holding the run's curves
STUDY_TAG = "lossbench.study"          # parent and runs: the study's name (a tour's runs: their part's)
SWEEP_STATUS_TAG = "lossbench.sweep_status"  # parent, at the end: the status, lower case
PHASE_TAG = "lossbench.phase"          # runs of a tuned protocol: tune | final
PROTOCOL_TAG = "lossbench.protocol"    # parent of a study's sweep: shared | tuned
SWEEP_KEY_TAG = "lossbench.sweep_key"  # parent: hash of its grid (every job's config hash) and experiment: what resume matches
OWNER_TAG = "lossbench.owner"          # parent: host:pid:process start of the process running it (is it still alive?)
ARGV_TAG = "lossbench.argv"            # parent: the command's arguments (JSON list), for python -m harness.resume
CWD_TAG = "lossbench.cwd"              # parent: the folder the command ran in (relative store and data paths)
TRIAL_TAG = "lossbench.trial"          # runs of an adaptive search: the number of their trial in their group's Optuna study
SEARCH_TAG = "lossbench.search"        # runs of an adaptive search: their group's label (its study: 'loss=huber')

# MLflow's own tags
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
SOURCE_TYPE = "LOCAL"                  # the value of SOURCE_TYPE_TAG
DATA_CONTEXT_TAG = "mlflow.data.context"  # input tag of a dataset input: train | test
DATASET_SOURCE_KEY = "lossbench.dataset"  # key of a dataset input's code source: the data set's name
NOTE_TAG = "mlflow.note.content"       # a run's description (markdown), shown on its page: the sweep's verdicts
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"   # experiment tag: what MLflow 3's UI opens on
EXPERIMENT_KIND = "custom_model_development"    # its training runs (not the GenAI traces view)


def sweep_run_name(sweep_id: str) -> str:
    return f"sweep {sweep_id}"


# -- params -----------------------------------------------------------------------------------
NOT_PARAMS = ("tracking", "study")     # config sections that are not params: where it is tracked, the study notes
SWEEP_PARAM_PREFIX = "sweep."          # parent params: sweep.<override key>
N_RUNS_PARAM = "sweep.n_runs"
LAUNCHER_PARAM = "sweep.launcher"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> param names and values: {"loss": {"delta": 1.0}} -> {"loss.delta": "1.0"}; None -> "null"."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = "null" if v is None else str(v)
    return out


def run_params(config: Mapping[str, Any]) -> dict[str, str]:
    """Params of a run: its normalized config without where it is tracked and the study notes."""
    return flatten({k: v for k, v in config.items() if k not in NOT_PARAMS})


def sweep_param(key: str) -> str:
    """The parent's param for an override key (`optimizer.lr` -> `sweep.optimizer.lr`)."""
    return SWEEP_PARAM_PREFIX + key


def swept_key(param: str) -> str | None:
    """The override key of a parent's param, or None for sweep.n_runs, sweep.launcher and non-sweep params."""
    if not param.startswith(SWEEP_PARAM_PREFIX) or param in (N_RUNS_PARAM, LAUNCHER_PARAM):
        return None
    return param[len(SWEEP_PARAM_PREFIX):]


# -- metrics of the parent --------------------------------------------------------------------
SWEEP_RUNS = "sweep/runs"              # runs recorded (FINISHED children), over every resume of the sweep
SWEEP_DIVERGED = "sweep/diverged"
SWEEP_FAILED = "sweep/failed"          # jobs that raised
SWEEP_SECONDS = "sweep/seconds"        # wall time of the sweep's last invocation
SWEEP_MISSING = "sweep/missing"        # runs of the grid not recorded (a killed or failed sweep; resume trains them)

# -- artifacts --------------------------------------------------------------------------------
CONFIG_ARTIFACT = "config.yaml"        # a run's resolved config
MULTIRUN_ARTIFACT = "multirun.yaml"    # parent: Hydra's sweep config
STUDY_ARTIFACT = "study.yaml"          # parent: name, question, claims
CURVES_DIR = "curves"                  # parent: Parquet curve files (run_id, metric, step, value)
