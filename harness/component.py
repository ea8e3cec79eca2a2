"""What every configurable component (loss, dataset, model, optimizer, outlier kind) shares:
a name, a table of config keys with their defaults, and the check that turns a user's config
section into a normalized, typed dict.

The defaults here are the schema; the YAML file in the matching `conf/` group shows the same
keys to the user (a test keeps the two in step).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

from harness.errors import ConfigError

# A schema entry's default fixes its type: float, int, bool, str, or None (= any scalar / null).
Schema = Mapping[str, Any]


def coerce(key: str, value: Any, default: Any) -> Any:
    """Casts `value` to the type of `default` (ints are accepted where floats are expected)."""
    if value is None or default is None:
        return value
    kind = type(default)
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

    `schema` lists the config keys the component reads (besides `name`) with their defaults.
    `normalize(section, group)` checks a user's section against it and returns a typed dict.
    """

    name: ClassVar[str] = ""
    schema: ClassVar[Schema] = {}

    @classmethod
    def normalize(cls, section: Mapping[str, Any], group: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": cls.name}
        for key, value in section.items():
            if key == "name":
                continue
            if key not in cls.schema:
                allowed = sorted(cls.schema) or ["(no keys)"]
                raise ConfigError(f"{group}.{key}", value, f"{group}={cls.name} takes the keys " + ", ".join(allowed))
        for key, default in cls.schema.items():
            out[key] = coerce(f"{group}.{key}", section.get(key, default), default)
        cls.check(out, group)
        return out

    @classmethod
    def check(cls, section: dict[str, Any], group: str) -> None:
        """Range checks of the normalized values; raise ConfigError."""


def require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)
