"""Resuming a sweep: `python -m harness.resume SWEEP_ID`, or rerun the sweep's command.

A sweep's parent run carries the key of its grid (a hash of the experiment and every job's config
hash, `lossbench.sweep_key`). Rerunning the same command finds the latest sweep of that key in the
experiment; when it did not finish (killed, failed, its process gone) the sweep continues in it:

1. its unfinished children (RUNNING, FAILED, KILLED: a kill between creating a run and finishing
   it) and any second run of a configuration are deleted (MLflow's soft delete);
2. only the jobs whose config hash has no FINISHED child are trained, into the same parent;
3. the parent goes back to RUNNING, and ends with the counts of the whole sweep.

A finished sweep is not resumed: the command then starts a new sweep (a rerun of an experiment).
`hydra.sweeper.resume` chooses: `auto` (the above), `never` (always a new sweep), or a sweep id /
parent run id (continue that sweep, even if another host's process may still run it).

`python -m harness.resume ID` reruns the command recorded on the sweep's parent (its arguments
and folder) with `hydra.sweeper.resume=ID`.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from typing import Any, Sequence

from harness import schema as S


def sweep_key(hashes: Sequence[str], experiment: str) -> str:
    """The grid's identity: the experiment and the set of its jobs' config hashes."""
    text = json.dumps([experiment, sorted(hashes)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" elsewhere: a pid is reused,
    a (pid, start) pair is not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner() -> str:
    """host:pid:start of this process, the value of the parent's lossbench.owner tag."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def alive(tag: str | None) -> bool | None:
    """Whether the process named by an owner tag still runs: True / False on this host, None
    (cannot tell) for another host's."""
    if not tag:
        return False
    host, _, rest = tag.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return _process_start(int(pid)) == start


def find(client, experiment_id: str, key: str, mode: str) -> Any | None:
    """The parent run to continue (an MLflow Run), or None for a new sweep. mode: auto | never |
    a sweep id or parent run id. First every sweep of the experiment left RUNNING by a process
    that is gone is closed (`close_orphans`): no parent stays RUNNING for ever."""
    close_orphans(client, experiment_id)
    if mode == "never":
        return None
    if mode != "auto":
        return by_id(client, experiment_id, mode)
    runs = client.search_runs([experiment_id], f"tags.`{S.SWEEP_KEY_TAG}` = '{key}' and tags.`{S.KIND_TAG}` = '{S.KIND_SWEEP}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs or runs[0].info.status == "FINISHED":
        return None
    run = runs[0]
    if run.info.status == "RUNNING":   # its process is alive, or on another host
        print(f"note: sweep {run.data.tags.get(S.SWEEP_TAG)} of this grid is still running "
              f"({run.data.tags.get(S.OWNER_TAG, '?')}); starting a new sweep (to continue that one instead: "
              f"hydra.sweeper.resume={run.info.run_id})", file=sys.stderr)
        return None
    return run


def close_orphans(client, experiment_id: str) -> None:
    """Sweeps RUNNING whose process is gone (on this host): one killed while its parent was being
    created (no grid key yet: it holds no runs) is deleted, any other marked KILLED."""
    from mlflow.entities import RunTag

    running = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`{S.KIND_TAG}` = '{S.KIND_SWEEP}'",
                                 max_results=1000)
    for run in running:
        owner_tag = run.data.tags.get(S.OWNER_TAG)
        if owner_tag is None or alive(owner_tag) is not False:   # alive, another host's, or a sweep before resume existed
            continue
        if S.SWEEP_KEY_TAG not in run.data.tags:
            client.delete_run(run.info.run_id)
        else:
            client.log_batch(run.info.run_id, tags=[RunTag(S.SWEEP_STATUS_TAG, "killed")])
            client.set_terminated(run.info.run_id, "KILLED")


def by_id(client, experiment_id: str, ident: str):
    """The parent run with this sweep id or run id; a ConfigError when there is none."""
    from harness.errors import ConfigError

    runs = client.search_runs([experiment_id], f"tags.`{S.SWEEP_TAG}` = '{ident}' and tags.`{S.KIND_TAG}` = '{S.KIND_SWEEP}'",
                              max_results=1)
    if runs:
        return runs[0]
    try:
        run = client.get_run(ident)
    except Exception:
        run = None
    if run is None or run.data.tags.get(S.KIND_TAG) != S.KIND_SWEEP or run.info.experiment_id != experiment_id:
        raise ConfigError("hydra.sweeper.resume", ident, "auto, never, or the id of a sweep (or its parent run) in this experiment")
    return run


