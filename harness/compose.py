"""Per-job configs for a sweep without composing each job from scratch.

Hydra composes a job by building its defaults list, loading and merging every YAML file, then
applying the command-line values: ~45 ms a job, and its basic sweeper does it once more per job
to validate before launching. Only the *group* overrides (`loss=huber`, `+experiment=...`)
change which files are merged; *value* overrides (`optimizer.lr=0.1`) are applied afterwards.
So we compose once per distinct set of group choices, with Hydra's own loader, and apply each
job's value overrides to a copy. When the composed config holds no interpolation (lossbench's
own never do), the copy is a plain dict and an override `key=value` / `+key=value` /
`++key=value` / `~key` is applied as Hydra would (same parsed value, same errors for a missing
or duplicate key): ~20 us a job. Otherwise the copy is an OmegaConf config and Hydra's own
override code applies them (~5 ms a job). tests/test_compose.py checks both against Hydra.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from harness.errors import ConfigError


class FastComposer:
    def __init__(self, config_loader, master_config: DictConfig):
        self.loader, self.master = config_loader, master_config
        self._parser = OverridesParser.create()
        self._parsed: dict[str, Any] = {}
        self._bases: dict[tuple[str, ...], DictConfig] = {}
        self._is_group: dict[str, bool] = {}

    def _parse(self, line: str):
        if line not in self._parsed:
            self._parsed[line] = self._parser.parse_override(line)
        return self._parsed[line]

    def _group(self, key: str) -> bool:
        if key not in self._is_group:
            self._is_group[key] = self.loader.repository.group_exists(key)
        return self._is_group[key]

    def task_config(self, overrides: Sequence[str]) -> dict[str, Any]:
        """The resolved task config (no `hydra` node) of one job, as a plain dict."""
        parsed = [self._parse(o) for o in overrides]
        groups = tuple(o for o, p in zip(overrides, parsed) if self._group(p.key_or_group))
        values = [(o, p) for o, p in zip(overrides, parsed) if not self._group(p.key_or_group)]
        base = self._bases.get(groups)
        if base is None:
            try:
                full = self.loader.load_sweep_config(self.master, list(groups))
            except (HydraException, OmegaConfBaseException) as e:
                raise ConfigError(" ".join(groups) or "config", "", _one_line(e)) from None
            with open_dict(full):
                del full["hydra"]
            plain = OmegaConf.to_container(full, resolve=False)
            base = self._bases[groups] = plain if not _has_interpolation(plain) else full
        if isinstance(base, dict):
            cfg = _copy(base)
            for line, p in values:
                _apply(cfg, line, p)
            return cfg
        cfg = copy.deepcopy(base)
        for line, p in values:
            try:
                ConfigLoaderImpl._apply_overrides_to_config([p], cfg)
            except (HydraException, OmegaConfBaseException) as e:
                key, _, value = line.partition("=")
                raise ConfigError(key.lstrip("+~"), value, _one_line(e)) from None
        try:
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        except OmegaConfBaseException as e:
            raise ConfigError("config", " ".join(overrides), _one_line(e)) from None


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]


def _has_interpolation(x) -> bool:
    if isinstance(x, dict):
        return any(_has_interpolation(v) for v in x.values())
    if isinstance(x, list):
        return any(_has_interpolation(v) for v in x)
    return isinstance(x, str) and "${" in x


def _copy(x):
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy(v) for v in x]
    return x


def _apply(cfg: dict, line: str, override) -> None:
    """One value override on a plain config, with Hydra's semantics and errors."""
    key = override.key_or_group
    *path, leaf = key.split(".")
    node = cfg
    for part in path:
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            if override.is_add() or override.is_force_add():
                node = node.setdefault(part, {})
                continue
            raise ConfigError(key, line.partition("=")[2], f"a key of the config (no {key!r}; add one with +{key}=...)")
        node = node[part]
    if override.is_delete():
        if leaf not in node:
            raise ConfigError(key, "", "a key of the config to delete")
        del node[leaf]
        return
    exists = leaf in node
    if override.is_add() and exists:
        raise ConfigError(key, line.partition("=")[2], f"a new key (+{key} adds one; it exists: use {key}=... or ++{key}=...)")
    if not exists and not (override.is_add() or override.is_force_add()):
        raise ConfigError(key, line.partition("=")[2], f"a key of the config (no {key!r}; add one with +{key}=...)")
    node[leaf] = _copy(override.value())
