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
