"""The library's front door: open an index and ask for "Also Read" lists by id, URL or free text."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from recommender.articles import Article
from recommender.controls import editorial
from recommender.controls.rules import RuleBook
from recommender.embedding import Embedder, load_embedder
from recommender.errors import ArticleNotFound, IndexMismatch
from recommender.ranking.keywords import KeywordModel, shared_terms
from recommender.ranking.lists import DEFAULT_VARIANT, Lists
from recommender.ranking.policy import NO_FILTERS, Filters, RankingPolicy
from recommender.ranking.search import Entry, language_of
from recommender.storage.catalog import LinkCard
from recommender.storage.store import IndexStore, Manifest

log = logging.getLogger(__name__)

#: Link cards (title, URL, date, section of a linked story) a :class:`Recommender` keeps between reads: about
#: 0.5 KB each, so at most about 10 MB.
LINK_CARDS = 20_000


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


@lru_cache(maxsize=8)
def _build_tag(model: str, built_at: str) -> str:
    """The build's part of the index version (asked several times a request: hashed once per build)."""
    return hashlib.sha256(f"{model}\n{built_at}".encode()).hexdigest()[:12]


def _pinned(card: Article, score: float) -> Suggestion:
    """A link an editor pinned (no ranking score: it was placed, not ranked)."""
    return Suggestion(card.id, card.title, card.url, score, card.published_at, card.section, None, pinned=True)


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
        self.lists = Lists(store)
        self._rules = RuleBook.load(store.catalog)
        self._link_cards: OrderedDict[int, LinkCard] = OrderedDict()  # least recently used first
        self._link_cards_seq = store.seq

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
        """Model, dimension, article count, index type, build time, ranking policy (``recommender info``)."""
        m = self.store.manifest
        facts: dict[str, Any] = {
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
        if self.variants:
            facts["variants"] = {name: p.to_dict() for name, p in self.variants.items()}
        return facts

    @property
    def policy(self) -> RankingPolicy:
        """The ranking policy the stored lists were computed with (recorded in the catalog)."""
        return self.lists.policy()

    @property
    def variants(self) -> dict[str, RankingPolicy]:
        """Named ranking policies under A/B test, each with lists of its own (:func:`recommender.writer.apply_policy`
        with ``variant=``)."""
        return {name: p for name, p in self.lists.policies.items() if name != DEFAULT_VARIANT}

    def follow_lists(self) -> bool:
        """Pick up lists another process recomputed (a policy change, a full refresh). True when it did."""
        return self.lists.reload()

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
    def index_version(self) -> str:
        """Changes whenever what a list shows may change (for ETags and cache keys): the build, the lists'
        version (every list recomputed) and the catalog's change number. All are shared by every process
        serving the folder (not the FAISS file's checksum, which each save changes), so replicas behind one
        load balancer agree on it. Editors' rules add their version and the count of expiries passed, so a rule
        change or an expiry changes it too."""
        manifest = self.store.manifest
        build = _build_tag(manifest.model, manifest.built_at)
        # asked several times a request (cached answers included): the clock only matters once rules exist
        rules = self._rules.version_tag(datetime.now(UTC)) if self._rules.version else ""
        return f"{build}-{self.lists.version}-{self.store.seq}{rules}"

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
    def keywords(self) -> KeywordModel:
        """TF-IDF vectors against this catalog's keyword snapshot (keyword evidence for the ranking)."""
        return self.lists.keywords()

    def shared_terms(self, article_id: str, other_id: str, n: int = 3) -> list[str]:
        """The terms that tie two stories together most (for "why this?")."""
        ranker = self.lists.ranker()
        a, b = self.store.catalog.get(article_id), self.store.catalog.get(other_id)
        if a is None or b is None:
            raise ArticleNotFound(article_id if a is None else other_id)
        return shared_terms(ranker.terms_of(a).as_dict(), ranker.terms_of(b).as_dict(), n)

    # -- related ----------------------------------------------------------------------------------------------
    def related(
        self,
        article_id: str,
        k: int = 5,
        filters: Filters = NO_FILTERS,
        variant: str = DEFAULT_VARIANT,
        *,
        explain: bool = False,
    ) -> RelatedList:
        """The k most related stories to an indexed article: never itself, never a copy of its text.

        The one read call: the CLI's ``similar``, the HTTP API, the widget and the static export all show what
        it returns. It is the article's stored list (filtered), and a live search only when the stored list
        cannot answer (k deeper than stored, filters that leave fewer than k, no list yet); both are the same
        pipeline over the same catalog, so they agree. Editors' active rules apply
        (:mod:`recommender.controls.editorial`); each link says how it relates in time, and with ``explain``
        why it is there.
        """
        answer = self._related(article_id, k, filters, variant, explain, live=True)
        assert answer is not None  # a live search always answers
        return answer

    def stored_related(
        self,
        article_id: str,
        k: int = 5,
        filters: Filters = NO_FILTERS,
        variant: str = DEFAULT_VARIANT,
        *,
        explain: bool = False,
    ) -> RelatedList | None:
        """:meth:`related` from the stored list alone; None where that needs a live search."""
        return self._related(article_id, k, filters, variant, explain, live=False)

    def _related(
        self, article_id: str, k: int, filters: Filters, variant: str, explain: bool, live: bool
    ) -> RelatedList | None:
        # the rules hook: blocks and exclusions become filters (the lookup refills from deeper entries), then pins
        plan = editorial.plan(self.store.catalog, self._rules, article_id, filters)
        if plan.hidden:
            return RelatedList([], True)
        found = self.lists.lookup_key(plan.key, k, plan.organic, variant)
        if found is not None:
            ranked = self._suggestions(*found)
        elif live:
            ranked = self.live_related(article_id, k, plan.organic, variant)
        else:
            return None
        terms = self.shared_terms if explain else None
        archive = int(self.store.index.ntotal)
        items, short = editorial.finish(
            self.store.catalog, plan, ranked.items, ranked.short, k, _pinned, terms, archive
        )
        return RelatedList(items, short)

    def live_related(
        self, article_id: str, k: int = 5, filters: Filters = NO_FILTERS, variant: str = DEFAULT_VARIANT
    ) -> RelatedList:
        """The list ranked now from a search (what a stored list holds, computed afresh)."""
        ranker = self.lists.ranker(variant)
        ranked = ranker.rank(ranker.subject(article_id), k, filters)
        return self._suggestions(ranked.entries, ranked.short)

    def related_to_url(
        self, url: str, k: int = 5, filters: Filters = NO_FILTERS, variant: str = DEFAULT_VARIANT
    ) -> RelatedList:
        """Related stories for an indexed page, found by its URL (tracking parameters and variants ignored)."""
        stored = self.store.catalog.get_by_url(url)
        if stored is None:
            raise ArticleNotFound(url)
        return self.related(stored.article.id, k, filters, variant)

    def related_to_text(
        self,
        text: str,
        k: int = 5,
        filters: Filters = NO_FILTERS,
        variant: str = DEFAULT_VARIANT,
        language: str | None = None,
    ) -> RelatedList:
        """Related stories for free text (a draft not yet published, a search box)."""
        return self.related_to_vector(text, self.embedder.embed([text])[0], k, filters, variant, language)

    def related_to_vector(
        self,
        text: str,
        vector: np.ndarray,
        k: int = 5,
        filters: Filters = NO_FILTERS,
        variant: str = DEFAULT_VARIANT,
        language: str | None = None,
    ) -> RelatedList:
        """:meth:`related_to_text` for a text already embedded (a server embeds outside its index lock)."""
        filters = filters.merged(self._rules.everywhere(datetime.now(UTC)))  # the rules hook: blocks, exclusions
        ranker = self.lists.ranker(variant)
        ranked = ranker.rank(ranker.text_subject(text, vector, language_of(language)), k, filters)
        return self._suggestions(ranked.entries, ranked.short)

    def _suggestions(self, entries: Sequence[Entry], short: bool) -> RelatedList:
        """Entries as links (one read of their cards), in order."""
        cards = self._links([e.key for e in entries])
        items = [
            Suggestion(a.id, a.title or "", a.url, e.similarity, a.published_at, a.section, e.score)
            for e in entries
            if (a := cards.get(e.key)) is not None
        ]
        return RelatedList(items, short or len(items) < len(entries))

    def _links(self, keys: Sequence[int]) -> dict[int, LinkCard]:
        """:meth:`Catalog.links`, kept between reads (:data:`LINK_CARDS` at most, least recently used out):
        a popular story is a link in many lists. Any catalog change (the change number moves) empties them."""
        cache = self._link_cards
        if self._link_cards_seq != self.store.seq:
            cache.clear()
            self._link_cards_seq = self.store.seq
        out: dict[int, LinkCard] = {}
        missing = []
        for key in keys:
            card = cache.get(key)
            if card is None:
                missing.append(key)
            else:
                cache.move_to_end(key)
                out[key] = card
        if missing:
            read = self.store.catalog.links(missing)
            cache.update(read)
            out.update(read)
            while len(cache) > LINK_CARDS:
                cache.popitem(last=False)
        return out

    # -- staying current ----------------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Apply catalog changes written by another process since this index was opened; returns how many."""
        count = self.store.catch_up()
        self.lists.reload()
        return count
