"""The library's front door: open an index and ask for "Also Read" lists by id, URL or free text."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.articles import Article
from recommender.controls.rules import RuleBook
from recommender.embedding import Embedder, load_embedder
from recommender.errors import ArticleNotFound, IndexMismatch
from recommender.ranking.keywords import KeywordWeights
from recommender.ranking.pipeline import Candidate, QueryContext, Ranked, RankingOptions, rank
from recommender.ranking.policy import NO_FILTERS, Filters, RankingPolicy
from recommender.storage.catalog import Catalog
from recommender.storage.store import IndexStore, Manifest


def read_policy(catalog: Catalog) -> RankingPolicy:
    """The policy recorded in a catalog (the defaults for an index that never recorded one)."""
    import json

    raw = catalog.get_meta("ranking_policy")
    return RankingPolicy.from_mapping(json.loads(raw)) if raw else RankingPolicy()


def lists_version(catalog: Catalog) -> int:
    """How many times every stored list was recomputed (a build, a policy change): part of the index version."""
    return int(catalog.get_meta("lists_version") or 0)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    """One "Also Read" link."""

    id: str
    title: str
    url: str | None
    score: float  # cosine similarity to the query story, higher is closer
    published_at: str | None
    section: str | None
    #: The ranking score the list is ordered by (cosine blended with keyword evidence, times freshness); None
    #: where unknown (lists stored before it was kept).
    relevance: float | None = None
    #: Placed by an editor's pin (recommender.controls.rules), not by the ranking.
    pinned: bool = False
    #: "Why this?": a short sentence from the evidence (only when asked for: ``explain``).
    reason: str | None = None
    #: same-day, follow-up or background (recommender.ranking.relation); None when either story has no date.
    relation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one link; ``relation``, ``pinned`` and ``reason`` appear only when they apply."""
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "score": round(self.score, 4),
            "relevance": None if self.relevance is None else round(self.relevance, 4),
            "published_at": self.published_at,
            "section": self.section,
        }
        if self.relation is not None:
            out["relation"] = self.relation
        if self.pinned:
            out["pinned"] = True
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class RelatedList:
    """Suggestions for one story; ``short`` says fewer than k related stories exist (nothing was padded)."""

    items: list[Suggestion]
    short: bool

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.items]


def _suggestion(c: Candidate) -> Suggestion:
    a = c.article
    return Suggestion(a.id, a.title, a.url, float(c.similarity), a.published_at, a.section, float(c.rank_score))


def _built_with(build: dict[str, Any]) -> str | None:
    """How the last full build ran: ``local``, or ``ray (N workers)`` (the manifest's ``build``)."""
    method = build.get("method")
    if method == "ray" and build.get("workers"):
        return f"ray ({build['workers']} workers)"
    return method


