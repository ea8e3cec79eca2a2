"""Options that belong to one choice of a config group, in a sweep over several choices.

A sweep such as

    python -m harness -m loss=mse,mae,huber loss.delta=0.5,1,2

compares Huber at three deltas with the two losses that have no delta. An override `G.K=V` of a
group G (loss, dataset, model, optimizer) is an *option of the choices of G that have the key K*
(their conf/G/<choice>.yaml lists it): each job keeps it when its choice of G has K and drops it
otherwise, and jobs that become identical run once. So the grid above is 3 Huber jobs + 1 MSE +
1 MAE, not 9, and `loss=mse,huber loss.delta=0.5` gives one MSE job and one Huber job at 0.5.

An option that no job's choice has is left in place, and composing that job fails with the usual
one-line error (`loss.delta=0.5: loss=mse takes no options`). `+G.K=V` (adding a key) is never
dropped.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from harness.paths import CONF

GROUPS = ("loss", "dataset", "model", "optimizer")


@lru_cache(maxsize=None)
def option_keys(group: str, choice: str) -> frozenset[str] | None:
    """The top-level keys of conf/<group>/<choice>.yaml and those every option of the group
    shares (conf/config.yaml's section of the group's name); None: no such file."""
    from harness.component import group_defaults, section_defaults

    if not (CONF / group / f"{choice}.yaml").is_file():
        return None
    return frozenset({"name", *group_defaults(group, choice), *section_defaults(group)})


def split(line: str) -> tuple[str, str, str]:
    """'loss.delta=0.5' -> ('', 'loss.delta', '0.5'); the prefix is '+', '++', '~' or ''."""
    key, _, value = line.partition("=")
    prefix = key[: len(key) - len(key.lstrip("+~"))]
    return prefix, key[len(prefix):], value


def group_option(line: str) -> tuple[str, str] | None:
    """(group, key) when `line` sets an option of a group's choice (no +, ~ or @package)."""
    prefix, key, _ = split(line)
    group, dot, rest = key.partition(".")
    if prefix or not dot or "@" in key or group not in GROUPS or not rest:
        return None
    return group, rest.split(".")[0]


def choices(job: Sequence[str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The job's choice of each group: its own `G=V` override, else the primary config's."""
    out = {g: str(defaults[g]) for g in GROUPS if defaults.get(g) is not None}
    for line in job:
        prefix, key, value = split(line)
        if key in GROUPS and prefix in ("", "+", "++"):
            out[key] = value
    return out


def applies(line: str, chosen: Mapping[str, str]) -> bool:
    """False when `line` is an option its group's chosen config does not have."""
    opt = group_option(line)
    if opt is None:
        return True
    group, key = opt
    keys = option_keys(group, chosen.get(group, ""))
    return keys is None or key in keys


def prune(jobs: Iterable[Sequence[str]], defaults: Mapping[str, str]) -> list[list[str]]:
    """Each job without the options its choices do not have; duplicates dropped, order kept.

    An option that applies to no job at all is kept everywhere, for composition to refuse."""
    jobs = [list(j) for j in jobs]
    chosen = [choices(j, defaults) for j in jobs]
    used = {line for j, c in zip(jobs, chosen) for line in j if group_option(line) and applies(line, c)}
    useful = {group_option(line) for line in used}
    out, seen = [], set()
    for j, c in zip(jobs, chosen):
        kept = [line for line in j if applies(line, c) or group_option(line) not in useful]
        if tuple(kept) not in seen:
            seen.add(tuple(kept))
            out.append(kept)
    return out


def check(jobs: Iterable[Sequence[str]], defaults: Mapping[str, str]) -> None:
    """ConfigError for the first option that a job's choice of its group does not have."""
    from harness.errors import ConfigError

    for job in jobs:
        chosen = choices(job, defaults)
        for line in job:
            if not applies(line, chosen):
                group, key = group_option(line)  # type: ignore[misc]
                choice = chosen[group]
                keys = sorted(k for k in option_keys(group, choice) or () if k != "name")
                has = f"takes {', '.join(keys)}" if keys else "takes no options"
                raise ConfigError(split(line)[1], split(line)[2], f"{group}={choice} {has}")


def primary_choices() -> dict[str, str]:
    """The group choices of conf/config.yaml's defaults list."""
    from omegaconf import OmegaConf

    out = {}
    for entry in OmegaConf.load(CONF / "config.yaml").get("defaults", []):
        if hasattr(entry, "items"):
            out.update({str(k): str(v) for k, v in entry.items() if str(k) in GROUPS})
    return out


def defer_options(argv: list[str]) -> list[str]:
    """For a sweep (`-m`) over several choices of a group (or a study, which may choose them):
    a single-valued option of that group, `loss.delta=0.5`, becomes `loss.delta=choice(0.5)`, so
    Hydra applies it per job (where `prune` can drop it) rather than to the primary config,
    whose default choice may not have it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not any(a in ("-m", "--multirun") for a in argv):
        return argv
    at = [i for i, a in enumerate(argv) if "=" in a and not a.startswith("-")]
    try:
        parsed = dict(zip(at, OverridesParser.create().parse_overrides([argv[i] for i in at])))
    except Exception:
        return argv  # Hydra reports syntax errors itself
    swept = {o.key_or_group for o in parsed.values() if o.key_or_group in GROUPS and o.is_sweep_override()}
    study = any(o.key_or_group == "experiment" for o in parsed.values())
    out = list(argv)
    for i, o in parsed.items():
        opt = group_option(argv[i])
        key, _, value = argv[i].partition("=")
        if opt and (opt[0] in swept or study) and value and not o.is_sweep_override():
            out[i] = f"{key}=choice({value})"
    return out
