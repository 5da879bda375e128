"""The torch backend: a sentence-transformers model, loaded once, on the CPU unless told otherwise."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recommender.embedding.base import DEFAULT_MODEL, available_threads, normalise
from recommender.embedding.packaged import resolve_model_path
from recommender.errors import ModelUnavailable


class SentenceTransformerEmbedder:
    """A sentence-transformers model (torch backend), loaded once, on the CPU unless told otherwise."""

    def __init__(self, name: str = DEFAULT_MODEL, backend: str = "torch", batch_size: int = 32) -> None:
        import torch

        torch.set_num_threads(available_threads())
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
