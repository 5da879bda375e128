"""Live ranking: one story's (or one text's) list, from a FAISS search, through the pipeline.

What a stored list holds is this, computed in advance (:mod:`.bulk` for a whole archive, :mod:`.lists` after
each write); a read searches live only when a stored list cannot answer (k deeper than stored, filters that
leave fewer than k, a list not written yet).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from recommender.articles import normalise_for_copy, url_key
from recommender.errors import ArticleNotFound
from recommender.ranking.keywords import KeywordModel, Terms, Vocabulary, Weights, cosines
from recommender.ranking.pipeline import LIST_DEPTH, Pool, Query, Ranked, pool_size, rank
from recommender.ranking.policy import NO_FILTERS, Filters, RankingPolicy
from recommender.storage.catalog import PoolRow, StoredArticle
from recommender.storage.store import IndexStore
from recommender.storage.vector_index import single_thread

SECONDS_PER_DAY = 86400.0


def days_of(published: datetime | None) -> float:
    """A date as days since the epoch (nan when undated): what the time rules compare."""
    return published.timestamp() / SECONDS_PER_DAY if published is not None else float("nan")


class Entry(NamedTuple):
    """One item of a list: its catalog key, embedding cosine to the story, and score (what orders the list). A
    named tuple: every stored list read makes twenty (half the time of a frozen dataclass)."""

    key: int
    similarity: float
    score: float


@dataclass(frozen=True)
class RankedList:
    """A list as the pipeline gives it: entries best first; ``short`` when fewer than k are related enough."""

    entries: list[Entry]
    short: bool


@dataclass(frozen=True)
class Subject:
    """The story a list is for (or a free text): its vector, keyword vector and facts."""

    vector: np.ndarray
    terms: Weights | None
    key: int = -1
    copy_key: str | None = None
    url: str | None = None
    published: datetime | None = None
    language: str | None = None


class Codes:
    """Small integers for strings within one pool (copy groups, pages, languages): equal strings, equal codes."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def __call__(self, value: str | None) -> int:
        if value is None:
            return -1
        return self._codes.setdefault(value, len(self._codes))


@lru_cache(maxsize=1024)
def language_of(value: str | None) -> str | None:
    """A language as the rules compare it: the primary subtag, lower-cased (``en`` for ``en-GB``)."""
    if not value:
        return None
    return value.strip().lower().replace("_", "-").split("-", 1)[0] or None


