"""Every "Also Read" list at once, vectorised: what :func:`recommender.ranking.lists.refresh_all` runs.

Ranking one story at a time (:class:`recommender.ranking.search.Ranker`) reads its candidates from the catalog:
fine for one list, hours for a million. Here:

1. one streaming pass over the catalog loads what the ranking reads from every article into arrays
   (:class:`Archive`): its vector, copy group, page, date, language and unit TF-IDF row (a sparse matrix); the
   same pass counts document frequencies, which become the catalog's new keyword snapshot;
2. a batch of stories is searched in one FAISS call (every thread); candidate cosines, keyword cosines and
   the cosines between candidates are each one array operation for the whole batch;
3. each story's :class:`~recommender.ranking.pipeline.Pool` goes through the one pipeline
   (:func:`recommender.ranking.pipeline.rank`), exactly as a live search's does.

A story whose first pool leaves its list short while more related stories may exist is ranked again by a live
search (the search-until-k rule); ``tests/test_bulk_lists.py`` checks both paths give the same lists.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from recommender.articles import article_from_json
from recommender.ranking.keywords import idf_for, tokenize, weigh_rows
from recommender.ranking.pipeline import Pool, Query, Ranked, pool_size, rank
from recommender.ranking.policy import RankingPolicy
from recommender.ranking.search import days_of, language_of
from recommender.storage.catalog import Catalog
from recommender.storage.sql import keyset_pages
from recommender.storage.vector_index import one_blas_thread

log = logging.getLogger(__name__)

#: Articles whose keyword weights are computed at once when the archive is loaded (bounds the temporaries).
ROW_BLOCK = 50_000
#: Stories ranked per FAISS call and per vectorised step (memory: about BATCH x 100 candidates x 1.5 KB).
BATCH = 512
#: (story, candidate) pairs whose keyword cosines are computed at once: the row copies and the product of a
#: whole batch at once were the build's peak (about 300 MB at 10k articles).
KEYWORD_PAIRS = 8192


@dataclass
class Archive:
    """What the ranking reads from every article, as arrays in catalog-key order."""

    keys: np.ndarray  # int64, sorted
    vectors: np.ndarray  # float32 (n, d)
    copy_codes: np.ndarray  # int64: equal = copies of one text
    url_codes: np.ndarray  # int64: equal = one page; -1 = no URL
    days: np.ndarray  # float64: published (days since the epoch); nan = undated
    languages: np.ndarray  # int64 language code; -1 = unknown
    terms: sp.csr_matrix  # float64 (n, vocabulary): unit TF-IDF rows (empty row = no keyword evidence)
    vocabulary: list[str]  # column -> term
    language_names: list[str]  # language code -> primary subtag
    #: the new keyword snapshot: per language ('' = unknown), its article count and how many contain each column
    df: dict[str, tuple[int, np.ndarray]]

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key, -1 for keys not in the archive (deleted: tombstones in a graph index)."""
        if len(self.keys) == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, pos, -1)

    @property
    def nbytes(self) -> int:
        t = self.terms
        arrays = (self.keys, self.vectors, self.copy_codes, self.url_codes, self.days, self.languages)
        counts = sum(df.nbytes for _, df in self.df.values())
        return int(sum(a.nbytes for a in arrays) + counts + t.data.nbytes + t.indices.nbytes + t.indptr.nbytes)


