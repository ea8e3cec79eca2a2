"""MLflow -> DataFrames. The report reads MLflow only, never the training code.

What it reads (written by harness/tracking and the sweeper; the names are harness/schema.py's):

    parent run   tags lossbench.kind=sweep, lossbench.sweep_id, maybe lossbench.study;
                 params sweep.<key>; artifacts multirun.yaml, study.yaml (name, question, claims)
    child runs   tag mlflow.parentRunId = the parent's id; tags lossbench.status, .task, .eval,
                 .config_hash (.curves with tracking.curves=parquet: the file holding its curves);
                 params = the flattened config; latest metric values = final values

`runs_table` gives the long table, one row per child run:

    run_id  run_name  status  task  eval  config_hash  diverged_step | loss.name  optimizer.lr ... seed | test/rmse ...
    ------------------- tags (TAG_COLUMNS) -------------------------- | ---- params (typed) ----------------- | final metrics

Params arrive as strings; a column whose values all read as numbers (or "null") becomes numeric,
with "null" as NaN. Diverged runs have NaN final metrics.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import schema as S
from harness.errors import ConfigError
from harness.metric_table import is_metric
from harness.schema import KIND_TAG, PARENT_TAG, STUDY_TAG, SWEEP_TAG  # noqa: F401  (STUDY_TAG: report.build)

# table column -> the tag it is read from
TAG_COLUMNS = {
    "run_name": S.RUN_NAME_TAG,
    "status": S.STATUS_TAG,
    "task": S.TASK_TAG,
    "eval": S.EVAL_TAG,               # the metric family; runs logged before it existed: = task
    "config_hash": S.HASH_TAG,
    "diverged_step": S.DIVERGED_STEP_TAG,
    "curves": S.CURVES_TAG,           # tracking.curves=parquet: the Parquet artifact holding the run's curves
    "study": S.STUDY_TAG,             # the study the run belongs to (a tour holds several)
    "phase": S.PHASE_TAG,             # a tuned protocol's phase: tune | final
    "trial": S.TRIAL_TAG,             # an adaptive search's trial number (harness/search/)
    "search": S.SEARCH_TAG,           # and its study (the group's label)
}
ID_COLUMNS = ["run_id", *TAG_COLUMNS]


@dataclass
class Sweep:
    """One sweep: its parent run, and the study it answers (None without one)."""

    run_id: str
    sweep_id: str
    experiment: str
    experiment_id: str
    uri: str
    params: dict[str, str]
    study: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "FINISHED"      # the parent run's MLflow status

    @property
    def expected(self) -> int | None:
        """The number of runs the sweep's grid holds (None: not recorded)."""
        try:
            return int(self.params[S.N_RUNS_PARAM])
        except (KeyError, ValueError):
            return None


def client_for(uri: str):
    """An MlflowClient on an existing store. A missing SQLite file is an error (MLflow would
    otherwise create an empty database wherever the report was started)."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path not in ("", ":memory:") and not os.path.exists(path):
            raise ConfigError("tracking.uri", uri, f"an existing MLflow store (no file {os.path.abspath(path)})")
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def find_sweep(client, uri: str, experiment: str, sweep: str | None = None) -> Sweep:
    """The sweep named by a parent run id or a sweep id, or the newest sweep of the experiment."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError("tracking.experiment", experiment, f"an experiment in {uri}: " + (", ".join(names) or "(none)"))
    eid = exp.experiment_id
    sweeps = f"tags.`{KIND_TAG}` = '{S.KIND_SWEEP}'"
    if sweep is None:
        found = client.search_runs([eid], sweeps, order_by=["attributes.start_time DESC"], max_results=1)
        if not found:
            raise ConfigError("tracking.experiment", experiment, f"an experiment holding a sweep (it has no run tagged {KIND_TAG}={S.KIND_SWEEP})")
        run = found[0]
    else:
        found = client.search_runs([eid], f"{sweeps} and tags.`{SWEEP_TAG}` = '{_quote(sweep)}'", max_results=1)
        if not found:
            found = [r for r in client.search_runs([eid], f"attributes.run_id = '{_quote(sweep)}'", max_results=1)
                     if r.data.tags.get(KIND_TAG) == S.KIND_SWEEP] if _looks_like_run_id(sweep) else []
        if not found:
            recent = client.search_runs([eid], sweeps, order_by=["attributes.start_time DESC"], max_results=5)
            known = ", ".join(r.data.tags.get(SWEEP_TAG, r.info.run_id) for r in recent) or "(none)"
            raise ConfigError("sweep", sweep, f"a sweep id or parent run id in experiment {experiment} (latest: {known})")
        run = found[0]
    tags = dict(run.data.tags)
    return Sweep(run_id=run.info.run_id, sweep_id=tags.get(SWEEP_TAG, run.info.run_id), experiment=experiment,
                 experiment_id=eid, uri=uri, params=dict(run.data.params), tags=tags,
                 study=read_study(client, run.info.run_id), status=run.info.status)


def counterpart(client, sweep: Sweep, study: str, protocol: str) -> Sweep | None:
    """The newest finished sweep of the same study under the other protocol (shared <-> tuned)
    in the sweep's experiment, or None."""
    q = (f"tags.`{KIND_TAG}` = '{S.KIND_SWEEP}' and tags.`{STUDY_TAG}` = '{_quote(study)}' and "
         f"tags.`{S.PROTOCOL_TAG}` = '{_quote(protocol)}' and tags.`{S.SWEEP_STATUS_TAG}` = 'finished'")
    found = client.search_runs([sweep.experiment_id], q, order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        return None
    run = found[0]
    tags = dict(run.data.tags)
    return Sweep(run_id=run.info.run_id, sweep_id=tags.get(SWEEP_TAG, run.info.run_id), experiment=sweep.experiment,
                 experiment_id=sweep.experiment_id, uri=sweep.uri, params=dict(run.data.params), tags=tags,
                 study=read_study(client, run.info.run_id))


def artifact_text(client, run_id: str, name: str) -> str | None:
    """The text of a run's artifact `name` (None when the run has none)."""
    if name not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file: no bar
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, name, tmp)).read_text()


