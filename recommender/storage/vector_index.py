"""The FAISS side: choosing an index type, building it from the catalog's vectors, saving it atomically.

Integer FAISS ids are catalog keys. Exact search (``flat``) while the archive is small; graph (``hnsw``) or
compressed inverted lists (``ivf-sq8``) when it is large. Choices follow the FAISS wiki's "Guidelines to choose
an index".
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.errors import IndexCorrupt

if TYPE_CHECKING:
    import faiss

#: Below this many articles exact search is fast enough (about 5 ms per query at 384-d on one core) and has
#: perfect recall, so there is no reason to approximate.
EXACT_SEARCH_LIMIT = 50_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80
INDEX_TYPES = ("flat", "hnsw", "ivf-sq8")


def estimate_bytes_per_vector(index_type: str, dimension: int) -> float:
    """Approximate RAM per vector: raw floats plus the structure's overhead (ids, graph links, codes)."""
    if index_type == "flat":
        return dimension * 4 + 16  # vectors + id map (both directions for IDMap2)
    if index_type == "hnsw":
        return dimension * 4 + HNSW_M * 2 * 4 * 1.1 + 16  # level-0 links dominate
    if index_type == "ivf-sq8":
        return dimension + 8 + 8  # one byte per dimension + id in the inverted list
    raise ValueError(f"unknown index type {index_type!r}")


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_size(text: str | int) -> int:
    """Bytes from a size such as ``4GB``, ``512 MiB``, ``1.5G`` or ``1000000`` (KB/MB/GB are powers of 1000,
    KiB/MiB/GiB of 1024). Raises :class:`ValueError` with the accepted forms otherwise."""
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"not a size: {text!r} (use e.g. 4GB, 512MB, 2GiB or a number of bytes)")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"a memory budget must be positive, not {text!r}")
    return size


def choose_index_type(count: int, dimension: int, max_memory_bytes: int | None = None) -> str:
    """Pick the index for ``count`` vectors of ``dimension``: a pure function so it can be tested and explained.

    - exact (``flat``) up to :data:`EXACT_SEARCH_LIMIT` articles, if it fits the memory budget;
    - ``hnsw`` (fast, high recall, no true deletes) when it fits the budget;
    - ``ivf-sq8`` (4x smaller than floats) otherwise.
    """
    if count < 0 or dimension <= 0:
        raise ValueError("count must be >= 0 and dimension > 0")

    def fits(kind: str) -> bool:
        return max_memory_bytes is None or count * estimate_bytes_per_vector(kind, dimension) <= max_memory_bytes

    if count <= EXACT_SEARCH_LIMIT and fits("flat"):
        return "flat"
    if fits("hnsw"):
        return "hnsw"
    return "ivf-sq8"


def ivf_lists(count: int) -> int:
    """Number of IVF cells: about 4·sqrt(n), with at least 39 training points per cell (FAISS warns below)."""
    return max(1, min(int(4 * math.sqrt(max(count, 1))), count // 39 or 1))


def new_index(index_type: str, dimension: int, count_hint: int = 0) -> faiss.Index:
    """An empty inner-product index of ``index_type`` that takes explicit ids."""
    import faiss

    if index_type == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if index_type == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        return faiss.IndexIDMap2(hnsw)
    if index_type == "ivf-sq8":
        quantizer = faiss.IndexFlatIP(dimension)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, dimension, ivf_lists(count_hint), faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        ivf.nprobe = 16
        return ivf
    raise ValueError(f"unknown index type {index_type!r}")


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run FAISS and BLAS (numpy's matrix products) calls inside on one thread, then restore the settings.

    One query gains nothing from a thread team but pays for waking it; on a loaded 2-core machine that cost a
    single HNSW search 1 ms -> 50 ms and an exact search over 20k vectors 30 ms -> 140 ms (p50, measured), and
    a 97 x 256 matrix product 0.3 ms -> 4 ms (OpenBLAS with two threads). Batch work (adding, training, recall,
    the list precompute's FAISS calls) keeps every thread.
    """
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        faiss.omp_set_num_threads(previous)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's matrix products inside run on one BLAS thread: the many small products of ranking (a few
    hundred rows each) are 10-20x faster without a thread team to wake (a batch of 512 pools' pairwise cosines:
    4.6 s -> 0.2 s on the loaded 2-core box)."""
    with _blas().limit(limits=1, user_api="blas"):
        yield


@functools.lru_cache(maxsize=1)
def _blas() -> Any:
    """The process's BLAS thread pools (found once: looking them up costs more than a small product)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def supports_remove(index: faiss.Index) -> bool:
    """HNSW graphs cannot remove vectors: deleted ids stay as tombstones and are filtered at query time."""
    import faiss

    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return not isinstance(inner, faiss.IndexHNSW)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_index(index: faiss.Index, path: Path) -> str:
    """Write ``index`` to ``path`` atomically (temp file, fsync, rename); returns its sha256."""
    import faiss

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        faiss.write_index(index, str(tmp))
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        checksum = sha256_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return checksum


def read_index(path: Path, expected_sha256: str) -> faiss.Index:
    """Load a FAISS file only after its checksum matches the manifest (FAISS deserialisation trusts its input)."""
    import faiss

    if not path.exists():
        raise IndexCorrupt(f"{path}: the index file named by the manifest is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise IndexCorrupt(f"{path}: checksum mismatch (file is damaged or was changed outside recommender)")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:  # pragma: no cover - checksum guards against this
        raise IndexCorrupt(f"{path}: unreadable FAISS file ({exc})") from None


def exact_top_scores(queries: np.ndarray, batches: Iterable[np.ndarray], k: int) -> np.ndarray:
    """The k best inner products of each query over all vectors, streamed batch by batch (memory stays flat)."""
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for vectors in batches:
        scores = queries @ vectors.T
        merged = np.concatenate([best, scores], axis=1)
        best = -np.sort(-merged, axis=1)[:, :k]
    return best


def measure_recall(index: faiss.Index, queries: np.ndarray, batches: Iterable[np.ndarray], k: int = 10) -> float:
    """recall@k of ``index`` against exact search over every vector (given as ``batches``).

    Judged by score rather than id: an answer as close as the exact k-th neighbour is as good as it, which
    also keeps exact copies (equal vectors, different ids) from counting as misses.
    """
    if len(queries) == 0:
        return 1.0
    truth = exact_top_scores(queries, batches, k)
    k_eff = int(np.sum(np.isfinite(truth[0])))
    if k_eff == 0:
        return 1.0
    got, _ = index.search(queries, k_eff)
    threshold = truth[:, k_eff - 1 : k_eff] - 1e-5
    return float(np.mean(got >= threshold))
