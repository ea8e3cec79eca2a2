"""One kind of user error, one line of text.

Every check of user input raises `ConfigError(key, value, allowed)`; the entry points print
`error: <key>=<value>: <allowed>` on one line and exit with status 2, before any training and
before anything is written to MLflow.
"""
from __future__ import annotations

from typing import Any, Iterable


class ConfigError(ValueError):
    """Bad user input: names the config key, the value given and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str | Iterable[str]):
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(str(a) for a in allowed)
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")

    def line(self) -> str:
        return f"error: {self}"