class Recommender:
    """An opened index. Cheap to query many times; open once per process."""

    def __init__(self, store: IndexStore, *, embedder: Embedder | None = None, backend: str | None = None) -> None:
        self.store = store
        self._embedder = embedder
        self._backend = backend or store.manifest.backend
        self._policy = read_policy(store.catalog)
        self._lists_version = lists_version(store.catalog)
        self._rules = RuleBook.load(store.catalog)

    @classmethod
    def open(
        cls,
        index_dir: Path | str = "index",
        *,
        model: str | None = None,
        embedder: Embedder | None = None,
        backend: str | None = None,
        check_same_thread: bool = True,
    ) -> Recommender:
        """Open the index in ``index_dir``; ``model`` (if given) must be the one it was built with."""
        store = IndexStore.open(Path(index_dir), model=model, check_same_thread=check_same_thread)
        if embedder is not None and embedder.name != store.manifest.model:
            store.close()
            raise IndexMismatch(f"index was built with {store.manifest.model!r}, embedder is {embedder.name!r}")
        return cls(store, embedder=embedder, backend=backend)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts ------------------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self.store.manifest

    def info(self) -> dict[str, Any]:
        """Model, dimension, article count, index type, build time (what ``recommender info`` prints)."""
        m = self.store.manifest
        return {
            "model": m.model,
            "backend": m.backend,
            "dimension": m.dimension,
            "articles": self.store.catalog.count(),
            "index_type": m.index_type,
            "built_at": m.built_at,
            "built_with": _built_with(m.build),
            "updated_at": m.updated_at,
            "recall_at_10": m.recall_at_10,
            "index_bytes": m.index_bytes,
            "index_version": self.index_version,
            "index_dir": str(self.store.folder),
            "ranking": self.policy.to_dict(),
        }

    @property
    def policy(self) -> RankingPolicy:
        """The ranking policy the stored lists were computed with (recorded in the catalog)."""
        return self._policy

    def adopt_policy(self, policy: RankingPolicy) -> None:
        """Rank with ``policy`` from now on (inside the transaction that records it and recomputes the lists)."""
        self._policy = policy

    def follow_lists(self) -> bool:
        """Pick up lists another process recomputed (a policy change, a full refresh). True when they were."""
        current = lists_version(self.store.catalog)
        if current == self._lists_version:
            return False
        self._policy, self._lists_version = read_policy(self.store.catalog), current
        return True

    @property
    def rules(self) -> RuleBook:
        """Editors' rules (pins, blocks, exclusions) as of the catalog's rules version; applied at read time."""
        return self._rules

    def follow_rules(self) -> bool:
        """Pick up rules another process (or this one) changed in the catalog. True when they had changed."""
        if self.store.catalog.rules_version() == self._rules.version:
            return False
        self._rules = RuleBook.load(self.store.catalog)
        return True

    @property
    def options(self) -> RankingOptions:
        return self._options(5, NO_FILTERS)

    @property
    def index_version(self) -> str:
        """Changes whenever the article set changes (for ETags and cache keys): the build plus the catalog's
        change number. Both are shared by every process serving the folder (not the FAISS file's checksum,
        which each save changes), so replicas behind one load balancer agree on it. Editors' rules add their
        version and the count of expiries passed, so a rule change or an expiry changes it too."""
        import hashlib
        from datetime import UTC, datetime

        manifest = self.store.manifest
        build = hashlib.sha256(f"{manifest.model}\n{manifest.built_at}".encode()).hexdigest()[:12]
        return f"{build}-{self._lists_version}-{self.store.seq}{self._rules.version_tag(datetime.now(UTC))}"

    def get(self, article_id: str) -> Article:
        stored = self.store.catalog.get(article_id)
        if stored is None:
            raise ArticleNotFound(article_id)
        return stored.article

    def find(self, id_or_url: str) -> Article:
        """An article by id, or by URL when no id matches and the value looks like one."""
        stored = self.store.catalog.get(id_or_url)
        if stored is None and "://" in id_or_url:
            stored = self.store.catalog.get_by_url(id_or_url)
        if stored is None:
            raise ArticleNotFound(id_or_url)
        return stored.article

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.store.manifest.model, self._backend)
        return self._embedder

    @property
    def keywords(self) -> KeywordWeights:
        """TF-IDF vectors against this catalog's document frequencies (keyword evidence for the ranking)."""
        current = getattr(self, "_keywords", None)
        if current is None or current.catalog is not self.store.catalog:
            current = self._keywords = KeywordWeights(self.store.catalog)
        return current

    # -- related ----------------------------------------------------------------------------------------------
    def related(
        self, article_id: str, k: int = 5, filters: Filters = NO_FILTERS, *, explain: bool = False
    ) -> RelatedList:
        """The k most related stories to an indexed article: never itself, never a copy of its text.

        The one read call: the CLI's ``similar``, the HTTP API, the widget and the static export all show what
        it returns. It is the article's stored list (filtered), and a live search only when the stored list
        cannot answer (k deeper than stored, filters that leave fewer than k, no list yet). Editors' active
        rules apply (:mod:`recommender.controls.editorial`); each suggestion says how it relates in time, and
        with ``explain`` why it is there.
        """
        answer = self._related(article_id, k, filters, explain, live=True)
        assert answer is not None  # a live search always answers
        return answer

    def stored_related(
        self, article_id: str, k: int = 5, filters: Filters = NO_FILTERS, *, explain: bool = False
    ) -> RelatedList | None:
        """:meth:`related` from the stored list alone; None where that needs a live search."""
        return self._related(article_id, k, filters, explain, live=False)

    def _related(self, article_id: str, k: int, filters: Filters, explain: bool, live: bool) -> RelatedList | None:
        from recommender.controls import editorial
        from recommender.ranking import lists

        plan = editorial.plan(self, article_id, filters)  # the rules hook: blocks and exclusions as filters, pins
        if plan.hidden:
            return RelatedList([], True)
        ranked = lists.lookup(self, article_id, k, plan.organic)
        if ranked is None:
            if not live:
                return None
            ranked = self.live_related(article_id, k, plan.organic)
        return editorial.finish(self, plan, ranked, k, explain)

    def shared_terms(self, article_id: str, other_id: str, n: int = 3) -> list[str]:
        """The ``n`` key words that weigh most in both stories' keyword vectors, strongest first ("why this?")."""
        catalog = self.store.catalog
        keys = {article_id: catalog.key_of(article_id), other_id: catalog.key_of(other_id)}
        rows = catalog.get_many([key for key in keys.values() if key is not None])
        vectors = []
        for story, key in keys.items():
            row = rows.get(key) if key is not None else None
            if row is None:
                raise ArticleNotFound(story)
            vectors.append(self.keywords.for_article(row.article, row.content_hash))
        mine, theirs = vectors[0], vectors[-1]
        shared = mine.keys() & theirs.keys()
        # a word in more than half the archive ("the", "said") is no evidence that two stories belong together
        common = catalog.doc_freqs(shared)
        half = catalog.count() / 2
        shared = {term for term in shared if common.get(term, 0) <= half}
        return sorted(shared, key=lambda term: (-mine[term] * theirs[term], term))[:n]

    def live_related(self, article_id: str, k: int = 5, filters: Filters = NO_FILTERS) -> RelatedList:
        """The list ranked now from a search (what a stored list holds, computed afresh)."""
        ranked = self.rank_for(article_id, k, filters)
        return RelatedList([_suggestion(c) for c in ranked.items], ranked.short)

    def _query_for(self, article_id: str) -> tuple[QueryContext, np.ndarray]:
        stored = self.store.catalog.get(article_id)
        if stored is None:
            raise ArticleNotFound(article_id)
        vector = self.store.catalog.vector_for(stored.content_hash)
        if vector is None:  # pragma: no cover - the catalog guarantees a vector per article
            raise ArticleNotFound(article_id)
        query = QueryContext(
            article_id=stored.article.id,
            copy_key=stored.copy_key,
            url=stored.article.url,
            published=stored.article.published,
            vector=vector,
            terms=self.keywords.for_article(stored.article, stored.content_hash),
        )
        return query, vector

    def rank_for(self, article_id: str, k: int = 5, filters: Filters = NO_FILTERS) -> Ranked:
        """Like :meth:`live_related`, but the ranked candidates themselves (with catalog keys), for precomputing."""
        query, vector = self._query_for(article_id)
        return self._search_until_k(query, vector, self._options(k, filters))

    def rerank(self, article_id: str, keys: Sequence[int], k: int) -> Ranked:
        """Rank a given candidate set (e.g. a stored list plus a newly published story) for an article."""
        query, vector = self._query_for(article_id)
        return rank(query, self.candidates_for_keys(vector, keys), self._options(k, NO_FILTERS))

    def related_to_url(self, url: str, k: int = 5, filters: Filters = NO_FILTERS) -> RelatedList:
        """Related stories for an indexed page, found by its URL (tracking parameters and variants ignored)."""
        stored = self.store.catalog.get_by_url(url)
        if stored is None:
            raise ArticleNotFound(url)
        return self.related(stored.article.id, k, filters)

    def related_to_text(self, text: str, k: int = 5, filters: Filters = NO_FILTERS) -> RelatedList:
        """Related stories for free text (a draft not yet published, a search box)."""
        return self.related_to_vector(text, self.embedder.embed([text])[0], k, filters)

    def related_to_vector(
        self, text: str, vector: np.ndarray, k: int = 5, filters: Filters = NO_FILTERS
    ) -> RelatedList:
        """:meth:`related_to_text` for a text already embedded (a server embeds outside its index lock)."""
        import hashlib
        from datetime import UTC, datetime

        from recommender.articles import normalise_for_copy

        filters = filters.merged(self.rules.everywhere(datetime.now(UTC)))  # the rules hook: blocks, exclusions
        copy_key = hashlib.sha256(normalise_for_copy(text).encode("utf-8")).hexdigest()[:32]
        query = QueryContext(copy_key=copy_key, vector=vector, terms=self.keywords.vector(text))
        ranked = self._search_until_k(query, vector, self._options(k, filters))
        return RelatedList([_suggestion(c) for c in ranked.items], ranked.short)

    def _options(self, k: int, filters: Filters) -> RankingOptions:
        policy = self.policy
        return RankingOptions(
            k=k,
            min_similarity=policy.min_similarity,
            near_copy=policy.near_copy,
            keyword_weight=policy.keyword_weight,
            section=filters.section,
            language=filters.language,
            since=filters.since,
            until=filters.until,
            exclude=filters.exclude,
            filters=filters,
            half_life_days=policy.time_half_life_days if policy.time_weight > 0 else None,
            freshness_weight=policy.time_weight,
            diversity_lambda=1.0 - policy.diversity,
        )

    def _search_until_k(self, query: QueryContext, vector: np.ndarray, opts: RankingOptions) -> Ranked:
        """Ask the index for more candidates until k survive the pipeline or the archive is exhausted.

        Filters applied after a nearest-neighbour search otherwise silently shrink the list.
        """
        total = int(self.store.index.ntotal)
        n = min(total, max(4 * opts.k + 16, 32))
        while True:
            candidates = self._candidates(vector, n)
            ranked = rank(query, candidates, opts)
            exhausted = n >= total
            weakest = candidates[-1].similarity if candidates else -1.0
            # Stop when the list is full, the archive is exhausted, or every further candidate is below the cut.
            if len(ranked.items) >= opts.k or exhausted or weakest < opts.min_similarity:
                return ranked
            n = min(total, n * 4)

    def _candidates(self, vector: np.ndarray, n: int) -> list[Candidate]:
        """Nearest entries, mapped to catalog rows and re-scored exactly from the stored vectors."""
        _, keys = self.store.search(vector, n)
        return self.candidates_for_keys(vector, [int(k) for k in keys])

    def candidates_for_keys(self, vector: np.ndarray, keys: Sequence[int]) -> list[Candidate]:
        """Catalog keys as candidates scored against ``vector``, best first; deleted keys (tombstones) dropped."""
        unique = list(dict.fromkeys(int(k) for k in keys))
        rows = self.store.catalog.get_many(unique)
        vectors = self.store.catalog.vectors_for_keys(list(rows))
        out = []
        for key in unique:
            row = rows.get(key)
            if row is None or key not in vectors:
                continue  # deleted since the index was written (a tombstone)
            vec = vectors[key]
            terms = self.keywords.for_article(row.article, row.content_hash)
            out.append(Candidate(key, row.article, row.copy_key, float(np.dot(vec, vector)), vec, terms=terms))
        out.sort(key=lambda c: c.similarity, reverse=True)
        return out

    # -- staying current ----------------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Apply catalog changes written by another process since this index was opened; returns how many."""
        return self.store.catch_up()
