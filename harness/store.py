"""Is the tracking store there? Checked once, before any work: before a sweep opens its parent
run (hydra_plugins/lossbench/sweeper.py) and before a single run trains (harness/cli.py), so a
store that cannot take the runs is one line and exit status 2, not a crash after the training,
nor minutes of MLflow's client retrying a server that is down.

`check(uri)` raises ConfigError("tracking.uri", uri, what is allowed) when

    the scheme         is none that MLflow opens (sqlite, postgresql, mysql, mssql, http, https,
                       file or a plain folder, databricks, uc, or a plugin's entry point)
    sqlite:///FILE     its folder does not exist or is not writable (MLflow would create the
                       folders, anywhere, even at the filesystem root), FILE is a folder, or FILE
                       exists and is not an SQLite database
    http(s)://HOST     nothing answers one GET of HOST/health within TIMEOUT seconds (no retries),
                       or it answers 404 (not an MLflow server) or 5xx (a proxy whose MLflow is
                       down). Any other answer, 401 included, counts as there: the MLflow client
                       brings its credentials
    postgresql://...   (mysql, mssql) no TCP connection to the database's host and port within TIMEOUT
    file:///FOLDER     (or a folder path) MLflow refuses its file store (MLflow 3, unless
                       MLFLOW_ALLOW_FILE_STORE=true), or neither the folder nor the one it would
                       be made in is writable

Only the standard library is used, but for the file store: importing MLflow costs ~1.4 s, more
than the checks (an SQLite check takes well under 1 ms).
"""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache

from harness.errors import ConfigError

KEY = "tracking.uri"
TIMEOUT = 3.0   # seconds, for one probe of a server
SQL_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
KNOWN = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "", "databricks", "databricks-uc", "uc")
ALLOWED = ("an MLflow tracking URI: sqlite:///FILE.db, postgresql://HOST/DB (mysql, mssql), "
           "http(s)://HOST:PORT of a tracking server, or file:///FOLDER")


def scheme_of(uri: str) -> str:
    """MLflow's reading of the scheme: a database driver suffix dropped (postgresql+psycopg2),
    a Windows drive letter taken for a path."""
    if uri in ("databricks", "databricks-uc", "uc"):
        return uri
    s = urllib.parse.urlparse(uri).scheme.lower()
    if len(s) == 1 and s.isalpha():
        return ""
    return s.split("+", 1)[0]


@lru_cache(maxsize=None)
def check(uri: str) -> None:
    """ConfigError when the store at `uri` cannot take runs (module docstring); once per process
    and URI (the jobs of an in-process launcher share the answer)."""
    scheme = scheme_of(uri)
    if scheme not in KNOWN and not _plugin(scheme):
        raise ConfigError(KEY, uri, f"{ALLOWED} (MLflow has no store for scheme {scheme!r})")
    if scheme == "sqlite":
        _sqlite(uri)
    elif scheme in ("http", "https"):
        _server(uri)
    elif scheme in SQL_PORTS:
        _database(uri, scheme)
    elif scheme in ("", "file"):
        _folder(uri, scheme)


def _plugin(scheme: str) -> bool:
    """Whether an installed package registers an MLflow tracking store for `scheme` (the entry
    points MLflow's store registry loads), read without importing MLflow."""
    from importlib.metadata import entry_points

    return any(ep.name == scheme for ep in entry_points(group="mlflow.tracking_store"))


def _sqlite(uri: str) -> None:
    path = uri.split("?", 1)[0][len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if path in ("", ":memory:"):
        return   # an in-memory database: nothing on disk to check
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ConfigError(KEY, uri, f"an SQLite file in an existing folder: {folder} does not exist (create it first)")
    if os.path.isdir(path):
        raise ConfigError(KEY, uri, f"an SQLite file: {path} is a folder")
    if os.path.exists(path):
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(KEY, uri, f"an SQLite file you can write: {path} is not writable")
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise ConfigError(KEY, uri, f"an SQLite file: {path} exists and is not an SQLite database")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(KEY, uri, f"an SQLite file in a folder you can write: {folder} is not writable")


def _server(uri: str) -> None:
    url = uri.split("?", 1)[0].rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=TIMEOUT):
            return
    except urllib.error.HTTPError as e:   # it answered
        if e.code < 500 and e.code != 404:
            return
        why = f"GET {url} answered HTTP {e.code}" + (" (an MLflow server has /health: this is not one)" if e.code == 404 else "")
    except urllib.error.URLError as e:
        if "SSL" in type(e.reason).__name__ or "certificate" in str(e.reason).lower():
            return   # it answered; TLS settings are the MLflow client's (MLFLOW_TRACKING_INSECURE_TLS, ...)
        why = f"no tracking server answers at {uri} ({_reason(e.reason)})"
    except (OSError, ValueError) as e:   # a timeout while reading, a malformed URL
        why = f"no tracking server answers at {uri} ({_reason(e)})"
    raise ConfigError(KEY, uri, f"a tracking server that is up: {why}; start it (mlflow server ...) or use sqlite:///mlflow.db")


