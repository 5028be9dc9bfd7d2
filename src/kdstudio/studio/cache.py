"""A small least-recently-used cache of values that go stale when their source changes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class VersionedCache(Generic[T]):
    """Up to ``size`` values, each kept with the version it was made at (e.g. the mtimes of
    the files it was read from); asking with another version makes the value again. The
    lock is held while making, so concurrent first calls make a value once."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, tuple[Hashable, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, version: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == version:
                self._items.move_to_end(key)
                return hit[1]
            value = make()
            self._items[key] = (version, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
