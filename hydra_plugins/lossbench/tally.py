"""What a sweep holds, for the sweeper: the final values of its jobs and its counts, over every
invocation of a resumed sweep; the line that says so when a signal or the store stops it."""
from typing import Any, Dict

from hydra.core.utils import JobStatus


def values(ctx, returns, recorded: Dict[str, str]) -> Dict[str, Dict[str, Any]]:
    """{config hash: final values} of the jobs run so far: this invocation's from their returns,
    those recorded by an earlier one (a resumed sweep) from the store."""
    from harness.tracking import children

    out = {}
    for batch in returns:
        for r in batch:
            if isinstance(r._return_value, dict):
                out[ctx.specs[tuple(r.overrides)].config_hash] = r._return_value
    missing = {h: rid for h, rid in recorded.items() if h not in out}
    finals = children.final_metrics(ctx.tracker, list(missing.values())) if missing else {}
    out.update({h: finals.get(rid, {}) for h, rid in missing.items()})
    return out


def counts(ctx, returns, recorded: Dict[str, str]) -> tuple:
    """(runs recorded, of them diverged, of them pruned) in the whole sweep: its FINISHED children
    in the store and its runs in this process's spool (one per config hash), or, when the store
    cannot be read (a tracking server down), what is known here."""
    from harness import schema as S
    from harness.tracking import children

    spooled = ctx.tracker.spooled_outcomes()   # kept for harness.sync (a tracking server that failed)
    try:
        if ctx.tracker.server_down:   # the fallback below, without MLflow's retries
            raise ConnectionError(ctx.tracker.uri)
        kids = {**spooled, **{c.config_hash: c.outcome for c in children.children(ctx.tracker, ctx.parent)
                              if c.status == "FINISHED"}}
        return (len(kids), sum(o == S.DIVERGED for o in kids.values()), sum(o == S.PRUNED for o in kids.values()))
    except Exception:  # noqa: BLE001 - the counts are a summary; the runs are what matters
        done = [r for batch in returns for r in batch if r.status == JobStatus.COMPLETED]
        outcome = lambda r: r._return_value.get("status") if isinstance(r._return_value, dict) else None
        return (len(done) + len(recorded), sum(1 for r in done if outcome(r) == S.DIVERGED),
                sum(1 for r in done if outcome(r) == S.PRUNED))


def steps_run(ctx, returns, recorded: Dict[str, str]) -> float:
    """The optimizer steps the sweep's runs took (train/steps_run summed: what train.prune saves),
    over every invocation; NaN when a run has no train/steps_run (recorded before it existed)."""
    from harness.schema import STEPS_RUN

    try:
        vals = [v.get(STEPS_RUN, float("nan")) for v in values(ctx, returns, recorded).values()]
    except Exception:  # noqa: BLE001 - a summary: an unreadable store must not mask the sweep's outcome
        return float("nan")
    return float(sum(vals)) if vals else 0.0


def interrupted(ctx, counts, name: str) -> str:
    """The line of a sweep stopped by a signal (`name`): what it recorded and how to resume."""
    if ctx is None:
        return f"interrupted ({name}) before the sweep started: nothing was written"
    if counts is None:
        return f"sweep {ctx.sweep_id} interrupted ({name}); rerun the same command to resume it"
    done, n = counts
    return (f"sweep {ctx.sweep_id} interrupted ({name}): {done} of {n} runs recorded, parent run KILLED; "
            f"rerun the same command (or python -m harness.resume {ctx.sweep_id}) to train the other {n - done}")


def lost(ctx, counts, error) -> str:
    """The line of a sweep whose remote stack (Ray, submitit) lost its worker past its retries:
    the cause, what the other stacks recorded, the parent's state, how to resume."""
    line = f"error: {error}"
    if ctx is None or counts is None:
        return line
    done, n = counts
    return f"{line} ({done} of {n} runs recorded and kept, parent run FAILED; or python -m harness.resume {ctx.sweep_id})"


def failed(ctx, counts, close_error) -> str:
    """What the line of a store that failed (StoreError.line) adds: what was recorded, the
    parent's state (FAILED, or left RUNNING when the store refused that too), the rerun."""
    if ctx is None:
        return "; nothing was recorded"
    if counts is None:
        return f"; rerun the same command to resume sweep {ctx.sweep_id}"
    done, n = counts
    if close_error is None:
        parent = "parent run FAILED"
    elif getattr(close_error, "status_set", False):
        parent = f"parent run FAILED (its counts not recorded: {close_error.reason})"
    else:
        parent = f"parent run left RUNNING ({close_error.reason}; resume closes it)"
    return (f"; {done} of {n} runs recorded and kept, {parent}; once the store can be written, rerun the same "
            f"command (or python -m harness.resume {ctx.sweep_id}) to train the other {n - done}")
