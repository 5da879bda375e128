"""Embedding: one interface (:class:`Embedder`), backends for torch and onnxruntime, an on-disk cache.

:func:`load_embedder` picks the backend; :mod:`.base` holds what they share, :mod:`.sbert` the torch backend,
:mod:`.onnx` the onnxruntime ones and :mod:`.cache` the on-disk cache used by evaluation runs.
"""

from __future__ import annotations

import logging

from recommender.embedding.base import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    Embedder,
    available_threads,
    check_backend,
    normalise,
    register_embedder,
    registered_factory,
)

log = logging.getLogger(__name__)


def load_embedder(name: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND) -> Embedder:
    """The embedder for ``--model NAME`` and ``--backend``: a registered one, else the model on that backend."""
    check_backend(backend)
    factory = registered_factory(name)
    if factory is not None:
        return factory(name, backend)
    log.info("loading model %s (%s)", name, backend)
    if backend != "torch":
        from recommender.embedding.onnx import OnnxEmbedder

        return OnnxEmbedder(name, backend)
    from recommender.embedding.sbert import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(name, backend)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "Embedder",
    "available_threads",
    "load_embedder",
    "normalise",
    "register_embedder",
]