class Ranker:
    """Live ranking over an open index with one policy (what a stored list would hold, computed now)."""

    def __init__(self, store: IndexStore, policy: RankingPolicy, keywords: KeywordModel) -> None:
        self.store = store
        self.policy = policy
        self.keywords = keywords
        self.reads = policy.reads(store.manifest.model)  # None: the model reads every language

    # -- subjects ---------------------------------------------------------------------------------------------
    def terms_of(self, stored: StoredArticle) -> Weights:
        article = stored.article
        return self.keywords.weights(article.text, language_of(article.language), stored.content_hash)

    def subject(self, article_id: str) -> Subject:
        """An indexed story as the subject of its list."""
        stored = self.store.catalog.get(article_id)
        if stored is None:
            raise ArticleNotFound(article_id)
        vector = self.store.catalog.vector_for(stored.content_hash)
        if vector is None:  # pragma: no cover - the catalog guarantees a vector per article
            raise ArticleNotFound(article_id)
        return self.subject_of(stored, vector)

    def subject_by_key(self, key: int) -> Subject:
        """An indexed story, by catalog key, as the subject of its list."""
        stored = self.store.catalog.get_many([key]).get(key)
        vector = self.store.catalog.vector_for(stored.content_hash) if stored is not None else None
        if stored is None or vector is None:
            raise ArticleNotFound(str(key))
        return self.subject_of(stored, vector)

    def subject_of(self, stored: StoredArticle, vector: np.ndarray) -> Subject:
        a = stored.article
        return Subject(
            vector, self.terms_of(stored), stored.key, stored.copy_key, a.url, a.published, language_of(a.language)
        )

    def text_subject(self, text: str, vector: np.ndarray, language: str | None = None) -> Subject:
        """Free text (a draft, a search box) as a subject: no key, no URL, no date."""
        copy_key = hashlib.sha256(normalise_for_copy(text).encode("utf-8")).hexdigest()[:32]
        language = language_of(language)
        return Subject(vector, self.keywords.weights(text, language), copy_key=copy_key, language=language)

    # -- ranking ----------------------------------------------------------------------------------------------
    def rank(self, subject: Subject, k: int, filters: Filters = NO_FILTERS) -> RankedList:
        """The subject's list: ask the index for more candidates until k survive the pipeline or the archive
        is exhausted (filters applied after a nearest-neighbour search otherwise silently shrink the list)."""
        return self.rank_searched(subject, k, filters)[0]

    def rank_searched(self, subject: Subject, k: int, filters: Filters = NO_FILTERS) -> tuple[RankedList, Searched]:
        """:meth:`rank`, with the last search it made and the pool it ranked (what a write offers the newcomer
        to its neighbours from)."""
        with single_thread():
            total = int(self.store.index.ntotal)
            # the first pool a stored list is ranked from, whatever k: a live top 5 is the stored list's top 5
            n = min(total, pool_size(max(k, LIST_DEPTH)))
            while True:
                _, found = self.store.search(subject.vector, n) if n > 0 else (None, np.zeros(0, dtype=np.int64))
                keys = [int(key) for key in found]
                query, pool, rows = self._pool(subject, keys, filters)
                ranked = rank(query, pool, self.policy, k, exhausted=n >= total, searched=n)
                if ranked.complete:
                    return RankedList(_entries(pool, ranked), ranked.short), Searched(keys, pool, rows)
                n = min(total, n * 4)

    def rank_keys(
        self,
        subject: Subject,
        keys: Sequence[int],
        k: int,
        filters: Filters = NO_FILTERS,
        *,
        exhausted: bool = True,
        searched: int | None = None,
    ) -> tuple[Ranked, list[Entry]]:
        """The pipeline over given candidates (deleted keys -- tombstones of a graph index -- are skipped);
        ``searched``: how many nearest stories they were asked for."""
        with single_thread():
            query, pool = self.pool(subject, keys, filters)
        ranked = rank(query, pool, self.policy, k, exhausted=exhausted, searched=searched)
        return ranked, _entries(pool, ranked)

    def pool(self, subject: Subject, keys: Sequence[int], filters: Filters = NO_FILTERS) -> tuple[Query, Pool]:
        """The subject as a :class:`Query` and the candidates as a :class:`Pool` (codes shared between them).
        Candidates are read without their text (:meth:`~recommender.storage.catalog.Catalog.pool_rows`); a
        text is read only when its terms are not cached, and the filters' fields only when there are filters."""
        query, pool, _ = self._pool(subject, keys, filters)
        return query, pool

    def _pool(self, subject: Subject, keys: Sequence[int], filters: Filters) -> tuple[Query, Pool, dict[int, PoolRow]]:
        unique = list(dict.fromkeys(int(key) for key in keys))
        catalog = self.store.catalog
        rows = catalog.pool_rows(unique)
        present = [key for key in unique if key in rows]
        facts = [rows[key] for key in present]
        copies, pages, languages = Codes(), Codes(), Codes()
        query = Query(
            key=subject.key,
            copy_code=copies(subject.copy_key),
            url_code=pages(url_key(subject.url) if subject.url else None),
            days=days_of(subject.published),
            language=languages(subject.language),
            has_terms=bool(subject.terms),
            model_language=self.reads is None or subject.language is None or subject.language in self.reads,
        )
        matrix = (
            np.vstack([f.vector for f in facts]) if present else np.zeros((0, len(subject.vector)), dtype=np.float32)
        )
        spoken = [language_of(f.language) for f in facts]
        if subject.terms:
            keyword = self.keyword_cosines(subject.terms, present, facts, spoken)
        else:
            keyword = np.zeros(len(present), dtype=np.float64)
        cards = catalog.cards(present) if not filters.empty else {}
        pool = Pool(
            keys=np.asarray(present, dtype=np.int64),
            sims=matrix.astype(np.float64) @ subject.vector.astype(np.float64),
            keyword=keyword,
            copy_codes=np.asarray([copies(f.copy_key) for f in facts], dtype=np.int64),
            url_codes=np.asarray([pages(f.url_key) for f in facts], dtype=np.int64),
            days=np.asarray([days_of(published(f.published_at)) for f in facts], dtype=np.float64),
            languages=np.asarray([languages(language) for language in spoken], dtype=np.int64),
            pairwise=(matrix @ matrix.T).astype(np.float64),
            allowed=None
            if filters.empty
            else np.asarray([key in cards and filters.passes(cards[key]) for key in present], dtype=bool),
        )
        return query, pool, rows

    def has_terms(self, keys: Sequence[int], facts: Sequence[PoolRow]) -> dict[int, bool]:
        """Whether each story has keyword evidence (a term of two or more word characters)."""
        return {key: bool(terms) for key, terms in zip(keys, self.candidate_terms(keys, facts), strict=True)}

    def candidate_terms(
        self, keys: Sequence[int], facts: Sequence[PoolRow], vocabulary: Vocabulary | None = None
    ) -> list[Terms]:
        """The terms of each candidate (those not cached have their texts read in one query and tokenised)."""
        vocabulary = vocabulary or self.keywords.vocabulary
        items: list[Terms | None] = [vocabulary.cached(f.content_hash) for f in facts]
        cold = [key for key, item in zip(keys, items, strict=True) if item is None]
        texts = self.store.catalog.texts(cold) if cold else {}
        found: list[Terms] = []
        for key, fact, item in zip(keys, facts, items, strict=True):
            if item is None:
                text = texts.get(key)  # None: deleted since its row was read
                cache_key = fact.content_hash if text is not None else None
                item = self.keywords.terms(text or "", cache_key, vocabulary)
            found.append(item)
        return found

    def keyword_cosines(
        self, terms: Weights, keys: Sequence[int], facts: Sequence[PoolRow], spoken: Sequence[str | None]
    ) -> np.ndarray:
        """The keyword cosine of each candidate to the subject's ``terms``, all at once (candidates whose terms
        are not cached have their texts read in one query and tokenised)."""
        vocabulary = terms.vocabulary
        found = self.candidate_terms(keys, facts, vocabulary)
        ids, weights, lengths = self.keywords.weigh(found, spoken, vocabulary)
        return cosines(terms, ids, weights, lengths)


@dataclass(frozen=True)
class Searched:
    """The last search of a :meth:`Ranker.rank_searched`: the keys the index gave (nearest first, tombstones
    included), the pool ranked from them and what the catalog holds of each present candidate."""

    found: list[int]
    pool: Pool
    rows: dict[int, PoolRow]


def _entries(pool: Pool, ranked: Ranked) -> list[Entry]:
    return [
        Entry(int(pool.keys[i]), float(pool.sims[i]), float(s))
        for i, s in zip(ranked.picks, ranked.scores, strict=True)
    ]


def published(value: str | None) -> datetime | None:
    """A stored ``published_at`` as :attr:`Article.published` reads it."""
    return datetime.fromisoformat(value) if value else None
