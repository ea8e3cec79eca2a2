"""A name -> component table; looking up an unknown name is a ConfigError listing the names."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, key: str):
        self.key = key  # the config key the names are given under, for error messages
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.key}: {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def add(self, name: str, item: T) -> T:
        return self.register(name)(item)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.key, name, sorted(self._items)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self):
        return sorted(self._items.items())

    def names(self) -> list[str]:
        return sorted(self._items)
