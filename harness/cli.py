"""`python -m harness [overrides]`: one run; `python -m harness -m [sweep overrides]`: a sweep.

The work is `run_job(cfg)`; the Hydra entry point is a thin wrapper around it. Before Hydra
starts, the command line's config-group choices are checked against conf/, so a typo such as
`loss=nosuchloss` is one line naming the group, the value and the options, not a traceback.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from harness.errors import ConfigError
from harness.paths import CONF, group_dir


def group_options(group: str) -> list[str]:
    d = group_dir(group)
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def precheck(argv: list[str]) -> None:
    """Unknown config-group options on the command line -> ConfigError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [a for a in argv if "=" in a and not a.startswith("-") and not a.startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:
        return  # Hydra reports syntax errors itself
    for o in parsed:
        group = o.key_or_group
        if o.package is not None or not group_dir(group).is_dir() or o.is_delete():
            continue
        if o.is_sweep_override() and type(o.value()).__name__ == "IntervalSweep":
            continue   # a range on a group: the sweeper refuses it in one line (hydra_plugins/lossbench/search.py)
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        allowed = group_options(group) + (["auto"] if group == "loss" else [])   # loss=auto: the sweeper expands it
        for v in values:
            if v not in allowed:
                raise ConfigError(group, v, allowed)
    check_options(parsed, lines)


def check_options(parsed, lines: list[str]) -> None:
    """An option its group's one choice does not have (`loss=mse loss.delta=0.5`) -> ConfigError.
    Options of a swept group, or under a study (which may choose groups), are left to the
    sweeper (harness/conditional.py)."""
    from harness import conditional

    if any(o.key_or_group == "experiment" for o in parsed):
        return
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    fixed = [(o, line) for o, line in zip(parsed, lines) if not o.is_sweep_override()]
    job = [line for o, line in fixed if o.key_or_group.split(".")[0] not in swept]
    conditional.check([job], conditional.primary_choices())


def plain_config(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("hydra", None)
    return d  # type: ignore[return-value]


def task_overrides() -> tuple[str, ...]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return tuple(HydraConfig.get().overrides.task)
    except Exception:
        return ()


def run_job(cfg, overrides: tuple[str, ...] = ()) -> dict[str, float]:
    """One job: validate, train a stack of one, write it to MLflow (into the sweep it belongs
    to, harness/sweep.py). Returns its final metrics, status and run id."""
    from harness import store
    from harness.spec import build_spec

    try:
        spec = build_spec(cfg if isinstance(cfg, dict) else plain_config(cfg), overrides or task_overrides())
        store.check(spec.tracking["uri"])   # before training: a store that cannot take the run
        store.check_experiment(spec.tracking["uri"], spec.tracking["experiment"])
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)
    from harness import timing
    from harness.sweep import PARENT_ENV, SweepContext, run_stacks
    from harness.tracking.store import StoreError

    alone = not os.environ.get(PARENT_ENV)   # a job of a sweep: its sweeper says what failed
    try:
        with timing.phase("track"):
            ctx = SweepContext.for_job(spec)
    except StoreError as e:   # a store that cannot be opened (a full disk): one line, exit status 1
        if not alone:
            raise
        print(e.line("; nothing was trained"), file=sys.stderr)
        sys.exit(1)
    written, error = run_stacks([spec], ctx, stacks=[[0]])
    if error is not None:
        if isinstance(error, StoreError) and alone:
            print(error.line("; the run was trained but not recorded"), file=sys.stderr)
            sys.exit(1)
        raise error
    w = written[0]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in w.final.items() if k.startswith("test/"))
    print(f"[{w.status}] {spec.loss['name']} on {spec.dataset['name']}: {shown}  (run {w.run_id})")
    return w.value()


def main() -> None:
    if not CONF.is_dir():
        print(f"error: conf/ not found at {CONF}; install lossbench from its checkout with pip install -e .", file=sys.stderr)
        sys.exit(2)
    try:
        precheck(sys.argv[1:])
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)
    from harness.conditional import defer_options

    sys.argv[1:] = defer_options(sys.argv[1:])
    import hydra

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
    def _hydra_main(cfg):
        return run_job(cfg)

    _hydra_main()
