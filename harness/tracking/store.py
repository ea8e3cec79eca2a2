"""Opening a tracking store when any number of processes do it at the same instant.

MLflow creates a store's tables the first time a process opens it, with no guard against a
second process doing the same (two sweeps started together into a new SQLite file: one dies on
`_alembic_tmp_experiments already exists` or `duplicate column name`), and a process killed
while it runs the ~100 migrations leaves a store that is neither empty nor whole.

  SQLite      `prepare` builds a new store in a temporary file beside the target (every
              MLflow table at the latest schema revision, the default experiment, WAL mode)
              and publishes it with os.link, which fails when the target exists: the
              target is either absent or complete, whoever is killed when. The build runs
              under an exclusive flock on the folder, so one process builds while the others
              wait and then open its store; a build left by a killed process is removed by
              the next one (the lock proves its builder gone). A store that another program
              is creating in place (`mlflow server` on a new file) is waited for until whole.
  PostgreSQL  `creation_lock`: a session-level pg_advisory_lock held while MLflow opens the
              store (and creates its tables when missing); MySQL: GET_LOCK, the same.

And `retrying`: a write that collides with another process's (SQLite's `database is locked`,
a row inserted meanwhile, a deadlock) is tried again with backoff, a bounded number of times,
then fails as a StoreError; `guarded` turns any other failure of the store (a full disk) into
one. StoreError.line() is the user's one line: the store, the cause, the step that failed.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

_log = logging.getLogger(__name__)
BUILD_SUFFIX = ".creating-"
LOCK_KEY = 0x6C6F737362656E63   # "lossbenc": the advisory lock's id, the same in every process
FOREIGN_WAIT_S = 120.0           # how long a store another program is creating may take
FOREIGN_IDLE_S = 5.0             # ... and how long it may stay unchanged before we stop waiting


def sqlite_path(uri: str) -> str | None:
    """The file of an `sqlite:///` URI (relative to the working directory, as MLflow reads it),
    None for an in-memory database or another scheme."""
    path = uri[len("sqlite:///"):].split("?", 1)[0] if uri.startswith("sqlite:///") else None
    return None if not path or path == ":memory:" else path


def prepare(uri: str) -> None:
    """Makes an SQLite store whole before MLflow opens it: built and published when missing,
    waited for when another program is creating it. Other stores: nothing to do."""
    path = sqlite_path(uri)
    if path is None or _state(path) == "whole":
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with _folder_lock(folder) as locked:
        state = _state(path)
        if state == "missing":
            if locked:
                _remove_stale_builds(path)
            _build_and_publish(path)
        elif state == "partial":   # being created in place by a program that takes no lock
            _wait_whole(path)


@contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Held while MLflow opens a server database (and creates its tables when missing): at most
    one process at a time runs MLflow's migrations on it. SQLite (prepare) and other stores:
    no lock."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("postgresql", "mysql"):
        yield
        return
    import sqlalchemy
    from sqlalchemy import text

    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:
            if scheme == "mysql":
                con.execute(text("SELECT GET_LOCK('lossbench-create', 600)"))
            else:
                con.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            con.commit()
            try:
                yield
            finally:
                if scheme == "mysql":
                    con.execute(text("SELECT RELEASE_LOCK('lossbench-create')"))
                else:
                    con.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                con.commit()
    finally:
        engine.dispose()


def _state(path: str) -> str:
    """missing (no file), whole (MLflow's bookkeeping table holds the latest schema revision and
    every table of its models exists), or partial (empty, tables being created, or an older
    revision: waited for while it changes, then left to MLflow, which asks for `mlflow db
    upgrade`)."""
    if not os.path.exists(path):
        return "missing"
    try:
        con = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            rev = con.execute("SELECT version_num FROM alembic_version").fetchall() if "alembic_version" in tables else []
        finally:
            con.close()
    except sqlite3.DatabaseError:   # locked past the timeout, or not a database: MLflow says which
        return "whole"
    head, expected = _schema()
    return "whole" if [r[0] for r in rev] == [head] and expected <= tables else "partial"


@functools.lru_cache(maxsize=1)
def _schema() -> tuple[str, frozenset[str]]:
    """MLflow's latest schema revision and the tables of its models."""
    import mlflow.store.db.utils as db  # registers every MLflow model with Base.metadata
    from mlflow.store.db.base_sql_model import Base

    return db._get_latest_schema_revision(), frozenset(Base.metadata.tables)


