"""What a sweep holds, for the sweeper: the final values of its jobs and its counts, over every
invocation of a resumed sweep."""
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
    in the store (one per config hash), or, when the store cannot be read, what is known here."""
    from harness import schema as S
    from harness.tracking import children

    try:
        kids = {c.config_hash: c for c in children.children(ctx.tracker, ctx.parent) if c.status == "FINISHED"}
        return (len(kids), sum(c.outcome == S.DIVERGED for c in kids.values()),
                sum(c.outcome == S.PRUNED for c in kids.values()))
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
