"""From nearest neighbours to an "Also Read" list: each step a small pure function, each configurable.

Order of the pipeline (:func:`rank`): drop the story itself and its copies -> blend in keyword evidence ->
keep one link per copy group -> editors' filters -> minimum similarity -> freshness -> diversity -> top k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from recommender.articles import Article, url_key
from recommender.ranking.keywords import cosine
from recommender.ranking.policy import NO_FILTERS, Filters


@dataclass(frozen=True)
class Candidate:
    """A neighbour from the index: the article, its cosine to the query, and its vector (for copy/diversity)."""

    key: int
    article: Article
    copy_key: str
    similarity: float
    vector: np.ndarray | None = None
    score: float | None = None  # the ranking score (similarity blended with keywords, freshness); None = similarity
    terms: Mapping[str, float] | None = None  # unit TF-IDF vector of its text (keywords.weigh), for keyword evidence

    @property
    def rank_score(self) -> float:
        return self.similarity if self.score is None else self.score


@dataclass(frozen=True)
class QueryContext:
    """What the list is for: an indexed article (its id, copy key, URL, date) or free text (all None)."""

    article_id: str | None = None
    copy_key: str | None = None
    url: str | None = None
    published: datetime | None = None
    vector: np.ndarray | None = None
    terms: Mapping[str, float] | None = None  # unit TF-IDF vector of the query text; None = no keyword evidence


#: Default share of keyword evidence in the ranking score (docs/evaluation.md).
KEYWORD_WEIGHT = 0.7


@dataclass(frozen=True)
class RankingOptions:
    """Knobs of the pipeline. Defaults are what a newsroom gets without configuring anything."""

    k: int = 5
    #: Below this cosine a story is not related; the list is returned short instead of padded.
    min_similarity: float = 0.2
    #: At or above this cosine two stories are copies (wire republication, light edits).
    near_copy: float = 0.97
    #: Share of the ranking score that comes from keyword (TF-IDF) cosine; the rest is the embedding cosine.
    #: 0 = embeddings only. See docs/evaluation.md for the numbers behind the default.
    keyword_weight: float = KEYWORD_WEIGHT
    section: str | None = None
    language: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    #: Freshness: days after which a story's boost halves, relative to the current story's date. None = off.
    half_life_days: float | None = None
    #: How much freshness can move the score (0 = none, 1 = an ancient story scores zero).
    freshness_weight: float = 0.2
    #: MMR trade-off: 1.0 = pure relevance (off); lower values push near-identical angles apart.
    diversity_lambda: float = 1.0
    filters: Filters = NO_FILTERS


def is_copy_of_query(query: QueryContext, candidate: Candidate, near_copy: float) -> bool:
    """The story itself, a byte-for-byte or normalised copy, a URL variant, or a near-identical text."""
    if query.article_id is not None and candidate.article.id == query.article_id:
        return True
    if query.copy_key is not None and candidate.copy_key == query.copy_key:
        return True
    if query.url and candidate.article.url and url_key(query.url) == url_key(candidate.article.url):
        return True
    return candidate.similarity >= near_copy


def drop_query_copies(query: QueryContext, candidates: Sequence[Candidate], near_copy: float) -> list[Candidate]:
    """Never link a story to itself or to a copy of itself."""
    return [c for c in candidates if not is_copy_of_query(query, c, near_copy)]


def blend_keywords(query: QueryContext, candidates: Sequence[Candidate], weight: float) -> list[Candidate]:
    """Rank by ``(1 - weight) * embedding cosine + weight * keyword cosine``, best first.

    Shared names, places and numbers separate one real-world event from another of the same kind, and keywords
    work in languages the model does not know. ``similarity`` keeps the embedding cosine (the minimum-similarity
    and copy checks stay on the calibrated scale); the blend goes to ``score``. Without keyword vectors on the
    query (e.g. a vector-only query) or with ``weight`` 0 the order is unchanged.
    """
    if weight <= 0 or not query.terms:
        return list(candidates)
    query_terms = query.terms
    out = [
        replace(c, score=(1.0 - weight) * c.similarity + weight * (cosine(query_terms, c.terms) if c.terms else 0.0))
        for c in candidates
    ]
    out.sort(key=lambda c: c.rank_score, reverse=True)
    return out


def collapse_copies(candidates: Sequence[Candidate], near_copy: float) -> list[Candidate]:
    """At most one link per copy group: the first (best-ranked) of identical texts, URL variants or near copies."""
    kept: list[Candidate] = []
    kept_rows: list[int] = []  # rows of ``sims`` for kept candidates that have a vector
    seen_keys: set[str] = set()
    seen_urls: set[str] = set()
    with_vectors = [i for i, c in enumerate(candidates) if c.vector is not None]
    row_of = {i: n for n, i in enumerate(with_vectors)}
    # all pairwise cosines at once (one matrix product instead of a Python loop of dot products)
    sims = None
    if with_vectors:
        matrix = np.vstack([candidates[i].vector for i in with_vectors])
        sims = matrix @ matrix.T
    for i, cand in enumerate(candidates):
        if cand.copy_key in seen_keys:
            continue
        ukey = url_key(cand.article.url) if cand.article.url else None
        if ukey and ukey in seen_urls:
            continue
        row = row_of.get(i)
        if row is not None and kept_rows and float(np.max(sims[row, kept_rows])) >= near_copy:
            continue
        kept.append(cand)
        if row is not None:
            kept_rows.append(row)
        seen_keys.add(cand.copy_key)
        if ukey:
            seen_urls.add(ukey)
    return kept


def passes_filters(article: Article, options: RankingOptions) -> bool:
    """Editors' filters (:meth:`recommender.ranking.policy.Filters.passes`)."""
    own = Filters(options.section, options.language, options.since, options.until, options.exclude)
    return own.merged(options.filters).passes(article)


