"""What every configurable component (loss, dataset, model, optimizer, and the spec's own
sections) shares: a name, a typed schema of its config keys, and the check that turns a user's
config section into a normalized, typed dict.

Each fact has one home:
  * the *defaults* are the YAML files the user reads and overrides: `conf/<group>/<name>.yaml`
    for a component of a config group (`conf/loss/huber.yaml`: `delta: 1.0`), the section of
    `conf/config.yaml` for the spec's own sections (`train:`, `outliers:`, ...) and for keys that
    every option of a group shares (`optimizer:` `schedule: constant`, merged into each optimizer);
  * the *types* and *ranges* are Python: `schema` maps each key to its type, `check()` tests
    the values.
Hydra composes full sections from the YAML; `normalize` fills a key missing from a section
(a test or a tool building one by hand) from the same YAML.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, ClassVar, Mapping

from harness.errors import ConfigError
from harness.paths import CONF

# A schema maps each key to its type: float, int, bool, str, or None (any scalar or null:
# check() decides what is allowed).
Schema = Mapping[str, Any]


@lru_cache(maxsize=None)
def _yaml(path: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # type: ignore[return-value]


def group_defaults(group: str, name: str) -> dict[str, Any]:
    """The defaults of option `name` of config group `group`: conf/<group>/<name>.yaml, without
    its `name` key; {} when there is no such file."""
    path = CONF / group / f"{name}.yaml"
    return {k: v for k, v in _yaml(str(path)).items() if k != "name"} if path.is_file() else {}


def section_defaults(key: str) -> dict[str, Any]:
    """The defaults of a section of conf/config.yaml (`train`, `outliers`, ...); {} without one."""
    path = CONF / "config.yaml"
    return dict(_yaml(str(path)).get(key) or {}) if path.is_file() else {}


def coerce(key: str, value: Any, kind: Any) -> Any:
    """Casts `value` to `kind` (ints are accepted where floats are expected)."""
    if value is None or kind is None:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, value, "true or false")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, value, "a number")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(key, value, "a number, not NaN")
        return value
    if kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(key, value, "an integer")
        return int(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string")
        return value
    return value


class Component:
    """Base of every registered component.

    `group` is the config group it is chosen in (its defaults: conf/<group>/<name>.yaml);
    `schema` lists the keys it reads (besides `name`) with their types. `normalize(section,
    group)` checks a user's section against it and returns a typed dict."""

    name: ClassVar[str] = ""
    group: ClassVar[str] = ""
    schema: ClassVar[Schema] = {}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """conf/<group>/<name>.yaml, and the keys every option of the group shares, which
        conf/config.yaml holds under the group's name (the optimizers' schedule)."""
        return {**section_defaults(cls.group), **group_defaults(cls.group, cls.name)}

    @classmethod
    def normalize(cls, section: Mapping[str, Any], group: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": cls.name}
        for key, value in section.items():
            if key == "name":
                continue
            if key not in cls.schema:
                allowed = sorted(cls.schema) or ["(no keys)"]
                raise ConfigError(f"{group}.{key}", value, f"{group}={cls.name} takes the keys " + ", ".join(allowed))
        defaults = cls.defaults()
        for key, kind in cls.schema.items():
            out[key] = coerce(f"{group}.{key}", section[key] if key in section else defaults.get(key), kind)
        cls.check(out, group)
        return out

    @classmethod
    def check(cls, section: dict[str, Any], group: str) -> None:
        """Range checks of the normalized values; raise ConfigError."""


class Section(Component):
    """A section of conf/config.yaml that is not a config group (train, outliers, ...)."""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return section_defaults(cls.name)


def require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)
