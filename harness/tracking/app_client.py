"""The client side of `mlflow server --app-name lossbench` (server_app.py): whether a server
offers its endpoints (asked once per server), a stack written in a few POSTs (each one
transaction on the server, the runs keeping the records' own ids), and the read endpoints that
resume and the sweep's counts use. client.write_stack comes here when the server says yes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from harness import schema as S
from harness.tracking.client import StackFailed, log_curves, new_curves_path, remote

if TYPE_CHECKING:
    import pandas as pd

_stack_api: dict[str, bool] = {}                   # tracking uri: whether it takes stacks (server_app.py)
STACK_POINTS = 250_000                             # metric values in one POST of a stack (~10 MB of JSON)
STACK_TIMEOUT = 300                                # s for one POST (the server writes it in one transaction)


def stack_api(client) -> bool:
    """Whether the tracking server is `mlflow server --app-name lossbench` with a store its bulk
    writer takes (server_app.py; asked once per server with GET, no retries): then a stack is a
    few POSTs instead of five REST calls a run. A server that does not answer the question
    raises (the stack's write fails as any call would: it is spooled)."""
    from mlflow.utils.rest_utils import http_request

    from harness.tracking.server_app import ROUTE, VERSION

    uri = str(client.tracking_uri)
    if uri not in _stack_api and remote(client):
        r = http_request(client._tracking_client.store.get_host_creds(), ROUTE, "GET", max_retries=0,
                         backoff_factor=0, timeout=10, raise_on_status=False)
        if r.status_code >= 500:
            r.raise_for_status()
        try:
            answer = r.json() if r.status_code == 200 else {}
        except ValueError:   # a proxy's page, not ours
            answer = {}
        _stack_api[uri] = bool(answer.get("version") == VERSION and answer.get("bulk"))
    return _stack_api.get(uri, False)


def children(client, parent_id: str) -> list[list]:
    """GET children: [run_id, status, config hash, outcome, start] of the parent's active children."""
    from harness.tracking.server_app import CHILDREN

    return _read(client, CHILDREN, "GET", params={"parent": parent_id})["children"]


def final_metrics(client, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """POST final-metrics: {run id: {metric: its latest value}}."""
    import json

    from harness.tracking.server_app import FINALS

    return _read(client, FINALS, "POST", data=json.dumps({"run_ids": run_ids}),
                 extra_headers={"Content-Type": "application/json"})["metrics"]


def _read(client, route: str, method: str, **kwargs) -> dict[str, Any]:
    from mlflow.utils.rest_utils import http_request

    r = http_request(client._tracking_client.store.get_host_creds(), route, method, timeout=STACK_TIMEOUT,
                     raise_on_status=False, **kwargs)
    if r.status_code != 200:
        raise StackError(r.status_code, r.text)
    return r.json()


def post_stack(client, experiment_id: str, records: list[dict[str, Any]], parent_id: str,
                table: "pd.DataFrame | None", curves_path: str | None,
                extra_tags: Callable[[int], dict[str, str]] | None, done: dict[int, str] | None) -> list[str]:
    """write_stack through server_app's endpoint: the curve file first (on the parent), then the
    records in POSTs of at most STACK_POINTS values, each one transaction on the server, the runs
    keeping the records' own ids. A failure raises StackFailed with the runs of the POSTs that
    were committed (FINISHED)."""
    import gzip
    import json
    from dataclasses import asdict

    from mlflow.utils.rest_utils import http_request

    from harness.tracking.server_app import ROUTE

    ids: dict[int, str] = dict(done or {})
    todo = [i for i in range(len(records)) if i not in ids]
    ids.update({i: records[i]["run_id"] for i in todo})
    path = (curves_path or new_curves_path()) if table is not None else None
    created: dict[int, str] = {}
    try:
        if table is not None:   # the curves exist before any run that points to them
            by_id = {rec["run_id"]: ids[i] for i, rec in enumerate(records)}
            log_curves(client, parent_id, path, table.assign(run_id=table["run_id"].cat.rename_categories(by_id)))
        chunk: list[int] = []
        points = 0
        for n, i in enumerate(todo):
            chunk.append(i)
            points += len(records[i]["points"])
            if points < STACK_POINTS and n + 1 < len(todo):
                continue
            body = []
            for j in chunk:
                rec = records[j]
                tags = {**rec["tags"], **(extra_tags(j) if extra_tags else {})}
                if path:
                    tags[S.CURVES_TAG] = f"runs:/{parent_id}/{path}"
                body.append({"run_id": rec["run_id"], "name": rec["name"], "tags": tags, "params": rec["params"],
                             "points": rec["points"], "files": rec["files"], "start": rec["start"], "end": rec["end"],
                             "datasets": [[asdict(d), ctx] for d, ctx in rec["datasets"]]})
            data = gzip.compress(json.dumps({"experiment_id": str(experiment_id), "records": body}).encode(), 1)
            r = http_request(client._tracking_client.store.get_host_creds(), ROUTE, "POST", data=data,
                             extra_headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                             timeout=STACK_TIMEOUT, raise_on_status=False)
            if r.status_code != 200:
                try:
                    why = r.json().get("error", r.text)
                except ValueError:
                    why = r.text
                raise StackError(r.status_code, why)
            created.update({j: records[j]["run_id"] for j in chunk})
            chunk, points = [], 0
    except Exception as e:
        raise StackFailed(e, created) from e
    return [ids[i] for i in range(len(records))]


class StackError(Exception):
    """The stack endpoint's refusal (4xx: the data) or failure (5xx: the server or its store)."""

    def __init__(self, status: int, why: str):
        super().__init__(f"the tracking server answered {status}: {str(why)[:500]}")
        self.status = status
