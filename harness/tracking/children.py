"""A sweep's child runs as the store holds them, for resume and for the parent's counts: which
config hashes have a FINISHED run, which runs a kill left half-written, their final metrics.

On SQL stores one SELECT over MLflow's tables (a sweep of 54,000 runs is read in well under a
second); on `mlflow server --app-name lossbench` the same SELECT, run by the server
(server_app.py); elsewhere MLflow's search_runs, paged (whole runs: ~7 ms a run)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from harness import schema as S


@dataclass(frozen=True)
class Child:
    run_id: str
    status: str          # MLflow's: FINISHED, RUNNING, FAILED, KILLED
    config_hash: str
    outcome: str         # lossbench.status: converged | diverged ("" when missing)
    start: int           # ms


def children(tracker, parent_id: str) -> list[Child]:
    """The parent's active child runs, oldest first."""
    if tracker.bulk:
        return sql_children(tracker._sql, parent_id)
    from harness.tracking import app_client

    if app_client.stack_api(tracker.client):
        return [Child(*row) for row in app_client.children(tracker.client, parent_id)]
    from mlflow.entities import ViewType

    out, token = [], None
    while True:
        page = tracker.client.search_runs([tracker.experiment_id], f"tags.`{S.PARENT_TAG}` = '{parent_id}'",
                                          run_view_type=ViewType.ACTIVE_ONLY, max_results=50000, page_token=token)
        out += [Child(r.info.run_id, r.info.status, r.data.tags.get(S.HASH_TAG, ""),
                      r.data.tags.get(S.STATUS_TAG, ""), r.info.start_time or 0) for r in page]
        token = page.token
        if not token:
            return sorted(out, key=lambda c: (c.start, c.run_id))


def sql_children(store, parent_id: str) -> list[Child]:
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
    from sqlalchemy import and_, select
    from sqlalchemy.orm import aliased

    parent, h, st = aliased(SqlTag), aliased(SqlTag), aliased(SqlTag)
    q = (select(SqlRun.run_uuid, SqlRun.status, h.value, st.value, SqlRun.start_time)
         .join(parent, and_(parent.run_uuid == SqlRun.run_uuid, parent.key == S.PARENT_TAG))
         .outerjoin(h, and_(h.run_uuid == SqlRun.run_uuid, h.key == S.HASH_TAG))
         .outerjoin(st, and_(st.run_uuid == SqlRun.run_uuid, st.key == S.STATUS_TAG))
         .where(parent.value == parent_id, SqlRun.lifecycle_stage == "active")
         .order_by(SqlRun.start_time, SqlRun.run_uuid))
    with store.ManagedSessionMaker() as session:
        return [Child(rid, status, hv or "", sv or "", start or 0) for rid, status, hv, sv, start in session.execute(q)]


def final_metrics(tracker, run_ids: list[str], chunk: int = 500) -> dict[str, dict[str, float]]:
    """{run id: {metric: its latest value}} (NaN where MLflow stored is_nan)."""
    if tracker.bulk:
        return sql_final_metrics(tracker._sql, run_ids, chunk)
    from harness.tracking import app_client

    if app_client.stack_api(tracker.client):
        return app_client.final_metrics(tracker.client, run_ids)
    out: dict[str, dict[str, float]] = {rid: {} for rid in run_ids}
    for rid in run_ids:
        out[rid] = dict(tracker.client.get_run(rid).data.metrics)
    return out


def sql_final_metrics(store, run_ids: list[str], chunk: int = 500) -> dict[str, dict[str, float]]:
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric as M
    from sqlalchemy import select

    out: dict[str, dict[str, float]] = {rid: {} for rid in run_ids}
    with store.ManagedSessionMaker() as session:
        for i in range(0, len(run_ids), chunk):
            q = select(M.run_uuid, M.key, M.value, M.is_nan).where(M.run_uuid.in_(run_ids[i:i + chunk]))
            for rid, key, value, nan in session.execute(q):
                out[rid][key] = float("nan") if nan else float(value)
    return out


def delete(tracker, run_ids: list[str]) -> None:
    """Marks runs deleted (MLflow's soft delete: lifecycle_stage=deleted), as the UI's delete does."""
    if not run_ids:
        return
    if tracker.bulk:
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import update

        now = int(time.time() * 1000)
        with tracker._sql.ManagedSessionMaker() as session:
            for i in range(0, len(run_ids), 500):
                session.execute(update(SqlRun).where(SqlRun.run_uuid.in_(run_ids[i:i + 500]))
                                .values(lifecycle_stage="deleted", deleted_time=now))
        return
    for rid in run_ids:
        tracker.client.delete_run(rid)


def tidy(tracker, parent_id: str) -> tuple[list[Child], int]:
    """(the parent's FINISHED children, one per config hash, oldest kept; how many others were
    deleted): runs a kill left unfinished (RUNNING, or FAILED/KILLED) and later copies of a
    configuration (a sweep resumed before resume existed) go, so the sweep holds each
    configuration once."""
    kept: dict[str, Child] = {}
    drop = []
    for c in children(tracker, parent_id):
        if c.status != "FINISHED" or c.config_hash in kept:
            drop.append(c.run_id)
        else:
            kept[c.config_hash] = c
    delete(tracker, drop)
    return list(kept.values()), len(drop)
