"""The in-process cache of encoded GET answers, keyed by index version: never stale, aged out by use."""

from __future__ import annotations

import threading
from collections import OrderedDict

#: ``(index version, path, query string)``
CacheKey = tuple[str, str, bytes]


class ResponseCache:
    """A bounded LRU of encoded GET answers. Keys carry the index version, so entries never go stale: after a
    write, new keys are used and old ones age out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[CacheKey, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> tuple[bytes, str] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: CacheKey, value: tuple[bytes, str]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
