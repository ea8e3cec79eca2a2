"""A real PostgreSQL server for the tests: the one `.ci/run` started (LOSSBENCH_TEST_POSTGRES, a
server URI without a database), or else a throwaway cluster started here from the installed
binaries (Debian's postgresql package: /usr/lib/postgresql/<version>/bin), on a free loopback
port, with trust authentication, removed at the end. As root (CI here) the server runs as the
`postgres` user, since PostgreSQL refuses to run as root."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager

ENV = "LOSSBENCH_TEST_POSTGRES"


def binaries() -> str | None:
    """The folder of initdb and pg_ctl (the newest installed version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def cluster():
    """Yields a server URI (postgresql://lossbench@127.0.0.1:PORT) of a cluster started here."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql): .ci/run installs it")
    root = tempfile.mkdtemp(prefix="lossbench-pg-")
    data, sock = os.path.join(root, "data"), os.path.join(root, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres"), shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(_as_owner([f"{bin_dir}/initdb", "-D", data, "-U", "lossbench", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(_as_owner([f"{bin_dir}/pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://lossbench@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_owner([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: str) -> str:
    """A new empty database on the server; returns its URI."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"
