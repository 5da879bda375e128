"""A deterministic fake embedder for fast unit tests: hashed bag of words, so shared words mean similar."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence

import numpy as np

from recommender.embedding import normalise, register_embedder

FAKE_MODEL = "fake-hashing"
_WORD = re.compile(r"\w{3,}", re.UNICODE)
_STOP = frozenset("the and for with from after that this are was were has have its into over their".split())


class FakeEmbedder:
    """Each word adds a fixed pseudo-random unit vector; the sum is normalised. Same text, same vector."""

    def __init__(self, name: str = FAKE_MODEL, backend: str = "torch", dimension: int = 256) -> None:
        self.name = name
        self.backend = backend
        self._dimension = dimension
        self.calls: list[int] = []  # batch sizes, so tests can see what was embedded
        self.before_batch: Callable[[int], None] | None = None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self._dimension

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self._dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self.before_batch is not None:
                self.before_batch(len(self.calls))
            self.calls.append(len(texts))
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.casefold()):
                if word not in _STOP:
                    out[row] += self._word(word)
        return normalise(out)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


#: The instance ``--model fake-hashing`` resolves to, so CLI tests can count what was embedded.
SHARED = FakeEmbedder()


def install() -> FakeEmbedder:
    SHARED.calls.clear()
    SHARED.before_batch = None
    register_embedder(FAKE_MODEL, lambda name, backend: SHARED)
    return SHARED
