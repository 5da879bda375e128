"""Embedding: one interface (:class:`Embedder`), backends for torch and onnxruntime, an on-disk cache."""

from recommender.embedding.models import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    Embedder,
    load_embedder,
    register_embedder,
)

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DEFAULT_MODEL", "Embedder", "load_embedder", "register_embedder"]