def reopen(client, parent_id: str) -> None:
    """The parent back to RUNNING, owned by this process."""
    from mlflow.entities import RunTag

    client.log_batch(parent_id, tags=[RunTag(S.OWNER_TAG, owner()), RunTag(S.SWEEP_STATUS_TAG, "running")])
    client.update_run(parent_id, status="RUNNING")


def continue_sweep(tracker, key: str, mode: str, n_runs: int):
    """(sweep id, parent run id, {config hash: run id} recorded) of the sweep this command
    continues, its half-written runs deleted and its parent RUNNING again; None: a new sweep.
    A ConfigError when `mode` names a sweep that is not there or ran another grid."""
    from harness.errors import ConfigError
    from harness.tracking import children

    prior = find(tracker.client, tracker.experiment_id, key, mode)
    if prior is None:
        return None
    if prior.data.tags.get(S.SWEEP_KEY_TAG) != key:
        raise ConfigError("hydra.sweeper.resume", mode, "a sweep of this grid (that one ran another grid)")
    parent, sweep_id = prior.info.run_id, prior.data.tags.get(S.SWEEP_TAG, "")
    kept, dropped = children.tidy(tracker, parent)
    reopen(tracker.client, parent)
    recorded = {c.config_hash: c.run_id for c in kept}
    print(f"sweep {sweep_id} resumed (parent run {parent}, was {prior.info.status}): {len(recorded)} of {n_runs} "
          f"runs recorded" + (f", {dropped} unfinished or repeated runs deleted" if dropped else "")
          + f"; training the other {max(n_runs - len(recorded), 0)}", file=sys.stderr)
    return sweep_id, parent, recorded


def command_of(run) -> tuple[list[str], str]:
    """(arguments, folder) recorded on a parent run."""
    tags = run.data.tags
    if S.ARGV_TAG not in tags:
        raise SystemExit(f"error: sweep {tags.get(S.SWEEP_TAG, run.info.run_id)}: its parent records no command "
                         f"(a sweep started before resume existed): rerun its command ({tags.get(S.SOURCE_NAME_TAG, '?')})")
    return json.loads(tags[S.ARGV_TAG]), tags.get(S.CWD_TAG, os.getcwd())


def main(argv: list[str] | None = None) -> None:
    """python -m harness.resume SWEEP_ID [tracking.uri=URI] [tracking.experiment=NAME]: finds the
    sweep (in every experiment of the store unless one is named) and reruns its command."""
    from mlflow.tracking import MlflowClient

    argv = list(sys.argv[1:] if argv is None else argv)
    ids = [a for a in argv if "=" not in a]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = set(opts) - {"tracking.uri", "tracking.experiment"}
    if len(ids) != 1 or unknown:
        print("usage: python -m harness.resume SWEEP_ID [tracking.uri=sqlite:///mlflow.db] [tracking.experiment=NAME]",
              file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = opts.get("tracking.uri", "sqlite:///mlflow.db")
    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        print(f"error: tracking.uri={uri}: an existing MLflow store (no such file)", file=sys.stderr)
        sys.exit(2)
    client = MlflowClient(uri)
    names = [opts["tracking.experiment"]] if "tracking.experiment" in opts else None
    exps = [client.get_experiment_by_name(n) for n in names] if names else client.search_experiments()
    run = None
    for exp in [e for e in exps if e is not None]:
        try:
            run = by_id(client, exp.experiment_id, ids[0])
            break
        except Exception:
            continue
    if run is None:
        print(f"error: sweep={ids[0]}: the id of a sweep or its parent run in {uri}", file=sys.stderr)
        sys.exit(2)
    args, cwd = command_of(run)
    args = [a for a in args if not a.startswith("hydra.sweeper.resume=")] + [f"hydra.sweeper.resume={run.info.run_id}"]
    print(f"resuming sweep {run.data.tags.get(S.SWEEP_TAG)} in {cwd}: python -m harness {' '.join(args)}", file=sys.stderr)
    os.chdir(cwd)
    os.execv(sys.executable, [sys.executable, "-m", "harness", *args])


if __name__ == "__main__":
    main()