@contextmanager
def _folder_lock(folder: str) -> Iterator[bool]:
    """An exclusive flock on the store's folder (no lock file left behind; released by the
    kernel when its holder dies). Yields whether it is held: a file system without flock gets
    no lock, and os.link alone keeps the store whole."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = True
        except OSError:
            held = False
        yield held
    finally:
        os.close(fd)   # releases the lock


def _remove_stale_builds(path: str) -> None:
    """Builds left by killed processes: every builder holds the folder lock, so under it no
    build is in progress."""
    folder, base = os.path.split(os.path.abspath(path))
    for name in os.listdir(folder):
        if name.startswith(base + BUILD_SUFFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass


def _build_and_publish(path: str) -> None:
    """MLflow's own store constructor on a temporary file (tables, migrations to the head
    revision, the default experiment), in WAL mode, checkpointed and synced, then linked to
    `path`. A kill before the link leaves only the temporary file; a link that finds `path`
    taken means another process published first, and its store is used."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store

    path = os.path.abspath(path)
    tmp = f"{path}{BUILD_SUFFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        con = sqlite3.connect(tmp)
        con.execute("PRAGMA journal_mode=WAL")   # persistent: the published store is WAL from the start
        con.close()
        tmp_uri = f"sqlite:///{tmp}"
        store = _get_sqlalchemy_store(tmp_uri, None)   # what MlflowClient builds, on the temporary file
        store.engine.dispose()
        SqlAlchemyStore._engine_map.pop(tmp_uri, None)
        con = sqlite3.connect(tmp)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # every page in the main file before it is linked
        con.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            _wait_whole(path)   # published by another process (or created in place by a program)
        except OSError as e:    # no hard links here: rename, under the folder lock
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV) or os.path.exists(path):
                raise
            os.rename(tmp, path)
        _sync_folder(os.path.dirname(path))
    finally:
        for p in (tmp, tmp + "-wal", tmp + "-shm"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def _wait_whole(path: str) -> None:
    """Waits while a store that another program creates in place is partial and still changing
    (at most FOREIGN_WAIT_S); past that MLflow opens it as it is and says what is wrong."""
    deadline, last, idle_since = time.monotonic() + FOREIGN_WAIT_S, None, time.monotonic()
    while _state(path) == "partial" and time.monotonic() < deadline:
        sig = tuple(_stat(p) for p in (path, path + "-wal", path + "-journal"))
        if sig != last:
            last, idle_since = sig, time.monotonic()
        elif time.monotonic() - idle_since > FOREIGN_IDLE_S:
            return
        time.sleep(0.2)


def _stat(p: str):
    try:
        st = os.stat(p)
        return st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return None


def _sync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # a file system that cannot sync a folder: the link is there, unsynced
        pass
    finally:
        os.close(fd)


# -- writes that conflict with another process's -----------------------------------------------
TRIES = 12
WITHIN_S = 150.0   # a stack waits at most this long for a store that stays locked
_TRANSIENT = ("locked", "busy", "deadlock", "could not serialize", "lock wait timeout", "connection",
              "server closed", "timeout", "timed out")


def transient(error: BaseException) -> bool:
    """Whether a later try can get past this error: a conflict with another process (SQLite's
    `database is locked`, PostgreSQL's deadlock or serialization failure, MySQL's lock wait), a
    lost connection, or an IntegrityError (a row another process inserted in the meantime),
    found anywhere in the chain of causes (MLflow wraps SQLAlchemy's errors in its own)."""
    import sqlalchemy.exc as sx

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sx.IntegrityError):
            return True
        if isinstance(e, sx.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sx.OperationalError) and any(w in str(e.orig).lower() for w in _TRANSIENT):
            return True
        e = e.__cause__ or e.__context__
    return False