def read_study(client, run_id: str) -> dict[str, Any] | None:
    """The parent's study.yaml (name, question, claims), or None when the sweep has none."""
    import yaml

    text = artifact_text(client, run_id, S.STUDY_ARTIFACT)
    study = yaml.safe_load(text) if text is not None else None
    return study if isinstance(study, dict) else None


def runs_table(client, sweep: Sweep, page: int = 1000) -> pd.DataFrame:
    """One row per child run of the sweep: tags, typed params, final metrics (see module doc)."""
    rows, token = [], None
    query = f"tags.`{PARENT_TAG}` = '{sweep.run_id}'"
    while True:
        found = client.search_runs([sweep.experiment_id], query, max_results=page, page_token=token)
        for r in found:
            if r.info.status != "FINISHED":   # half-written by a kill: resume deletes and retrains it
                continue
            tags = r.data.tags
            row: dict[str, Any] = {"run_id": r.info.run_id}
            row.update({col: tags.get(tag) for col, tag in TAG_COLUMNS.items()})
            row["eval"] = row["eval"] or row["task"]
            row.update(r.data.params)
            row.update(r.data.metrics)
            rows.append(row)
        token = found.token
        if not token:
            break
    df = pd.DataFrame(rows, columns=None if rows else ID_COLUMNS)
    for c in param_columns(df):
        df[c] = _typed(df[c])
    # a fixed order (the config hash is the run's identity; run ids are random): the bootstrap
    # CIs of the claims resample rows by position, so a rerun of a sweep must give the same table
    order = [c for c in ("config_hash", "run_id") if c in df]
    df = df.sort_values(order, kind="stable").reset_index(drop=True)
    if "config_hash" in df and df["config_hash"].notna().all():   # a configuration once (sweeps resumed before resume existed)
        df = df.drop_duplicates("config_hash").reset_index(drop=True)
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Final-metric columns: known metrics and any split-prefixed name (`test/...`, `train/...`)."""
    return [c for c in df.columns if is_metric(c)]


def param_columns(df: pd.DataFrame) -> list[str]:
    """Config columns: everything that is neither an id/tag column nor a metric."""
    metrics = set(metric_columns(df))
    return [c for c in df.columns if c not in ID_COLUMNS and c not in metrics]


def curves(client, run_ids: list[str], key: str = "train/loss",
           sources: dict[str, str | None] | None = None) -> pd.DataFrame:
    """Long table of one metric's history: run_id, step, value. Runs written with
    tracking.curves=parquet (`sources[run_id]` = their lossbench.curves tag, a runs:/ URI) are read
    from that file, downloaded once per file; the others from MLflow's metric history: from an
    SQL store in one query per few hundred runs, else one call per run."""
    sources = sources or {}
    cols = ["run_id", "step", "value"]
    rows = _histories(client, [rid for rid in run_ids if not _present(sources.get(rid))], key)
    frames = [pd.DataFrame(rows, columns=cols)]
    files: dict[str, list[str]] = {}
    for rid in run_ids:
        if _present(sources.get(rid)):
            files.setdefault(str(sources[rid]), []).append(rid)
    for uri, ids in files.items():
        df = _curve_file(client, uri)
        part = df[(df["metric"].astype(str) == key) & df["run_id"].astype(str).isin(ids)]
        frames.append(pd.DataFrame({"run_id": part["run_id"].astype(str).to_numpy(),
                                    "step": part["step"].astype(int).to_numpy(), "value": part["value"].to_numpy()}))
    out = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    out = out.astype({"run_id": str, "step": "int64", "value": "float64"})
    return out.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)


def _histories(client, run_ids: list[str], key: str) -> list[tuple[str, int, float]]:
    """(run_id, step, value) of every logged value of `key` for these runs (NaN as NaN): from an
    SQL store in one query per few hundred runs (tracking/sql.py: read_history), else through
    the client, one call per run."""
    from harness.tracking.sql import read_history, store_of

    store = store_of(client) if run_ids and hasattr(client, "_tracking_client") else None
    if store is None:
        return [(rid, m.step, m.value) for rid in run_ids for m in client.get_metric_history(rid, key)]
    return read_history(store, list(run_ids), key)


_CURVE_FILES: dict[tuple[str, str], pd.DataFrame] = {}


def _curve_file(client, uri: str) -> pd.DataFrame:
    """One Parquet curve file (run_id, metric, step, value), kept in memory for the next metric."""
    key = (client.tracking_uri, uri)
    if key not in _CURVE_FILES:
        from mlflow.artifacts import download_artifacts

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory() as tmp:
            path = download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=client.tracking_uri)
            _CURVE_FILES[key] = pd.read_parquet(path)
    return _CURVE_FILES[key]


def _present(v) -> bool:
    return isinstance(v, str) and v != ""


def _typed(s: pd.Series) -> pd.Series:
    """Strings -> numbers where every value is a number or "null"; otherwise unchanged."""
    as_null = s.where(s != "null")
    num = pd.to_numeric(as_null, errors="coerce")
    if num.notna().sum() == as_null.notna().sum() and as_null.notna().any():
        return num
    return s


def _quote(s: str) -> str:
    return s.replace("'", "")


def _looks_like_run_id(s: str) -> bool:
    return len(s) == 32 and all(c in "0123456789abcdef" for c in s.lower())
