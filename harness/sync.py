"""Uploads what sweeps kept in the spool while their tracking server was down.

    python -m harness.sync [--spool DIR]     # default: LOSSBENCH_SPOOL, else ./.lossbench-spool

Every spool file (harness/tracking/spool.py: one stack of runs, or a sweep's closing, with the
store, experiment and parent run it belongs to) is written to its store in the order it was
kept, one line per file, then a summary; a file is deleted only once its upload has committed.
Safe to rerun and to kill: runs a cut-short upload left are found by their lossbench.spool_id
tag (complete ones kept, the others deleted and written again), so no run is written twice.
Stops at the first store that cannot be reached (the rest stays for the next try); exit status
0 when the spool is empty at the end, 1 when files remain, 2 for a bad argument.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from harness.errors import ConfigError
    from harness.tracking import client as _client
    from harness.tracking import spool

    ap = argparse.ArgumentParser(prog="python -m harness.sync", description=__doc__.split("\n\n")[0])
    ap.add_argument("--spool", default=None, help="the spool folder (default: LOSSBENCH_SPOOL, else ./.lossbench-spool)")
    args = ap.parse_args(argv)
    folder = os.path.abspath(args.spool) if args.spool else spool.spool_dir()
    if args.spool and not os.path.isdir(folder):
        print(ConfigError("--spool", args.spool, "an existing spool folder").line(), file=sys.stderr)
        return 2
    paths = spool.files(folder)
    if not paths:
        print(f"nothing to upload: no spooled runs in {folder}")
        return 0
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    clients: dict[str, object] = {}
    down: set[str] = set()
    known: dict[str, dict[str, str]] = {}   # parent run: {config hash: FINISHED child}, across files
    written = kept = files_done = 0
    for path in paths:
        name = os.path.basename(path)
        try:
            p = spool.load(path)
        except Exception as e:   # noqa: BLE001 - one unreadable file does not stop the others
            print(f"{name}: unreadable ({type(e).__name__}: {e}); left in place")
            continue
        uri = p["uri"]
        if uri in down:
            print(f"{name}: skipped ({uri} is down)")
            continue
        if uri not in clients:
            c = MlflowClient(uri)
            if _client.remote(c):
                _client.bound_retries()
                _client.fresh_connections(uri)
            clients[uri] = c
        what = (f"{spool.runs_in(p)} runs of sweep {p.get('sweep')} (parent {p.get('parent')})" if p["kind"] == "stack"
                else f"{p['kind']} of run {p.get('parent') or p.get('run_id')}")
        try:
            n, already = spool.upload(clients[uri], p, known)
        except Exception as e:   # noqa: BLE001 - said, and the file stays for the next try
            if _client.transient(e):
                down.add(uri)
            print(f"{name}: {what} -> {uri}: not uploaded ({type(e).__name__}: {str(e)[:300]})")
            continue
        os.remove(path)
        files_done += 1
        written += n
        kept += already
        done = f"{n} written" + (f", {already} already there" if already else "") if p["kind"] == "stack" else "done"
        print(f"{name}: {what} -> {uri}: {done}")
    left = len(spool.files(folder))
    print(f"sync: {files_done} of {len(paths)} spool files uploaded ({written} runs written, {kept} already there); "
          + (f"{left} left in {folder}" if left else "the spool is empty"))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
