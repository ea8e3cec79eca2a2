"""Shared test helpers: real configs composed by Hydra from conf/, temporary MLflow stores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]


def compose(*overrides: str) -> dict:
    """The resolved task config for these overrides, composed by Hydra from the repo's conf/."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=list(overrides))
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("hydra", None)
    return d


def spec(*overrides: str):
    from harness.spec import build_spec

    return build_spec(compose(*overrides), tuple(overrides))


def harness(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Runs `python -m harness ARGS` as a user would, in `cwd`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1"}
    p = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"harness {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite MLflow store URI in a temporary folder."""
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server URI (tests/pgserver.py): .ci/run's, or one started for the session."""
    import pgserver

    if os.environ.get(pgserver.ENV):
        yield os.environ[pgserver.ENV].rstrip("/")
        return
    with pgserver.cluster() as uri:
        yield uri


@pytest.fixture
def postgres_store(postgres_server):
    """A fresh, empty PostgreSQL database for one test, as an MLflow tracking URI."""
    import pgserver

    return pgserver.new_database(postgres_server)
