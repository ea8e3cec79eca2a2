"""The catalogue of bad input, through the command line as a user types it.

Every case runs `python -m harness ...` in a folder of its own (all cases side by side, one
intra-op thread each) and must end with exit status 2, stdout empty and stderr exactly one
line, `error: <key>=...`, naming the key (and, where the case says, why): no traceback, nothing
trained, nothing written to MLflow (the case's SQLite store is never created). The same
contract, checked in-process on the spec for more values: tests/test_errors.py
(test_bad_values_name_key_value_and_allowed, test_file_data_errors).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness.errors import ConfigError


def _free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DOWN = _free_port()


@dataclass
class Case:
    args: list[str]
    key: str
    says: str = ""                                    # a part of the error line's reason
    files: Callable[[Path], None] = lambda d: None    # writes the case's input files into its folder
    own_store: bool = False                           # the case sets tracking.uri itself
    absent: tuple[str, ...] = ()                      # paths (in its folder) that must not be created


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text(text)


def _object_npz(d: Path) -> None:
    np.savez(d / "obj.npz", X=np.array([{"a": 1}], dtype=object), y=np.array([1.0]))


FILE = ["dataset=file", "dataset.target=y"]
CASES: dict[str, Case] = {
    # bring-your-own data (harness/data/files.py)
    "empty_csv": Case([*FILE, "dataset.path=empty.csv"], "dataset.path", "the file is empty", _write("empty.csv", "")),
    "header_only_csv": Case([*FILE, "dataset.path=h.csv"], "dataset.path", "it has none", _write("h.csv", "a,y\n")),
    "one_row_csv": Case([*FILE, "dataset.path=one.csv"], "dataset.path", "at least 2 data rows", _write("one.csv", "a,y\n1,2\n")),
    "directory_as_path": Case([*FILE, "dataset.path=data.csv"], "dataset.path", "directory", lambda d: (d / "data.csv").mkdir()),
    "missing_file": Case([*FILE, "dataset.path=/no/such/file.csv"], "dataset.path", "not found"),
    "binary_as_csv": Case([*FILE, "dataset.path=b.csv"], "dataset.path", "cannot be read",
                          lambda d: (d / "b.csv").write_bytes(bytes(range(256)) * 4)),
    "object_npz": Case(["dataset=file", "dataset.path=obj.npz"], "dataset.path", "dtype=object", _object_npz),
    "not_an_npz": Case(["dataset=file", "dataset.path=x.npz"], "dataset.path", "not a zip", _write("x.npz", "hello")),
    # a custom loss (harness/losses/custom.py): refused without calling it, or on one probe call
    "loss_os_system": Case(["loss=custom", "loss._target_=os.system"], "loss._target_", "builtin"),
    "loss_print": Case(["loss=custom", "loss._target_=builtins.print"], "loss._target_", "builtin"),
    "loss_stdlib": Case(["loss=custom", "loss._target_=logging.warning"], "loss._target_", "standard library"),
    "loss_reduced": Case(["loss=custom", "loss._target_=torch.nn.functional.l1_loss"], "loss._target_", "shape []"),
    "loss_missing": Case(["loss=custom", "loss._target_=nosuch.fn"], "loss._target_", "ModuleNotFoundError"),
    "loss_unknown": Case(["loss=nosuchloss"], "loss"),
    "loss_unknown_in_grid": Case(["-m", "loss=mse,nosuch"], "loss"),
    # numbers
    "lr_negative": Case(["optimizer.lr=-1"], "optimizer.lr", "> 0"),
    "lr_negative_in_grid": Case(["-m", "loss=mse,huber", "optimizer.lr=0.1,-1"], "optimizer.lr"),
    "lr_huge": Case(["optimizer.lr=1e308"], "optimizer.lr", "<= 1e+06"),
    "lr_huge_in_edge_units": Case(["optimizer.lr=1e7", "optimizer.lr_unit=edge"], "optimizer.lr", "lr_unit=edge"),
    "outlier_ratio": Case(["outliers.ratio=0.9"], "outliers.ratio"),
    # the catalogue's data sets: bad options and mismatches (moved here from test_catalogue.py)
    "blobs_one_class": Case(["dataset=blobs", "dataset.n_classes=1", "loss=cross_entropy"], "dataset.n_classes"),
    "mixture_weight": Case(["-m", "dataset=mixture", "model=gaussian", "loss=kl", "dataset.weight=0.5,1.0"], "dataset.weight"),
    "soft_temperature": Case(["dataset=soft_targets", "loss=kl", "dataset.temperature=0"], "dataset.temperature"),
    "classification_d": Case(["-m", "dataset=classification", "loss=bce,hinge", "dataset.d=4"], "dataset.d"),
    "bce_on_digits": Case(["-m", "dataset=digits", "loss=cross_entropy,bce"], "loss"),
    "kl_density_linear": Case(["dataset=mixture", "loss=kl"], "model"),
    # the tracking store (harness/store.py), checked before any training; train.steps=20000
    # would take minutes, so a check after the training fails the time limit of _wait
    "scheme_unknown": Case(["tracking.uri=nonsense://x"], "tracking.uri", "'nonsense'", own_store=True),
    "sqlite_no_folder": Case(["tracking.uri=sqlite:///{dir}/nodir/sub/x.db", "train.steps=20000"], "tracking.uri",
                             "{dir}/nodir/sub does not exist", own_store=True, absent=("nodir",)),
    "sqlite_no_folder_sweep": Case(["-m", "loss=mse,mae", "tracking.uri=sqlite:///{dir}/nodir/x.db"], "tracking.uri",
                                   "{dir}/nodir does not exist", own_store=True, absent=("nodir",)),
    "sqlite_not_a_database": Case(["tracking.uri=sqlite:///notes.db"], "tracking.uri", "not an SQLite database",
                                  _write("notes.db", "my notes\n"), own_store=True),
    "server_down": Case(["tracking.uri=http://127.0.0.1:{down}", "train.steps=20000"], "tracking.uri",
                        "no tracking server answers", own_store=True),
    "server_down_sweep": Case(["-m", "loss=mse,mae", "tracking.uri=http://127.0.0.1:{down}"], "tracking.uri",
                              "no tracking server answers", own_store=True),
    "server_hangs": Case(["tracking.uri=http://127.0.0.1:{hung}", "train.steps=20000"], "tracking.uri", "within 3 s",
                         own_store=True),
    "database_down": Case(["tracking.uri=postgresql://u:p@127.0.0.1:{down}/db"], "tracking.uri", "no connection",
                          own_store=True),
    "file_store": Case(["tracking.uri=file:{dir}/fs"], "tracking.uri", "MLFLOW_ALLOW_FILE_STORE", own_store=True,
                       absent=("fs",)),
}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1", "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    for k in ("HYDRA_FULL_ERROR", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    return env


def _fill(text: str, d: Path, ports: dict[str, int]) -> str:
    return text.format(dir=d, **ports)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, request):
    """{case: (returncode, stdout, stderr, what its error must say, its folder)}: every case run
    side by side (the cases this session selected, `-k` say). A server that takes connections
    and never answers (a listening socket nobody accepts on) stands in for a hung one."""
    root = tmp_path_factory.mktemp("bad")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    ports = {"down": DOWN, "hung": hung.getsockname()[1]}
    procs = {}
    try:
        chosen = {it.callspec.params["name"] for it in request.session.items
                  if it.originalname == "test_bad_input_is_one_line_exit_2_and_nothing_written"}
        for name, case in CASES.items():
            if name not in chosen:
                continue
            d = root / name
            d.mkdir()
            case.files(d)
            args = [_fill(a, d, ports) for a in case.args]
            if not case.own_store:
                args.append(f"tracking.uri=sqlite:///{d}/m.db")
            args += ["tracking.experiment=bad", f"hydra.run.dir={d}/out", f"hydra.sweep.dir={d}/ms"]
            procs[name] = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=d, env=_env(), text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = {}
        for name, p in procs.items():
            stdout, stderr = p.communicate(timeout=300)
            out[name] = (p.returncode, stdout, stderr, _fill(CASES[name].says, root / name, ports), root / name)
        return out
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        hung.close()


@pytest.mark.slow   # ~35 processes of ~2 s CPU each (most of it importing torch): ~45 s on 2 cores
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_written(outcomes, name):
    case = CASES[name]
    rc, stdout, stderr, says, d = outcomes[name]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2, (name, rc, stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith(f"error: {case.key}="), (name, stderr[-3000:])
    assert says in lines[0], (name, lines[0])
    assert stdout.strip() == "", (name, stdout[-2000:])          # nothing trained, nothing printed
    assert "tensor(" not in stdout + stderr                       # a refused function was never called
    assert not (d / "m.db").exists() and not (d / "mlruns").exists(), name   # MLflow never opened
    for p in case.absent:
        assert not (d / p).exists(), (name, p)


def test_an_unreachable_server_is_refused_within_seconds():
    """Connection refused: at once; a server that takes the connection and never answers: after
    the probe's timeout (3 s), not after MLflow's retries (minutes)."""
    from harness import store

    t = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        store.check(f"http://127.0.0.1:{DOWN}")
    assert time.perf_counter() - t < 2 and e.value.key == "tracking.uri"
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)
        t = time.perf_counter()
        with pytest.raises(ConfigError, match="within 3 s"):
            store.check(f"http://127.0.0.1:{hung.getsockname()[1]}")
        assert 2.5 < time.perf_counter() - t < 5


def test_stores_that_can_take_runs_pass(tmp_path):
    """The check refuses only what cannot work: a new SQLite file in an existing folder, an
    existing store, an in-memory one, a scheme with a driver suffix whose database is up."""
    from harness import store

    store.check(f"sqlite:///{tmp_path}/new.db")
    assert not (tmp_path / "new.db").exists()                     # checking creates nothing
    import sqlite3

    sqlite3.connect(tmp_path / "old.db").execute("create table t (x)").connection.close()
    store.check(f"sqlite:///{tmp_path}/old.db")
    store.check("sqlite:///:memory:")
    with socket.socket() as db:
        db.bind(("127.0.0.1", 0))
        db.listen(1)
        store.check(f"postgresql+psycopg2://u:p@127.0.0.1:{db.getsockname()[1]}/x")
    assert store.scheme_of("C:\\runs") == "" and store.scheme_of("databricks") == "databricks"


# A real `mlflow server` that is up passes the check: tests/test_sweep.py::
# test_sweep_into_a_real_mlflow_server sweeps into one (basic and batched launchers).
