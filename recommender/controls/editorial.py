"""What the read call adds to a ranked list: editors' rules, pins, the time relation and "why this?".

:meth:`recommender.recommender.Recommender.related` asks :func:`plan` for the filters the active rules impose on
one story's list (merged with the request's), looks the list up (or searches) with them, and hands the links to
:func:`finish`, which places the pins and labels every link. Every surface (CLI, HTTP, widget, static export) goes
through that call, so a rule shows everywhere at once. This module sits below the Recommender: it gets the
catalog, the rules and the few callables it needs, and works on any dataclass with a link's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import Field, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from recommender.articles import Article
from recommender.controls.explain import Evidence, display_term, reason
from recommender.controls.rules import Pin, RuleBook
from recommender.errors import ArticleNotFound
from recommender.ranking.policy import Filters
from recommender.ranking.relation import relation, time_apart
from recommender.storage.catalog import Catalog


class Link(Protocol):
    """What is read of a link (:class:`recommender.recommender.Suggestion` has it)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def published_at(self) -> str | None: ...

    @property
    def section(self) -> str | None: ...

    @property
    def pinned(self) -> bool: ...


L = TypeVar("L", bound=Link)


@dataclass(frozen=True)
class Plan:
    """One story's list as the rules shape it: ``filters`` (request and rules) decide what may be shown, and
    ``organic`` is what the ranked part is read with (those filters, pinned stories left out: they have a place
    of their own)."""

    story: Article  # a link card: id, title, date, section, tags
    key: int
    filters: Filters
    organic: Filters
    pins: tuple[Pin, ...]
    hidden: bool


def plan(catalog: Catalog, rules: RuleBook, article_id: str, filters: Filters, now: datetime | None = None) -> Plan:
    """The active ``rules`` over ``article_id``'s list, with the request's ``filters``."""
    found = catalog.card_of(article_id, text=bool(len(rules)))  # the story's tags matter only to rules
    if found is None:
        raise ArticleNotFound(article_id)
    key, story = found
    active = rules.for_story(story, now or datetime.now(UTC))
    merged = filters if active.filters.empty else filters.merged(active.filters)
    organic = merged
    if active.pins:
        organic = merged.merged(Filters(exclude=frozenset(p.target for p in active.pins)))
    return Plan(story, key, merged, organic, active.pins, active.hidden)


def finish(
    catalog: Catalog,
    plan: Plan,
    ranked: Sequence[L],
    short: bool,
    k: int,
    pinned: Callable[[Article, float], L],
    shared_terms: Callable[[str, str, int], list[str]] | None = None,
    archive: int = 0,
) -> tuple[list[L], bool]:
    """``ranked`` (read with ``plan.organic``) with the pins in their places (made by ``pinned`` from a story's
    card and its cosine), cut to ``k``; each link labelled with its relation in time and, given ``shared_terms``
    (the Recommender's) and the ``archive``'s size, with the reason it is there. Returns the links and whether
    the list is short."""
    items = _with_pins(catalog, plan, list(ranked), pinned) if plan.pins else list(ranked)
    items = items[:k]
    story_date = plan.story.published
    labelled = []
    for item in items:
        other = datetime.fromisoformat(item.published_at) if item.published_at else None
        related_as = relation(story_date, other)
        why = _reason(catalog, plan, item, story_date, other, shared_terms, archive) if shared_terms else None
        labelled.append(_labelled(item, related_as, why) if related_as or why else item)
    return labelled, short and len(labelled) < k


def _labelled(item: L, related_as: str | None, why: str | None) -> L:
    """``item`` with its relation and reason set: :func:`dataclasses.replace` without its per-field checks (a
    tenth of a millisecond per list, on the path every read takes)."""
    clone: L = object.__new__(type(item))
    clone.__dict__.update(item.__dict__)
    clone.__dict__["relation"] = related_as
    clone.__dict__["reason"] = why
    return clone


def _with_pins(catalog: Catalog, plan: Plan, items: list[L], pinned: Callable[[Article, float], L]) -> list[L]:
    """Insert each pinned story at its position (counted from 1 in the final list); a pin whose story is gone,
    or that the request's filters or a block or exclusion rule leave out, is skipped: "never show" wins."""
    keys = {pin.target: catalog.key_of(pin.target) for pin in plan.pins}
    wanted = [key for key in keys.values() if key is not None]
    cards = catalog.cards(wanted)
    vectors = catalog.vectors_for_keys([plan.key, *wanted])
    mine = vectors.get(plan.key)
    for pin in plan.pins:  # in position order
        key = keys[pin.target]
        card = cards.get(key) if key is not None else None
        if key is None or card is None or card.id == plan.story.id or not plan.filters.passes(card):
            continue
        theirs = vectors.get(key)
        score = float(np.dot(mine, theirs)) if mine is not None and theirs is not None else 0.0
        items.insert(min(pin.position - 1, len(items)), pinned(card, score))
    return items


def _reason(
    catalog: Catalog,
    plan: Plan,
    item: Link,
    story_date: datetime | None,
    other: datetime | None,
    shared_terms: Callable[[str, str, int], list[str]],
    archive: int,
) -> str:
    terms = shared_terms(plan.story.id, item.id, 6)
    # a word in more than half the archive ("the", "in") is no evidence two stories belong together: not named
    counts = catalog.doc_freqs(terms)
    terms = [term for term in terms if counts.get(term, 0) <= archive / 2][:3]
    both = catalog.get_many([key for key in (catalog.key_of(item.id), plan.key) if key is not None])
    texts = [stored.article.text for stored in both.values()]  # usually parsed already (shared_terms read them)
    same_section = item.section if item.section and item.section == plan.story.section else None
    return reason(
        Evidence(
            shared_terms=tuple(display_term(term, texts) for term in terms),
            relation=relation(story_date, other),
            apart=time_apart(story_date, other) if story_date and other else None,
            days_apart=(other - story_date).total_seconds() / 86400 if story_date and other else None,
            section=same_section,
            similarity=item.score,
            pinned=item.pinned,
        )
    )
