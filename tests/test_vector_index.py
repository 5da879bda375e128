from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.embedding import normalise
from recommender.errors import IndexCorrupt
from recommender.storage.vector_index import (
    EXACT_SEARCH_LIMIT,
    choose_index_type,
    estimate_bytes_per_vector,
    ivf_lists,
    measure_recall,
    new_index,
    read_index,
    supports_remove,
    write_index,
)


@pytest.mark.parametrize(
    ("count", "budget", "expected"),
    [
        (0, None, "flat"),
        (1_000, None, "flat"),
        (EXACT_SEARCH_LIMIT, None, "flat"),
        (EXACT_SEARCH_LIMIT + 1, None, "hnsw"),
        (10_000_000, None, "hnsw"),
        # a budget too small for floats + graph links forces the compressed index
        (1_000_000, 1_000_000 * 500, "ivf-sq8"),
        # a small archive that does not fit as floats goes compressed too
        (10_000, 10_000 * 100, "ivf-sq8"),
    ],
)
def test_choose_index_type(count: int, budget: int | None, expected: str) -> None:
    assert choose_index_type(count, 384, budget) == expected


def test_choose_index_type_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        choose_index_type(-1, 384)


def test_memory_estimates_are_ordered() -> None:
    assert (
        estimate_bytes_per_vector("ivf-sq8", 384)
        < estimate_bytes_per_vector("flat", 384)
        < estimate_bytes_per_vector("hnsw", 384)
    )


def test_ivf_lists_keeps_39_points_per_cell() -> None:
    assert ivf_lists(1_000_000) == 4000
    assert ivf_lists(1_000) == 25
    assert ivf_lists(10) == 1


def clustered(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, d))
    return normalise(centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, d)))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-sq8"])
def test_each_index_type_finds_neighbours_with_ids(kind: str) -> None:
    vectors = clustered(2_000)
    index = new_index(kind, vectors.shape[1], len(vectors))
    if not index.is_trained:
        index.train(vectors)
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)
    index.add_with_ids(vectors, ids)
    _, found = index.search(vectors[:5], 1)
    assert list(found[:, 0]) == list(ids[:5])
    recall = measure_recall(index, vectors[:100], [vectors[:1000], vectors[1000:]], k=10)
    assert recall == 1.0 if kind == "flat" else recall > 0.8
    assert supports_remove(index) is (kind != "hnsw")


def test_recall_detects_a_bad_index() -> None:
    vectors = clustered(500)
    half = new_index("flat", vectors.shape[1])
    half.add_with_ids(vectors[:250], np.arange(250, dtype=np.int64))  # misses half the collection
    assert measure_recall(half, vectors[250:300], [vectors], k=10) < 0.5


def test_index_file_is_verified_before_loading(tmp_path: Path) -> None:
    vectors = clustered(50)
    index = new_index("flat", vectors.shape[1])
    index.add_with_ids(vectors, np.arange(50, dtype=np.int64))
    path = tmp_path / "v.faiss"
    checksum = write_index(index, path)
    assert read_index(path, checksum).ntotal == 50
    assert not list(tmp_path.glob(".*tmp*"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum"):
        read_index(path, checksum)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(IndexCorrupt, match="checksum"):
        read_index(path, checksum)
