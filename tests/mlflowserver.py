"""A real `mlflow server` for the tests, on a free loopback port, telemetry off."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class Server:
    """`mlflow server` on 127.0.0.1:port, its store (an SQLite file in `folder`, or `backend`) and
    artifacts in `folder`; restartable. app: `--app-name` (lossbench: the stack endpoint of
    harness/tracking/server_app.py)."""

    def __init__(self, folder: Path, backend: str | None = None, workers: int = 1, app: str | None = None):
        self.folder, self.workers, self.app = folder, workers, app
        self.backend = backend or f"sqlite:///{folder}/server.db"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> "Server":
        cmd = [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers),
               "--backend-store-uri", self.backend,
               "--artifacts-destination", str(self.folder / "artifacts")] + (["--app-name", self.app] if self.app else [])
        log = open(self.folder / "server.log", "a")
        self.proc = subprocess.Popen(cmd, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.uri}/health", timeout=2).status == 200:
                    return self
            except OSError:
                time.sleep(0.5)
            assert self.proc.poll() is None, (self.folder / "server.log").read_text()[-3000:]
        raise AssertionError("mlflow server did not answer /health within 180 s")

    def requests(self, path: str) -> int:
        """How many requests of `path` the server's log shows (uvicorn's access lines)."""
        log = (self.folder / "server.log").read_text()
        return sum(f' {path} HTTP/1.1"' in line or f' {path}?' in line for line in log.splitlines())

    def kill(self) -> None:
        """SIGKILL to the server's process group (its workers and job runners with it)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