def load_archive(catalog: Catalog, policy: RankingPolicy, page: int = 5000) -> Archive:
    """One pass over the catalog (a page at a time). Keyword weights use the document frequencies counted in
    this same pass (the snapshot the caller records), exactly as :class:`~recommender.ranking.keywords.
    KeywordModel` computes them from the recorded snapshot."""
    expected = catalog.count()
    copy_ids: dict[str, int] = {}  # copy key -> small integer (equal = copies)
    url_ids: dict[str, int] = {}  # normalised URL -> small integer
    language_ids: dict[str, int] = {}
    vocabulary: dict[str, int] = {}
    keys = np.empty(expected, dtype=np.int64)
    copies = np.empty(expected, dtype=np.int64)
    urls = np.empty(expected, dtype=np.int64)
    days = np.empty(expected, dtype=np.float64)
    languages = np.empty(expected, dtype=np.int64)
    lengths = np.empty(expected, dtype=np.int64)
    vectors: np.ndarray | None = None
    columns = array("i")  # term column of each (article, term) entry, article after article
    counts = array("I")  # ... and its count in the article
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
            article = article_from_json(data)
            language = language_of(article.language)
            keys[n] = key
            vectors[n] = vector
            copies[n] = copy_ids.setdefault(ckey, len(copy_ids))
            urls[n] = url_ids.setdefault(ukey, len(url_ids)) if ukey else -1
            days[n] = days_of(_published(article.published_at))
            languages[n] = language_ids.setdefault(language, len(language_ids)) if language else -1
            tally = Counter(tokenize(article.text))
            for term, count in tally.items():
                column = vocabulary.get(term)
                if column is None:
                    column = vocabulary[term] = len(vocabulary)
                columns.append(column)
                counts.append(count)
            lengths[n] = len(tally)
            n += 1
    if vectors is None:
        vectors = np.zeros((0, 0), dtype=np.float32)
    col = np.frombuffer(columns, dtype=np.int32) if len(columns) else np.zeros(0, dtype=np.int32)
    tf = np.frombuffer(counts, dtype=np.uint32) if len(counts) else np.zeros(0, dtype=np.uint32)
    lengths = lengths[:n]
    terms = list(vocabulary)
    # each article's terms weigh against the articles of its own language: its counts and its background list
    row_language = languages[:n]
    idfs = np.empty(len(col), dtype=np.float64)
    names = {code: name for name, code in language_ids.items()}
    snapshot: dict[str, tuple[int, np.ndarray]] = {}
    spoken = np.unique(row_language)
    if len(spoken) == 1:  # one language (or none known): no per-entry masks (each the size of the archive's terms)
        name = names.get(int(spoken[0]))
        df = np.bincount(col, minlength=len(terms)).astype(np.int64)  # each term once per article
        snapshot[name or ""] = (n, df)
        np.take(idf_for(df, n, policy.keyword_prior_docs, terms, name), col, out=idfs)
    else:
        narrow = np.int16 if len(language_ids) < 2**15 else np.int64
        entry_language = np.repeat(row_language.astype(narrow), lengths)
        for code in spoken:
            mask = entry_language == code
            columns_of = col[mask]
            df = np.bincount(columns_of, minlength=len(terms)).astype(np.int64)
            name = names.get(int(code))
            count = int(np.count_nonzero(row_language == code))
            snapshot[name or ""] = (count, df)
            idfs[mask] = idf_for(df, count, policy.keyword_prior_docs, terms, name)[columns_of]
        del entry_language
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    weights = idfs  # each block's weights replace its idfs: no second array the size of the archive's terms
    for r0 in range(0, n, ROW_BLOCK):  # no temporary the size of the whole matrix (1.4 GB each at 1M articles)
        r1 = min(n, r0 + ROW_BLOCK)
        e0, e1 = int(indptr[r0]), int(indptr[r1])
        weights[e0:e1] = weigh_rows(lengths[r0:r1], tf[e0:e1], idfs[e0:e1])
    matrix = sp.csr_matrix((weights, col, indptr), shape=(n, max(len(terms), 1)), copy=False)
    return Archive(
        keys=keys[:n],
        vectors=vectors[:n],
        copy_codes=copies[:n],
        url_codes=urls[:n],
        days=days[:n],
        languages=row_language,
        terms=matrix,
        vocabulary=terms,
        language_names=sorted(language_ids, key=language_ids.__getitem__),
        df=snapshot,
    )


