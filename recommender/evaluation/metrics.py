"""Ranking metrics as pure functions of one ranked list (what :mod:`recommender.evaluation.evaluate` reports).

See :mod:`recommender.evaluation.evaluate` for what counts as relevant and how the gains are graded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

#: Links scored by P@5, nDCG@5, copy rate and coverage: what an "Also Read" box shows.
K = 5
#: MRR looks this deep for the first relevant link.
MRR_DEPTH = 10


def precision_at(relevant: Sequence[bool], k: int = K) -> float:
    """Share of the first ``k`` slots holding a relevant link; missing slots (a short list) count as misses."""
    return sum(1 for r in relevant[:k] if r) / k


def reciprocal_rank(relevant: Sequence[bool], depth: int = MRR_DEPTH) -> float:
    """1 / rank of the first relevant link within ``depth`` (0 when there is none)."""
    for rank, rel in enumerate(relevant[:depth], start=1):
        if rel:
            return 1.0 / rank
    return 0.0


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: linear gains, ``log2(rank + 1)`` discount."""
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def ndcg_at(gains: Sequence[float], ideal_gains: Sequence[float], k: int = K) -> float:
    """DCG of the first ``k`` gains over the DCG of the best ``k`` of ``ideal_gains`` (0 when nothing is relevant)."""
    best = dcg(sorted(ideal_gains, reverse=True)[:k])
    return dcg(list(gains[:k])) / best if best > 0 else 0.0


def shows_copy(query_copy_key: str, copy_keys: Sequence[str]) -> bool:
    """True when a list shows a copy of the query story, or two copies of one story."""
    return query_copy_key in copy_keys or len(set(copy_keys)) < len(copy_keys)


def coverage(lists: Iterable[Sequence[str]], archive_size: int, k: int = K) -> float:
    """Share of the archive that appears in the first ``k`` links of at least one list."""
    if archive_size <= 0:
        return 0.0
    shown: set[str] = set()
    for ids in lists:
        shown.update(ids[:k])
    return len(shown) / archive_size


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation (0 when either side is constant)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else 0.0


def _ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    arr = np.asarray(values, dtype=np.float64)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(len(arr), dtype=np.float64)
    sorted_vals = arr[order]
    start = 0
    while start < len(arr):
        end = start
        while end + 1 < len(arr) and sorted_vals[end + 1] == sorted_vals[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson of the ranks, ties averaged)."""
    return pearson(_ranks(x).tolist(), _ranks(y).tolist())
