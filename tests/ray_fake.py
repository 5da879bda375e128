"""A plug-in module for Ray workers: importing it registers the fake embedder (``--model fake-hashing``) there.

Ray workers are separate processes, so the registration a test makes in its own process does not reach them;
builds name this module in ``RayOptions.plugins`` (or ``RECOMMENDER_PLUGINS``) and each worker imports it.

``FAKE_EMBED_LOG`` (a folder): each worker appends the content hash of every text it embeds to a file of its
own, so a test can tell what was embedded, and how often. ``FAKE_BATCH_DELAY``: seconds slept before each batch.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recommender.embedding import register_embedder
from recommender.errors import ModelUnavailable
from tests.fakes import FAKE_MODEL, FakeEmbedder

MODULE = __name__
#: ``--model`` name whose loading fails on the workers, as a model missing there would.
UNAVAILABLE = "fake-unavailable"


class LoggingFake(FakeEmbedder):
    """The fake embedder, plus the per-batch delay and the embedded-hash log described above."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        delay = float(os.environ.get("FAKE_BATCH_DELAY", "0"))
        if delay:
            time.sleep(delay)
        vectors = super().embed(texts)
        folder = os.environ.get("FAKE_EMBED_LOG")
        if folder and texts:
            lines = "".join(hashlib.sha256(t.encode("utf-8")).hexdigest() + "\n" for t in texts)
            with open(Path(folder) / f"embedded-{os.getpid()}.txt", "a", encoding="utf-8") as handle:
                handle.write(lines)
        return vectors


_instance: LoggingFake | None = None


def _factory(name: str, backend: str) -> LoggingFake:
    global _instance
    if _instance is None:
        _instance = LoggingFake(name, backend)
    return _instance


def _unavailable(name: str, backend: str) -> LoggingFake:
    raise ModelUnavailable(f"cannot load model {name!r}: weights not installed on this worker")


register_embedder(FAKE_MODEL, _factory)
register_embedder(UNAVAILABLE, _unavailable)


def embedded_hashes(folder: Path) -> list[str]:
    """Every hash the workers logged in ``folder`` (a hash embedded twice appears twice)."""
    return [line for path in sorted(folder.glob("embedded-*.txt")) for line in path.read_text("utf-8").split()]