def _published(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def rank_all(
    archive: Archive,
    search: Callable[[np.ndarray, int], np.ndarray],
    total: int,
    policy: RankingPolicy,
    k: int,
    reads: frozenset[str] | None = None,
    batch: int = BATCH,
) -> Iterator[tuple[int, Ranked, Pool]]:
    """``(archive row, list, pool)`` for every story; ``search(vectors, n)`` returns an (len, n) array of keys
    (-1 = none) from the FAISS index, and ``total`` is its entry count; ``reads`` the languages the model reads
    (None: all). A list whose ``complete`` is False needs a deeper (live) search."""
    foreign = np.asarray([reads is not None and name not in reads for name in archive.language_names], dtype=bool)
    n = min(total, pool_size(k))
    started = time.monotonic()
    for start in range(0, len(archive.keys), batch):
        stop = min(start + batch, len(archive.keys))
        queries = archive.vectors[start:stop]
        found = search(queries, n) if n > 0 else np.full((stop - start, 0), -1, dtype=np.int64)
        with one_blas_thread():  # many small products: one thread each is faster than a team (see there)
            ranked = list(_rank_batch(archive, policy, k, start, stop, found, foreign, n, exhausted=n >= total))
        yield from ranked
        if start // batch % 20 == 0:
            log.info(
                "related lists: %d/%d stories ranked (%.0f s)", stop, len(archive.keys), time.monotonic() - started
            )


def _rank_batch(
    archive: Archive,
    policy: RankingPolicy,
    k: int,
    start: int,
    stop: int,
    found: np.ndarray,
    foreign: np.ndarray,
    searched: int,
    *,
    exhausted: bool,
) -> Iterator[tuple[int, Ranked, Pool]]:
    """The pipeline for archive rows ``start:stop`` whose search results (catalog keys) are ``found``."""
    queries = archive.vectors[start:stop]
    rows = archive.rows_of(found.ravel()).reshape(found.shape)
    valid = _first_occurrences(rows)
    safe = np.where(valid, rows, 0)
    cand_vectors = archive.vectors[safe]  # (b, n, d)
    # float64 sums of the float32 products, as a live search's; cast as it goes (no float64 copy of the block)
    sims = np.einsum("bnd,bd->bn", cand_vectors, queries, dtype=np.float64, casting="safe")
    pairwise = np.matmul(cand_vectors, cand_vectors.transpose(0, 2, 1))
    has_terms = archive.terms.indptr[start + 1 : stop + 1] > archive.terms.indptr[start:stop]
    query_languages = archive.languages[start:stop]
    unread = np.append(foreign, False)  # the last entry for an unknown language (-1)
    model_language = ~unread[np.where(query_languages >= 0, query_languages, len(foreign))]
    keyword = _keyword_cosines(archive, start, safe, valid & has_terms[:, None], sims, model_language, policy)
    for i in range(stop - start):
        row = start + i
        cols = np.flatnonzero(valid[i])
        cand = safe[i, cols]
        query = Query(
            key=int(archive.keys[row]),
            copy_code=int(archive.copy_codes[row]),
            url_code=int(archive.url_codes[row]),
            days=float(archive.days[row]),
            language=int(query_languages[i]),
            has_terms=bool(has_terms[i]),
            model_language=bool(model_language[i]),
        )
        pool = Pool(
            keys=archive.keys[cand],
            sims=sims[i, cols],
            keyword=keyword[i, cols],
            copy_codes=archive.copy_codes[cand],
            url_codes=archive.url_codes[cand],
            days=archive.days[cand],
            languages=archive.languages[cand],
            pairwise=(pairwise[i] if len(cols) == found.shape[1] else pairwise[i][np.ix_(cols, cols)]).astype(
                np.float64
            ),
        )
        yield row, rank(query, pool, policy, k, exhausted=exhausted, searched=searched), pool


def _keyword_cosines(
    archive: Archive,
    start: int,
    safe: np.ndarray,
    candidates: np.ndarray,
    sims: np.ndarray,
    model_language: np.ndarray,
    policy: RankingPolicy,
) -> np.ndarray:
    """The keyword cosine of each (story ``start + i``, archive row ``safe[i, j]``) pair where
    :func:`~recommender.ranking.pipeline.scores` or the selection reads it, 0 elsewhere: a story whose language
    the model reads gives keyword evidence no weight at or below the minimum similarity (the gate is 0 there),
    and a candidate below it never enters its list. In a large archive most of a pool is that far."""
    needed = candidates & ((sims > policy.min_similarity) | ~model_language[:, None])
    keyword = np.zeros(safe.shape, dtype=np.float64)
    at = np.flatnonzero(needed.ravel())
    candidates_at = safe.ravel()[at]
    for lo in range(0, len(at), KEYWORD_PAIRS):  # the sparse temporaries are a few hundred bytes a pair
        pairs = at[lo : lo + KEYWORD_PAIRS]
        query_rows = start + pairs // safe.shape[1]
        products = archive.terms[query_rows].multiply(archive.terms[candidates_at[lo : lo + KEYWORD_PAIRS]])
        keyword.ravel()[pairs] = np.asarray(products.sum(axis=1)).ravel()
    return keyword


def _first_occurrences(rows: np.ndarray) -> np.ndarray:
    """Valid (present, first-seen) entries of each row of search results: a key can appear twice in a graph
    index (an edited story's old vector) and a deleted key not at all (-1)."""
    valid = rows >= 0
    if rows.shape[1] > 1:
        ordered = np.sort(np.where(valid, rows, -1 - np.arange(rows.shape[1])), axis=1)
        duplicated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        for i in np.flatnonzero(duplicated.any(axis=1)):
            _, first = np.unique(rows[i], return_index=True)
            mask = np.zeros(rows.shape[1], dtype=bool)
            mask[first] = True
            valid[i] &= mask
    return valid
