"""What the read call adds to a ranked list: editors' rules, pins, the time relation and "why this?".

:meth:`recommender.recommender.Recommender.related` asks :func:`plan` for the filters the active rules impose on
one story's list (merged with the request's), looks the list up (or searches) with them, and hands the result to
:func:`finish`, which places the pins and labels every suggestion. Every surface (CLI, HTTP, widget, static
export) goes through that call, so a rule shows everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from recommender.articles import Article
from recommender.controls.explain import Evidence, display_term, reason
from recommender.controls.rules import Pin
from recommender.errors import ArticleNotFound
from recommender.ranking.policy import Filters
from recommender.ranking.relation import relation, time_apart

if TYPE_CHECKING:
    from recommender.recommender import Recommender, RelatedList, Suggestion


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


def plan(rec: Recommender, article_id: str, filters: Filters, now: datetime | None = None) -> Plan:
    """The active rules over ``article_id``'s list, with the request's ``filters``."""
    catalog = rec.store.catalog
    key = catalog.key_of(article_id)
    story = catalog.cards([key]).get(key) if key is not None else None
    if key is None or story is None:
        raise ArticleNotFound(article_id)
    rules = rec.rules.for_story(story, now or datetime.now(UTC))
    merged = filters if rules.filters.empty else filters.merged(rules.filters)
    organic = merged
    if rules.pins:
        organic = merged.merged(Filters(exclude=frozenset(p.target for p in rules.pins)))
    return Plan(story, key, merged, organic, rules.pins, rules.hidden)


def finish(rec: Recommender, plan: Plan, ranked: RelatedList, k: int, explain: bool = False) -> RelatedList:
    """``ranked`` (read with ``plan.organic``) with the pins in their places, cut to ``k``; each suggestion
    labelled with its relation in time and, with ``explain``, the reason it is there."""
    from recommender.recommender import RelatedList

    items = _with_pins(rec, plan, list(ranked.items)) if plan.pins else list(ranked.items)
    items = items[:k]
    story_date = plan.story.published
    labelled = []
    for item in items:
        other = _date(item.published_at)
        related_as = relation(story_date, other)
        why = _reason(rec, plan, item, story_date, other) if explain else None
        labelled.append(replace(item, relation=related_as, reason=why) if related_as or why else item)
    return RelatedList(labelled, ranked.short and len(labelled) < k)


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _with_pins(rec: Recommender, plan: Plan, items: list[Suggestion]) -> list[Suggestion]:
    """Insert each pinned story at its position (counted from 1 in the final list); a pin whose story is gone,
    or that the request's filters or a block or exclusion rule leave out, is skipped: "never show" wins."""
    from recommender.recommender import Suggestion

    catalog = rec.store.catalog
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
        pinned = Suggestion(card.id, card.title, card.url, score, card.published_at, card.section, None, pinned=True)
        items.insert(min(pin.position - 1, len(items)), pinned)
    return items


def _reason(rec: Recommender, plan: Plan, item: Suggestion, story_date: datetime | None, other: datetime | None) -> str:
    terms = rec.shared_terms(plan.story.id, item.id, 3)
    catalog = rec.store.catalog
    both = catalog.get_many([key for key in (catalog.key_of(item.id), plan.key) if key is not None])
    texts = [stored.article.text for stored in both.values()]  # parsed already (shared_terms read them)
    shown = tuple(display_term(term, texts) for term in terms)
    same_section = item.section if item.section and item.section == plan.story.section else None
    days = (other - story_date).total_seconds() / 86400 if story_date and other else None
    return reason(
        Evidence(
            shared_terms=shown,
            relation=relation(story_date, other),
            apart=time_apart(story_date, other) if story_date and other else None,
            days_apart=days,
            section=same_section,
            similarity=item.score,
            pinned=item.pinned,
        )
    )
