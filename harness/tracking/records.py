"""What a run's MLflow records are, built from RunResults: no store is touched here. Both write
paths (sql.py, client.py) write the dicts of `build_record`; names come from harness/schema.py.

A record: run_id (a fresh hex id; the client path replaces it by the server's), name, tags, params,
points (metric, value, step), config (the resolved config), files (artifact name -> text:
config.yaml and what the run's task records, harness/tasks/: Task.artifacts), start and end
(ms), datasets (DatasetRecord, context) pairs.
"""
from __future__ import annotations

import getpass
import os
import sys
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from harness import schema as S
from harness.schema import run_params

if TYPE_CHECKING:
    import pandas as pd

    from harness.engine import RunResult


GROUP_ORDER = ("experiment", "loss", "dataset", "model", "optimizer")   # choices first, in this order


def run_name(result: "RunResult") -> str:
    """A name that sorts well in the MLflow runs table: the study (in a tour: a study whose
    experiment is not the sweep's), the loss, data
    set, model and optimizer chosen, then the swept values by their last key (`lr=0.1`,
    `ratio=0.2`, `delta=0.5`), the seed last and zero-padded: `huber linear lr=0.1 ratio=0.2 seed=03`."""
    s = result.spec
    choices, values, seed = {}, [], f"{s.seed:02d}"
    for o in s.overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key.startswith(("tracking.", "hydra")):
            continue
        if key == "seed":
            continue
        if key in GROUP_ORDER:
            choices[key] = value
        else:
            values.append(f"{key.rsplit('.', 1)[-1]}={value}")
    choices.setdefault("loss", s.loss["name"])
    if choices.get("experiment") == s.tracking.get("experiment"):   # the study's own experiment: says nothing
        choices.pop("experiment")
    first = [choices[g] for g in GROUP_ORDER if g in choices]
    return " ".join(first + values + [f"seed={seed}"])[:250]


