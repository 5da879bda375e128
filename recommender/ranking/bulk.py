"""Every "Also Read" list at once, vectorised: what :func:`recommender.ranking.lists.refresh_all` runs after a build.

Ranking one story at a time (:meth:`recommender.Recommender.rank_for`) costs about 8 ms in Python: a search,
catalog reads, a keyword cosine and a copy check per candidate. At a million stories that is hours. This module
computes the same lists in batches instead:

1. one streaming pass over the catalog loads what the ranking reads from every article into arrays
   (:class:`Archive`): its vector, copy group, normalised URL and unit TF-IDF row (a sparse matrix);
2. a batch of stories is searched in one FAISS call (every thread), candidate similarities are one ``einsum``,
   keyword cosines one sparse element-wise product, the pairwise cosines for the copy check one batched matmul;
3. a short per-story step applies the pipeline's order-dependent rules (:func:`rank_row`).

The result is the same list :func:`recommender.ranking.pipeline.rank` gives with the same options (checked by
``tests/test_bulk_lists.py``), up to float rounding of near-ties. Options the vectorised path does not cover
(editors' filters, freshness, diversity) make :func:`supports` false and the caller ranks story by story; a
story whose first candidate pool leaves its list short while more related stories may exist is also ranked
the slow way (the search-until-k rule).
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.articles import article_from_json
from recommender.ranking.keywords import idf, tokenize
from recommender.ranking.pipeline import RankingOptions
from recommender.storage.catalog import Catalog
from recommender.storage.sql import keyset_pages

log = logging.getLogger(__name__)

#: Articles whose keyword weights are computed at once when the archive is loaded (bounds the temporaries).
ROW_BLOCK = 50_000
#: Stories ranked per FAISS call and per vectorised step (memory: about BATCH x 100 candidates x 1.5 KB).
BATCH = 512


def supports(options: RankingOptions) -> bool:
    """Whether :func:`rank_row` reproduces :func:`recommender.ranking.pipeline.rank` for these options."""
    return (
        options.section is None
        and options.language is None
        and options.since is None
        and options.until is None
        and not options.exclude
        and options.half_life_days is None
        and options.diversity_lambda >= 1.0
    )


def candidate_count(k: int) -> int:
    """Candidates fetched for a list of k: the same first pool :meth:`Recommender._search_until_k` asks for."""
    return max(4 * k + 16, 32)


@dataclass
class Archive:
    """What the ranking reads from every article, as arrays in catalog-key order."""

    keys: np.ndarray  # int64, sorted
    vectors: np.ndarray  # float32 (n, d)
    copy_codes: np.ndarray  # int64: equal = copies of one text
    url_codes: np.ndarray  # int64: equal = one page; -1 = no URL
    terms: sp.csr_matrix  # float64 (n, vocabulary): unit TF-IDF rows (empty row = no keyword evidence)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key, -1 for keys not in the archive (deleted: tombstones in a graph index)."""
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos] == keys
        return np.where(found, pos, -1)

    @property
    def nbytes(self) -> int:
        t = self.terms
        return int(
            self.keys.nbytes
            + self.vectors.nbytes
            + self.copy_codes.nbytes
            + self.url_codes.nbytes
            + t.data.nbytes
            + t.indices.nbytes
            + t.indptr.nbytes
        )


