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
    """(runs recorded, of them diverged) in the whole sweep: its FINISHED children in the store
    (one per config hash), or, when the store cannot be read, what is known here."""
    from harness import schema as S
    from harness.tracking import children

    try:
        kids = {c.config_hash: c for c in children.children(ctx.tracker, ctx.parent) if c.status == "FINISHED"}
        return len(kids), sum(c.outcome == S.DIVERGED for c in kids.values())
    except Exception:  # noqa: BLE001 - the counts are a summary; the runs are what matters
        done = [r for batch in returns for r in batch if r.status == JobStatus.COMPLETED]
        return len(done) + len(recorded), sum(1 for r in done if isinstance(r._return_value, dict)
                                              and r._return_value.get("status") == S.DIVERGED)


def interrupted(ctx, counts, name: str) -> str:
    """The line of a sweep stopped by a signal (`name`): what it recorded and how to resume."""
    if ctx is None:
        return f"interrupted ({name}) before the sweep started: nothing was written"
    if counts is None:
        return f"sweep {ctx.sweep_id} interrupted ({name}); rerun the same command to resume it"
    done, n = counts
    return (f"sweep {ctx.sweep_id} interrupted ({name}): {done} of {n} runs recorded, parent run KILLED; "
            f"rerun the same command (or python -m harness.resume {ctx.sweep_id}) to train the other {n - done}")


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