def freshness_factor(age_days: float | None, half_life_days: float | None, weight: float) -> float:
    """Multiplier in ``[1 - weight, 1]``: 1 for a story of the same day, halfway down after one half-life.

    A boost, never a sort or a cliff: a far better match from years ago still beats a weak fresh one.
    """
    if half_life_days is None or age_days is None or weight <= 0:
        return 1.0
    decay = math.pow(0.5, abs(age_days) / half_life_days)
    return (1.0 - weight) + weight * decay


def apply_freshness(query: QueryContext, candidates: Sequence[Candidate], options: RankingOptions) -> list[Candidate]:
    """Re-score by the ranking score x freshness relative to the query story's date (now, for free text)."""
    if options.half_life_days is None:
        return list(candidates)
    reference = query.published or datetime.now(UTC)
    out = []
    for cand in candidates:
        published = cand.article.published
        age = None if published is None else (published - reference).total_seconds() / 86400.0
        factor = freshness_factor(age, options.half_life_days, options.freshness_weight)
        out.append(replace(cand, score=cand.rank_score * factor))
    out.sort(key=lambda c: c.rank_score, reverse=True)
    return out


def mmr(candidates: Sequence[Candidate], k: int, lambda_: float) -> list[Candidate]:
    """Maximal marginal relevance: each pick trades relevance against similarity to what is already picked."""
    if lambda_ >= 1.0 or len(candidates) <= 1:
        return list(candidates)[:k]
    pool = list(candidates)
    picked: list[Candidate] = []
    while pool and len(picked) < k:

        def gain(c: Candidate) -> float:
            if not picked or c.vector is None:
                return lambda_ * c.rank_score
            redundancy = max(float(np.dot(c.vector, p.vector)) for p in picked if p.vector is not None)
            return lambda_ * c.rank_score - (1.0 - lambda_) * redundancy

        best = max(pool, key=gain)
        picked.append(best)
        pool.remove(best)
    return picked


@dataclass(frozen=True)
class Ranked:
    """The pipeline's output: up to k suggestions, and whether the candidate pool was cut short by quality."""

    items: list[Candidate]
    #: True when fewer than k passed: say so rather than pad with unrelated stories.
    short: bool


def rank(query: QueryContext, candidates: Sequence[Candidate], options: RankingOptions) -> Ranked:
    """Run the whole pipeline over candidates sorted by similarity (best first)."""
    pool = drop_query_copies(query, candidates, options.near_copy)
    pool = blend_keywords(query, pool, options.keyword_weight)
    pool = collapse_copies(pool, options.near_copy)
    pool = [c for c in pool if passes_filters(c.article, options)]
    pool = [c for c in pool if c.similarity >= options.min_similarity]
    pool = apply_freshness(query, pool, options)
    items = mmr(pool, options.k, options.diversity_lambda)[: options.k]
    return Ranked(items=items, short=len(items) < options.k)
