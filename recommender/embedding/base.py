"""What every embedder shares: the interface, the model names and backends, batching and normalisation.

Vectors are float32, L2-normalised, so inner product = cosine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from recommender.errors import ModelUnavailable

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: ``--backend`` values: sentence-transformers on torch (fp32), or the same model exported to onnxruntime
#: (fp32, or int8 weights); see :mod:`recommender.embedding.onnx` and ``docs/backends.md``.
#: ``onnx-int8-192`` is the int8 model reading the first 192 word pieces of a text (title and first paragraphs)
#: instead of the model's 256.
BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-int8-192")
#: The backend of a new index when none is asked for: the fastest whose eval stays within 0.5 point of torch
#: fp32 -- onnx-int8-192: 2.5-2.7x torch on articles on a quiet 2-core box (onnx-int8: 2.1-2.2x), every eval score
#: within 0.5 point on the bundled sample, ECB+, BBC and MasakhaNEWS English and French (``docs/benchmarks.md``).
DEFAULT_BACKEND = "onnx-int8-192"
#: Token budget of one onnx batch (rows x padded length): 2 article-length texts at 256 tokens, more short ones.
#: Small on purpose: onnxruntime's CPU attention holds batch x heads x length^2 probabilities (100 MB for 32
#: full-length articles, 6 MB for 2), and out of cache it was the slowest op. 512 embedded long articles 1.6x and
#: titles 2x faster than 8,192 on the 2-core box (docs/benchmarks.md).
MAX_BATCH_TOKENS = 512
#: Most texts in one batch, however short they are.
MAX_BATCH_SIZE = 128


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


#: Languages the sentence-transformers models this project knows were trained on (None: many languages).
#: all-MiniLM-L6-v2 and all-mpnet-base-v2 learned from English data: any other language comes out as noise.
_MODEL_LANGUAGES: dict[str, frozenset[str] | None] = {
    "all-minilm-l6-v2": frozenset({"en"}),
    "all-minilm-l12-v2": frozenset({"en"}),
    "all-mpnet-base-v2": frozenset({"en"}),
    "paraphrase-multilingual": None,
    "distiluse-base-multilingual": None,
    "labse": None,
    "multilingual-e5": None,
}


#: Models whose best backend is not :data:`DEFAULT_BACKEND` (int8 is refused for MPNet: see the onnx backend).
_MODEL_BACKENDS = {"all-mpnet-base-v2": "onnx"}


def default_backend(model: str) -> str:
    """The backend a new index of ``model`` gets when none is asked for."""
    name = Path(model.rstrip("/")).name.lower()
    return next((b for known, b in _MODEL_BACKENDS.items() if name.startswith(known)), DEFAULT_BACKEND)


def model_languages(model: str) -> frozenset[str] | None:
    """The languages ``model`` reads (by its name, for the models above); None when it reads many or is unknown."""
    name = Path(model.rstrip("/")).name.lower()
    for known, languages in _MODEL_LANGUAGES.items():
        if name.startswith(known):
            return languages
    return None


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make ``--model NAME`` build its embedder with ``factory(name, backend)`` (plug-ins and test fakes)."""
    _REGISTRY[name] = factory


def registered_factory(name: str) -> EmbedderFactory | None:
    """The factory :func:`register_embedder` recorded for ``name``, if any."""
    return _REGISTRY.get(name)


def default_cache_dir() -> Path:
    """``$RECOMMENDER_CACHE``, else ``$XDG_CACHE_HOME/recommender``, else ``~/.cache/recommender``.

    The root of everything made locally and kept between runs: unpacked packaged models (``models/``), exported
    ONNX files (``onnx/``) and the evaluation's embedding cache; never the repository or site-packages.
    """
    explicit = os.environ.get("RECOMMENDER_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recommender"


def available_threads() -> int:
    """Threads for inference: ``RECOMMENDER_THREADS`` if set, else the cores this process may run on.

    ``sched_getaffinity`` honours taskset and cpusets (containers); ``os.cpu_count()`` would count the host's.
    """
    explicit = os.environ.get("RECOMMENDER_THREADS", "").strip()
    if explicit:
        try:
            return max(1, int(explicit))
        except ValueError:
            raise ModelUnavailable(f"RECOMMENDER_THREADS must be a whole number, not {explicit!r}") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def plan_batches(
    lengths: Sequence[int], max_tokens: int = MAX_BATCH_TOKENS, max_batch: int = MAX_BATCH_SIZE
) -> list[np.ndarray]:
    """Split texts (given by token count) into batches: longest first, each within a token budget.

    Sorting by length keeps padding small (a batch is padded to its longest text); a token budget instead of a
    fixed batch size lets short texts (titles, queries) go many at a time and long ones fewer. Every index
    appears in exactly one batch; a text longer than the budget gets a batch of its own.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        width = max(1, int(lengths[order[start]]))  # the longest of this batch (sorted descending)
        size = max(1, min(max_batch, max_tokens // width))
        batches.append(order[start : start + size])
        start += size
    return batches


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else a clear :class:`ModelUnavailable`."""
    if backend not in BACKENDS:
        raise ModelUnavailable(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    return backend


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)