def load_archive(catalog: Catalog, page: int = 5000) -> Archive:
    """One pass over the catalog (a page at a time); TF-IDF weights against its stored document frequencies,
    exactly as :class:`recommender.ranking.keywords.KeywordWeights` computes them."""
    n_docs = expected = catalog.count()
    vocabulary: dict[str, int] = {}
    idfs: list[float] = []
    for term, df in catalog.conn.execute("SELECT term, df FROM terms"):
        vocabulary[term] = len(idfs)
        idfs.append(idf(int(df), n_docs))
    idf_array = np.asarray(idfs, dtype=np.float64)
    unknown_idf = idf(0, n_docs)  # a term the table lacks counts as df 0, like KeywordWeights

    copy_ids: dict[str, int] = {}  # copy key -> small integer (equal = copies)
    url_ids: dict[str, int] = {}  # normalised URL -> small integer
    keys = np.empty(expected, dtype=np.int64)
    copies = np.empty(expected, dtype=np.int64)
    urls = np.empty(expected, dtype=np.int64)
    vectors: np.ndarray | None = None
    lengths = np.empty(expected, dtype=np.int64)
    columns = array("i")  # term column of each (article, term) entry, article after article
    counts = array("I")  # ... and its count in the article
    extra_terms: dict[str, int] = {}
    n = 0
    sql = (
        "SELECT a.key, a.url_key, a.copy_key, a.data, v.vector FROM articles a "
        "JOIN vectors v ON v.content_hash = a.content_hash WHERE a.key > ? ORDER BY a.key LIMIT ?"
    )
    for rows in keyset_pages(catalog.conn, sql, -1, page):
        for key, ukey, ckey, data, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32)
            if vectors is None:
                vectors = np.empty((expected, vector.shape[0]), dtype=np.float32)
            keys[n] = key
            vectors[n] = vector
            copies[n] = copy_ids.setdefault(ckey, len(copy_ids))
            urls[n] = url_ids.setdefault(ukey, len(url_ids)) if ukey else -1
            tally = Counter(tokenize(article_from_json(data).text))
            for term, count in tally.items():
                col = vocabulary.get(term)
                if col is None:
                    col = extra_terms.get(term)
                    if col is None:
                        col = extra_terms[term] = len(vocabulary) + len(extra_terms)
                columns.append(col)
                counts.append(count)
            lengths[n] = len(tally)
            n += 1
    if vectors is None:
        vectors = np.zeros((0, 0), dtype=np.float32)

    vocab_size = len(vocabulary) + len(extra_terms)
    all_idf = np.concatenate([idf_array, np.full(len(extra_terms), unknown_idf)])
    col = np.array(columns, dtype=np.int32)
    tf = np.frombuffer(counts, dtype=np.uint32) if len(counts) else np.zeros(0, dtype=np.uint32)
    del columns
    lengths = lengths[:n]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    weights = np.empty(len(tf), dtype=np.float64)
    # sublinear tf x idf (as keywords.weigh), then unit rows; in blocks of rows, so that no temporary is the
    # size of the whole matrix (at 1M articles each would be about 1.4 GB)
    for r0 in range(0, n, ROW_BLOCK):
        r1 = min(n, r0 + ROW_BLOCK)
        e0, e1 = int(indptr[r0]), int(indptr[r1])
        block = np.log(tf[e0:e1], dtype=np.float64)
        block += 1.0
        block *= all_idf[col[e0:e1]]
        # row norms, each row summed in its own term order (as keywords.weigh does): bincount adds sequentially,
        # so two identical texts get bit-identical rows wherever they sit (a SIMD reduction's order depends on
        # memory alignment, and a 1e-17 difference decides which of two copies a list keeps)
        rows_of = np.repeat(np.arange(r1 - r0), lengths[r0:r1])
        norms = np.sqrt(np.bincount(rows_of, weights=block * block, minlength=r1 - r0))
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        block *= np.repeat(scale, lengths[r0:r1])
        weights[e0:e1] = block
    del tf, counts
    matrix = sp.csr_matrix((weights, col, indptr), shape=(n, max(vocab_size, 1)), copy=False)
    return Archive(keys=keys[:n], vectors=vectors[:n], copy_codes=copies[:n], url_codes=urls[:n], terms=matrix)


@dataclass(frozen=True)
class RowList:
    """One story's list: ``(catalog key, similarity, ranking score)`` best first, and whether it is short.
    ``complete`` False: the first candidate pool was not enough; rank this story the slow way."""

    items: list[tuple[int, float, float]]
    short: bool
    complete: bool


