"""Which loss for my data? The advise study on constructed data whose answer is known, through
the command line as a user runs it, and the facts it explains its answer with."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import spec

CASES = {   # data -> the losses allowed as the answer
    "clean": (["dataset=linear"], {"mse", "log_cosh", "huber"}, "mse"),                  # Gaussian noise: MSE or tied with it
    "shifted": (["dataset=linear", "outliers.ratio=0.2"], {"mae", "quantile", "huber", "log_cosh"}, None),
    "noisy_labels": (["dataset=digits", "outliers.ratio=0.3"], {"gce", "mae_prob"}, None),   # 30% symmetric noise
}


@pytest.fixture(scope="module")
def advised(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("advise")
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    procs = {}
    for name, (args, _, _) in CASES.items():
        cwd = tmp / name
        cwd.mkdir()
        procs[name] = (cwd, subprocess.Popen([sys.executable, "-m", "harness", "-m", "+experiment=advise", *args,
                                              f"tracking.uri=sqlite:///{cwd}/m.db", f"hydra.sweep.dir={cwd}/ms"],
                                             cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    out = {}
    for name, (cwd, p) in procs.items():
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
        out[name] = next((cwd / "reports" / "advise").iterdir()) / "report.md"
    return out


def _answer(md: Path) -> tuple[str, set[str]]:
    import re

    line = next(ln for ln in md.read_text().splitlines() if ln.startswith("**Use "))
    best = re.match(r"\*\*Use ([\w ()=.,]+?):", line).group(1)
    tied = set(re.findall(r"includes 0\): ([\w, ]+)\.", line)[0].split(", ")) if "includes 0)" in line else set()
    return best, tied


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_advise_answers_what_the_data_say(advised, case):
    best, tied = _answer(advised[case])
    _, allowed, must = CASES[case]
    assert best in allowed, (case, best, tied)
    if must:
        assert must == best or must in tied, (case, best, tied)
    if case == "shifted":
        assert "mse" not in tied            # MSE is clearly worse, not tied
    md = advised[case].read_text()
    assert md.index("## Answer") < md.index("## Question")      # the report opens with the answer
    assert "Why, from the data:" in md


def test_the_facts_that_explain_an_answer():
    from harness.engine import train

    def facts(*o):
        (r,) = train([spec(*o, "train.steps=1", "train.facts=true")])
        return {k: v for k, v in r.final.items() if k.startswith("data/") and k != "data/lr_edge"}

    clean, dirty = facts("dataset=linear"), facts("dataset=linear", "outliers.ratio=0.2")
    assert clean["data/outlier_share"] < 0.01 and dirty["data/outlier_share"] == pytest.approx(0.2, abs=0.01)
    noisy = facts("dataset=breast_cancer", "loss=bce", "outliers.ratio=0.3")
    assert 0.25 < noisy["data/label_noise"] < 0.45 and 0.3 < noisy["data/minority_share"] < 0.5
    assert facts("dataset=breast_cancer", "loss=bce")["data/label_noise"] < 0.1


def test_loss_auto_is_every_loss_that_trains_a_predictor_for_the_task():
    from harness.losses import fitting

    assert fitting("regression") == ["huber", "log_cosh", "mae", "mse", "quantile"]
    assert fitting("binary") == ["bce", "focal", "hinge", "squared_hinge"]           # not the embedding losses
    assert fitting("density", "gaussian") == ["kl"] and fitting("density") == []
