"""An on-disk cache of embeddings per (model, backend, text), so repeated evaluation runs embed nothing twice.

The index already never re-embeds an unchanged article; this cache is for throwaway indexes (``recommender
eval`` builds a fresh one per run) and experiments. It lives outside the repository: ``RECOMMENDER_CACHE`` or
``~/.cache/recommender``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recommender.embedding.base import Embedder, default_cache_dir, normalise
from recommender.storage.sql import in_chunks


def text_key(model: str, text: str) -> str:
    """Cache key of one text under one model: a change of either is a miss."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


class CachingEmbedder:
    """Wraps an embedder (loaded only when a text is missing) and keeps every vector it makes on disk."""

    def __init__(
        self, name: str, load: Callable[[], Embedder], cache_dir: Path | None = None, backend: str = "torch"
    ) -> None:
        # One file per model and backend: int8 and fp32 vectors of one model differ slightly and must not mix.
        self.name = name
        self.backend = backend
        self._load = load
        self._inner: Embedder | None = None
        folder = cache_dir or default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name}-{backend}")[:100]
        self._conn = sqlite3.connect(folder / f"embeddings-{safe}.sqlite", timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def inner(self) -> Embedder:
        if self._inner is None:
            self._inner = self._load()
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('dimension', ?)", (str(self._inner.dimension),))
            self._conn.commit()
        return self._inner

    @property
    def dimension(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        return int(row[0]) if row else self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``: cached ones read back, the rest embedded (once each) and stored."""
        keys = [text_key(self.name, t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for chunk, marks in in_chunks(keys):
                for key, blob in self._conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        self.hits += len(keys) - sum(1 for k in keys if k not in found)
        if todo:
            first_text = {k: t for k, t in zip(keys, texts, strict=True)}
            vectors = self.inner.embed([first_text[k] for k in todo])
            with self._lock:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                    [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in zip(todo, vectors, strict=True)],
                )
                self._conn.commit()
            self.misses += len(todo)
            found.update(zip(todo, vectors, strict=True))
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalise(np.vstack([found[k] for k in keys]))

    def close(self) -> None:
        self._conn.close()