def retrying(attempt, uri: str, what: str, done=None, tries: int | None = None, within_s: float | None = None,
             base_s: float = 0.05, cap_s: float = 2.0):
    """attempt() until it succeeds, retrying a transient error (above) with exponential backoff
    and jitter (0.05 s doubling to 2 s, x0.5-1.5: processes that collided do not collide again
    in step), at most `tries` times and not past `within_s` seconds from the first (each SQLite
    try already waits up to 20 s for a lock: MLflow's busy_timeout). done(), when given, is
    asked before each retry whether the failed try took effect after all (a commit whose answer
    was lost): then it is not repeated. The last error, or a non-transient one, is raised as a
    StoreError that names the store and the cause in one line, chained to the original; an
    error that is not the store's (storage_error) is raised as it is."""
    import random

    tries, within_s = tries or TRIES, WITHIN_S if within_s is None else within_s
    start = time.monotonic()
    for k in range(tries):
        try:
            with _quiet_mlflow():
                return attempt()
        except Exception as e:  # noqa: BLE001 - classified below
            if not storage_error(e):   # a bug, not the store: its traceback as it is
                raise
            pause = min(cap_s, base_s * 2 ** k) * random.uniform(0.5, 1.5)
            if not transient(e) or k == tries - 1 or time.monotonic() - start + pause > within_s:
                raise StoreError(uri, what, e, k + 1) from e
            _log.warning(f"{what} in {redact(uri)}: {_one_line(e)}; try {k + 2} in {pause:.2f} s")
            time.sleep(pause)
            if done is not None:
                try:
                    if done():
                        return None
                except Exception:  # noqa: BLE001 - the store still refuses: try again
                    pass


class _DropTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SQLAlchemy database error")


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's sessions log a traceback with every statement's parameters (a stack's dataset
    profiles) for each database error; a try that is retried says one line instead (above)."""
    logger, f = logging.getLogger("mlflow.store.db.utils"), _DropTraceback()
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)


def _one_line(e: BaseException) -> str:
    root = _driver_error(e)
    return f"{type(root).__name__}: " + " ".join(str(root).split())[:300]


class StoreError(RuntimeError):
    """A write that failed for good: `<what> in <store> failed after N tries: <cause>`."""

    def __init__(self, uri: str, what: str, cause: BaseException, tries: int):
        self.uri, self.what, self.cause, self.tries = redact(uri), what, cause, tries
        super().__init__(f"{what} in {self.uri} failed after {tries} {'try' if tries == 1 else 'tries'}: "
                         f"{_one_line(cause)}")

    def line(self, then: str = "") -> str:
        """The one line for the user: `error: tracking.uri=<store>: <cause> (<what> failed)<then>`
        (the cause as the driver or the OS says it: `database or disk is full`, `[Errno 28] No
        space left on device: '<file>'`)."""
        tries = "" if self.tries == 1 else f" after {self.tries} tries"
        return f"error: tracking.uri={self.uri}: {self.reason} ({self.what} failed{tries}){then}"

    @property
    def reason(self) -> str:
        return " ".join(str(_driver_error(self.cause)).split())[:300]


def storage_error(error: BaseException) -> bool:
    """Whether the store, not lossbench, failed: an OS error (a full disk, a read-only or
    vanished file system), a database driver's or SQLAlchemy's error, anywhere in the chain of
    causes (MLflow wraps them in MlflowException)."""
    import sqlalchemy.exc as sx

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (StoreError, OSError, sqlite3.Error, sx.SQLAlchemyError)):
            return True
        e = e.__cause__ or e.__context__
    return False


@contextmanager
def guarded(uri: str, what: str) -> Iterator[None]:
    """Inside: a storage error (above) becomes a StoreError naming the store, the step and the
    cause (a StoreError passes as it is); any other error (a bug) keeps its traceback."""
    try:
        with _quiet_mlflow():   # its traceback of the failed statement: the StoreError says it in a line
            yield
    except StoreError:
        raise
    except Exception as e:  # noqa: BLE001 - classified
        if storage_error(e):
            raise StoreError(uri, what, e, 1) from e
        raise


def _driver_error(error: BaseException) -> BaseException:
    """The database driver's own error in the chain (sqlite3's, psycopg's) or the OS's, else the
    error."""
    import sqlalchemy.exc as sx

    e: BaseException | None = error
    for _ in range(10):
        if e is None:
            break
        if isinstance(e, sx.DBAPIError) and e.orig is not None:
            return e.orig
        if isinstance(e, (OSError, sqlite3.Error)):
            return e
        e = e.__cause__ or e.__context__
    return error


def redact(uri: str) -> str:
    """The URI without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not an SQLAlchemy URL
        return uri