def rank_row(
    query_row: int,
    rows: np.ndarray,
    sims: np.ndarray,
    keyword: np.ndarray,
    pairwise: np.ndarray,
    archive: Archive,
    options: RankingOptions,
    *,
    exhausted: bool,
) -> RowList:
    """The ranking pipeline for one story over its candidates (pure; arrays in the index's result order).

    ``rows``: archive rows of the candidates (unique, present); ``sims``: their embedding cosine to the story;
    ``keyword``: their keyword cosine; ``pairwise``: cosines between the candidates. ``exhausted``: the search
    already covered the whole archive.
    """
    k = options.k
    order = np.argsort(-sims, kind="stable")  # candidates_for_keys: best similarity first, ties in index order
    weakest = float(sims[order[-1]]) if len(order) else -1.0
    # never the story itself or a copy of it
    q_copy = archive.copy_codes[query_row]
    q_url = archive.url_codes[query_row]
    cand_rows = rows[order]
    keep = (cand_rows != query_row) & (archive.copy_codes[cand_rows] != q_copy) & (sims[order] < options.near_copy)
    if q_url >= 0:
        keep &= archive.url_codes[cand_rows] != q_url
    order = order[keep]
    # blend in keyword evidence (only when the story itself has keywords), best first
    has_terms = archive.terms.indptr[query_row + 1] > archive.terms.indptr[query_row]
    sim_f = sims.astype(np.float64)
    if options.keyword_weight > 0 and has_terms:
        score = (1.0 - options.keyword_weight) * sim_f + options.keyword_weight * keyword
        order = order[np.argsort(-score[order], kind="stable")]
    else:
        score = sim_f
    # one link per copy group: greedy in ranking order (a candidate yields to an earlier kept one)
    copies = archive.copy_codes[rows[order]]
    urls = archive.url_codes[rows[order]]
    m = len(order)
    near = pairwise[np.ix_(order, order)] >= options.near_copy
    same = (copies[:, None] == copies[None, :]) | ((urls[:, None] == urls[None, :]) & (urls[:, None] >= 0))
    conflict = np.triu(near | same, k=1)  # conflict[i, j]: i earlier than j and they are copies
    contested = conflict.any(axis=0)
    kept = np.ones(m, dtype=bool)
    for j in np.flatnonzero(contested):
        if kept[conflict[:, j]].any():  # `kept` of earlier entries is final when j is reached
            kept[j] = False
    order = order[kept]
    order = order[sims[order] >= options.min_similarity]
    top = order[:k]
    items = [(int(archive.keys[rows[j]]), float(sims[j]), float(score[j])) for j in top]
    complete = len(items) >= k or exhausted or weakest < options.min_similarity
    return RowList(items, len(items) < k, complete)


def rank_all(
    archive: Archive,
    search: Callable[[np.ndarray, int], np.ndarray],
    total: int,
    options: RankingOptions,
    batch: int = BATCH,
) -> Iterator[tuple[int, RowList]]:
    """``(archive row, list)`` for every story; ``search(vectors, n)`` returns an (len, n) array of keys (-1 =
    none) from the FAISS index, and ``total`` is its entry count."""
    n = min(total, candidate_count(options.k))
    started = time.monotonic()
    for start in range(0, len(archive.keys), batch):
        stop = min(start + batch, len(archive.keys))
        queries = archive.vectors[start:stop]
        found = search(queries, n) if n > 0 else np.full((stop - start, 0), -1, dtype=np.int64)
        rows = archive.rows_of(found.ravel()).reshape(found.shape)
        # a key may appear twice in a graph index (an edited story's old vector): keep its first entry
        valid = rows >= 0
        if found.shape[1] > 1:
            ordered = np.sort(np.where(valid, rows, -1 - np.arange(rows.shape[1])), axis=1)
            duplicated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
            if duplicated.any():
                for i in np.flatnonzero(duplicated.any(axis=1)):
                    _, first = np.unique(rows[i], return_index=True)
                    mask = np.zeros(rows.shape[1], dtype=bool)
                    mask[first] = True
                    valid[i] &= mask
        safe = np.where(valid, rows, 0)
        cand_vectors = archive.vectors[safe]  # (b, n, d)
        sims = np.einsum("bnd,bd->bn", cand_vectors, queries)
        pairwise = np.matmul(cand_vectors, cand_vectors.transpose(0, 2, 1))
        query_rows = np.repeat(np.arange(start, stop), found.shape[1])
        keyword = np.asarray(archive.terms[query_rows].multiply(archive.terms[safe.ravel()]).sum(axis=1)).reshape(
            found.shape
        )
        for i in range(stop - start):
            cols = np.flatnonzero(valid[i])
            ranked = rank_row(
                start + i,
                safe[i, cols],
                sims[i, cols],
                keyword[i, cols],
                pairwise[i][np.ix_(cols, cols)],
                archive,
                options,
                exhausted=n >= total,
            )
            yield start + i, ranked
        if start // batch % 20 == 0:
            log.info(
                "related lists: %d/%d stories ranked (%.0f s)", stop, len(archive.keys), time.monotonic() - started
            )
