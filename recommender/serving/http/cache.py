"""The in-process cache of encoded GET answers, keyed by index version: never stale, aged out by use."""

from __future__ import annotations

import threading
from collections import OrderedDict

#: ``(index version, path, query string)``
CacheKey = tuple[str, str, bytes]
#: What one entry costs besides its key and payload (the tuple, the dict slot, the bytes headers), roughly.
ENTRY_OVERHEAD = 200


def entry_bytes(key: CacheKey, value: tuple[bytes, str]) -> int:
    """The memory one entry holds, as the cache counts it."""
    return len(key[0]) + len(key[1]) + len(key[2]) + len(value[0]) + len(value[1]) + ENTRY_OVERHEAD


class ResponseCache:
    """An LRU of encoded GET answers bounded in bytes (keys count: query strings are the client's to choose).
    Keys carry the index version, so entries never go stale: after a write, new keys are used and old ones age
    out. An answer larger than a tenth of the budget is not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[CacheKey, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: CacheKey) -> tuple[bytes, str] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: CacheKey, value: tuple[bytes, str]) -> None:
        size = entry_bytes(key, value)
        if size > self.max_bytes // 10:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= entry_bytes(key, old)
            self._items[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                gone_key, gone = self._items.popitem(last=False)
                self.bytes -= entry_bytes(gone_key, gone)