def _database(uri: str, scheme: str) -> None:
    try:
        p = urllib.parse.urlparse(uri)
        host, port = p.hostname, p.port or SQL_PORTS[scheme]
    except ValueError as e:
        raise ConfigError(KEY, uri, f"{ALLOWED} ({_reason(e)})") from None
    if not host:
        return   # a local socket, named in the query: left to the driver
    try:
        socket.create_connection((host, port), timeout=TIMEOUT).close()
    except OSError as e:
        raise ConfigError(KEY, uri, f"a {scheme} database that is up: no connection to {host}:{port} "
                                    f"({_reason(e)})") from None


def _folder(uri: str, scheme: str) -> None:
    hint = f" (an SQLite file is sqlite:///{uri})" if uri.endswith(".db") else ""
    if not _file_store_allowed():
        raise ConfigError(KEY, uri, "an SQLite, SQL database or server URI: this MLflow opens its file store (a folder) "
                                    f"only with MLFLOW_ALLOW_FILE_STORE=true{hint}")
    path = urllib.request.url2pathname(urllib.parse.urlparse(uri).path) if scheme == "file" else uri
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConfigError(KEY, uri, f"a folder for MLflow's file store: {path} is a file{hint}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(KEY, uri, f"a folder you can write: {path} is not writable")
        return
    parent = os.path.dirname(path)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(KEY, uri, f"a folder MLflow can create: {parent} does not exist or is not writable")


def check_experiment(uri: str, experiment: str) -> None:
    """ConfigError when `uri` is a database and its `experiment` keeps artifacts on a tracking
    server (artifact location mlflow-artifacts:/..., as `mlflow server --artifacts-destination`
    makes them): only that server can store them, so the runs go through its http URI. A new
    store or experiment passes (its runs get the database's default artifact location)."""
    if scheme_of(uri) not in ("sqlite", *SQL_PORTS):
        return
    location = _artifact_location(uri, experiment)
    if location and location.startswith("mlflow-artifacts:"):
        raise ConfigError(KEY, uri, f"the tracking server's URI (http://HOST:PORT): experiment {experiment!r} keeps its "
                                    f"artifacts on a tracking server ({location}), which only that server writes")


def _artifact_location(uri: str, experiment: str) -> str | None:
    """The experiment's artifact location read from the store's own table, or None (no such
    store, table or experiment yet)."""
    try:
        if scheme_of(uri) == "sqlite":
            import sqlite3

            path = uri.split("?", 1)[0][len("sqlite:///"):]
            if not path or path == ":memory:" or not os.path.exists(path):
                return None
            con = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True, timeout=10)
            try:
                row = con.execute("select artifact_location from experiments where name = ?", (experiment,)).fetchone()
            finally:
                con.close()
        else:
            import sqlalchemy as sa

            engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
            try:
                with engine.connect() as con:
                    row = con.execute(sa.text("select artifact_location from experiments where name = :n"),
                                      {"n": experiment}).fetchone()
            finally:
                engine.dispose()
    except Exception:   # no table yet, or a database we cannot read: MLflow's own errors say more
        return None
    return row[0] if row else None


def _file_store_allowed() -> bool:
    """MLflow 3 keeps its file store in maintenance mode and refuses it unless
    MLFLOW_ALLOW_FILE_STORE is true (asked of MLflow, ~1.4 s, for this rare store only)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import environment_variables as env

    allow = getattr(env, "MLFLOW_ALLOW_FILE_STORE", None)
    return allow is None or bool(allow.get())


def _reason(e) -> str:
    if isinstance(e, TimeoutError):   # socket.timeout too
        return f"no answer within {TIMEOUT:g} s"
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())   # one line