def config_yaml(config: dict[str, Any]) -> str:
    import yaml

    return yaml.dump(config, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


@dataclass
class DatasetRecord:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None
    profile: str | None


def dataset_records(result: "RunResult") -> list[tuple[DatasetRecord, str]]:
    """MLflow dataset entities for the run's train and evaluation splits (test, or val for a
    tuning run), with the context tag value."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource

    d = result.data
    if d is None:
        return []
    out = []
    for split, X, y in (("train", d.X_train, d.y_train), (d.evaluated_on, d.X_test, d.y_test)):
        src = CodeDatasetSource({S.DATASET_SOURCE_KEY: d.name, "source": d.source})
        ds = mlflow.data.from_numpy(X, targets=y, source=src, name=f"{d.name}-{split}", digest=f"{d.digest}{split[:2]}")
        e = ds._to_mlflow_entity()
        out.append((DatasetRecord(e.name, e.digest, e.source_type, e.source, e.schema, e.profile), split))
    return out


def sweep_tags(sweep_id: str, tags: dict[str, str]) -> dict[str, str]:
    """Tags of a sweep's parent run: its id and kind, who started it and how, then the caller's."""
    return {S.SWEEP_TAG: sweep_id, S.KIND_TAG: S.KIND_SWEEP, S.USER_TAG: user(),
            S.SOURCE_NAME_TAG: command(), S.SOURCE_TYPE_TAG: S.SOURCE_TYPE, **tags}


def build_record(r: "RunResult", parent_id: str | None, sweep_id: str, in_metrics: bool,
                 datasets: list[tuple[DatasetRecord, str]]) -> dict[str, Any]:
    """The records of one run. in_metrics: its curves are metric values (tracking.curves=metrics);
    otherwise only the final values are, and the curves go to a file (curve_table)."""
    config = r.spec.config()
    tags = {S.RUN_NAME_TAG: run_name(r), S.STATUS_TAG: r.status, S.SWEEP_TAG: sweep_id,
            S.HASH_TAG: r.spec.config_hash, S.KIND_TAG: S.KIND_RUN, S.TASK_TAG: r.spec.task,
            S.EVAL_TAG: r.spec.eval_family,
            S.DEVICE_TAG: r.device, S.USER_TAG: user(), S.SOURCE_NAME_TAG: command(),
            S.SOURCE_TYPE_TAG: S.SOURCE_TYPE}
    if r.diverged_step is not None:
        tags[S.DIVERGED_STEP_TAG] = str(r.diverged_step)
    if r.pruned_step is not None:
        tags[S.PRUNED_STEP_TAG] = str(r.pruned_step)
    if parent_id:
        tags[S.PARENT_TAG] = parent_id
    if r.spec.phase:
        tags[S.PHASE_TAG] = r.spec.phase
    if isinstance(r.spec.study, dict) and r.spec.study.get("name"):
        tags[S.STUDY_TAG] = str(r.spec.study["name"])      # which study (a tour holds several)
    # the step of a final value: the last, or the rung a pruned run stopped at (its curves end there)
    steps = r.spec.train["steps"] if r.pruned_step is None else r.pruned_step
    points: list[tuple[str, float, int]] = []
    if in_metrics:
        for name, (st, vals) in r.curves.items():
            points.extend(zip([name] * len(st), vals.tolist(), st.tolist()))
    for name, v in r.final.items():  # a final value the curve does not end on (diverged, final-only)
        st, vals = r.curves.get(name, ((), ())) if in_metrics else ((), ())
        if len(st) == 0 or st[-1] != steps or not _same(vals[-1], v):
            points.append((name, v, steps))
    end = int(time.time() * 1000)
    return dict(run_id=uuid.uuid4().hex, name=tags[S.RUN_NAME_TAG], tags=tags,
                params=run_params(config), points=points, config=config,
                files={S.CONFIG_ARTIFACT: config_yaml(config), **r.artifacts},
                start=end - int(r.seconds * 1000), end=end, datasets=datasets)


def point_to_curves(records: list[dict[str, Any]], owner: str) -> str:
    """tracking.curves=parquet: tags each record with where its curves go, a new Parquet file of
    run `owner` (the sweep's parent); returns that file's artifact path."""
    path = f"{S.CURVES_DIR}/{uuid.uuid4().hex[:12]}.parquet"
    for rec in records:
        rec["tags"][S.CURVES_TAG] = f"runs:/{owner}/{path}"
    return path


def curve_table(results: Sequence["RunResult"], run_ids: Sequence[str]) -> "pd.DataFrame":
    """The stack's curves, long format (run_id, metric, step, value), built from whole arrays
    (a DataFrame per curve took minutes at 18,000 runs)."""
    import numpy as np
    import pandas as pd

    names = sorted({n for r in results for n in r.curves})
    code = {n: i for i, n in enumerate(names)}
    run_codes, metric_codes, steps, values = [], [], [], []
    for i, r in enumerate(results):
        for name, (st, vals) in r.curves.items():
            run_codes.append(np.full(len(st), i, dtype=np.int32))
            metric_codes.append(np.full(len(st), code[name], dtype=np.int16))
            steps.append(np.asarray(st, dtype=np.int32))
            values.append(np.asarray(vals, dtype=np.float64))
    return pd.DataFrame({
        "run_id": pd.Categorical.from_codes(np.concatenate(run_codes), list(run_ids)),
        "metric": pd.Categorical.from_codes(np.concatenate(metric_codes), names),
        "step": np.concatenate(steps), "value": np.concatenate(values)})


def sanitize(v: float) -> tuple[bool, float]:
    """As MLflow stores values: NaN as (is_nan, 0), +-inf as +-max float."""
    if v != v:
        return True, 0.0
    if v in (float("inf"), float("-inf")):
        return False, 1.7976931348623157e308 if v > 0 else -1.7976931348623157e308
    return False, float(v)


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or a == b


def user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def command() -> str:
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:500]
