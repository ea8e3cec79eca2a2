"""What the sweeper reads from its config and writes beside a sweep: the study a sweep's jobs
share, the config-group choices, the launcher's name, the MLflow UI command it prints and the
per-phase timings (timing.json) that `python -m harness.bench` reads."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict

from omegaconf import OmegaConf


def _study(config, specs) -> Dict[str, Any]:
    """The sweep's study: the one its jobs share, or for a study of parts (the tour) its own
    block with each part's study (question, claims, figures) in place of the part's name."""
    own = OmegaConf.to_container(config.study, resolve=True) if config.get("study") else None
    if not own or not own.get("parts"):
        return specs[0].study or {}
    by_name = {s.study["name"]: s.study for s in specs if isinstance(s.study, dict) and s.study.get("name")}
    own["parts"] = [{**by_name.get(p["name"], {}), **p} for p in own["parts"]]
    return own


def _ui_lines(uri: str, experiment_id: str, experiment: str) -> list[str]:
    """Where to look at the sweep's runs: a tracking server's own page of the experiment, or the
    command that opens this store in the MLflow UI (the mlflow installed beside this Python, so
    a virtualenv need not be activated, nor another mlflow first on PATH; on loopback, with
    MLflow's usage telemetry off: lossbench sends nothing unless asked) and that page. MLflow 3's
    UI picks its GenAI or model-training view from the URL parameter (else a browser-wide
    setting that starts at GenAI), whatever the experiment's kind tag says."""
    server = uri.startswith(("http://", "https://"))
    page = (f"{uri.rstrip('/') if server else 'http://127.0.0.1:5000'}/#/experiments/{experiment_id}"
            f"?workflowType=machine_learning (the runs of {experiment!r})")
    if server:
        return [f"runs and curves: open {page}"]
    beside = os.path.join(os.path.dirname(sys.executable), "mlflow")
    rel = os.path.relpath(beside)
    exe = (beside if rel.startswith("..") else rel) if os.path.exists(beside) else "mlflow"
    return [f"runs and curves: MLFLOW_DISABLE_TELEMETRY=true {exe} ui --host 127.0.0.1 --port 5000 --backend-store-uri {uri}",
            f"  then open {page}"]


def _choices(config) -> Dict[str, str]:
    """The primary config's config-group choices (the defaults a job's own overrides replace)."""
    try:
        return {str(k): str(v) for k, v in config.hydra.runtime.choices.items() if v is not None}
    except Exception:
        from harness.conditional import primary_choices

        return primary_choices()


def _launcher_name(config) -> str:
    try:
        return str(config.hydra.runtime.choices["hydra/launcher"])
    except Exception:
        return "?"


def _write_timing(sweep_dir: Path, n_runs: int) -> None:
    """Seconds per phase (compose, data, train, track, report) for `python -m harness.bench`."""
    import json

    from harness import timing

    try:
        (sweep_dir / "timing.json").write_text(json.dumps({"runs": n_runs, **timing.snapshot()}, indent=1))
    except OSError:
        pass
