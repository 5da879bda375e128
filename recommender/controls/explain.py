""" "Why this?": one short sentence per suggestion, from the evidence that put it in the list.

The evidence is what the ranking itself used -- the key words both stories share (keyword weights), how they
relate in time (:mod:`recommender.ranking.relation`), the section, how close the embeddings are -- plus whether an
editor pinned it. Everything here is a pure function of that evidence, so a reason can be checked in a test and
costs microseconds; gathering the evidence costs a keyword lookup per suggestion (see
:func:`recommender.controls.editorial.finish`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from recommender.ranking.relation import Relation

#: Close in time and this close in meaning (embedding cosine): say "same event". Measured with
#: ``scripts/same_event.py`` on the dated AllSides set (story-level event labels, default model and backend): of the
#: 503 pairs published at most two days apart with cosine 0.7 or more, 89.9 % were the same event (0.6: 83.8 %;
#: 0.8: 95.8 % of only 265 pairs). See docs/evaluation.md.
SAME_EVENT_COSINE = 0.7
#: ... and at most this many days apart.
SAME_EVENT_DAYS = 2.0
#: Shared words named in a reason.
TERMS_SHOWN = 3


@dataclass(frozen=True)
class Evidence:
    """What is known about one suggestion relative to the story it is shown under."""

    shared_terms: tuple[str, ...] = ()  # as displayed, strongest first
    relation: Relation | None = None
    apart: str | None = None  # "2 days later", from recommender.ranking.relation.time_apart
    days_apart: float | None = None
    section: str | None = None  # the section both stories are in, if they are in the same one
    similarity: float | None = None  # embedding cosine
    pinned: bool = False


def reason(evidence: Evidence) -> str:
    """A sentence an editor or reader understands, e.g. ``Follow-up, 2 days later; both mention Cheeks, 76ers and
    coach; also in Sport.`` Never empty."""
    parts: list[str] = []
    if evidence.pinned:
        parts.append("picked by an editor")
    timing = _timing(evidence)
    if timing:
        parts.append(timing)
    if evidence.shared_terms:
        parts.append("both mention " + _and(evidence.shared_terms[:TERMS_SHOWN]))
    elif not evidence.pinned:
        parts.append("close in meaning, with no key word in common")
    if evidence.section:
        parts.append(f"also in {evidence.section}")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def _timing(evidence: Evidence) -> str | None:
    if evidence.relation is None:
        return None
    close = evidence.days_apart is not None and abs(evidence.days_apart) <= SAME_EVENT_DAYS
    if close and evidence.similarity is not None and evidence.similarity >= SAME_EVENT_COSINE:
        return f"same event, {evidence.apart}" if evidence.relation != "same-day" else "same event, the same day"
    if evidence.relation == "same-day":
        return "published the same day"
    label = "follow-up" if evidence.relation == "follow-up" else "background"
    return f"{label}, {evidence.apart}" if evidence.apart else label


def _and(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def display_term(term: str, texts: Iterable[str]) -> str:
    """``term`` (a lower-cased keyword) as the stories write it inside a sentence -- ``Cheeks``, ``76ers``,
    ``NATO`` -- so names read as names and other words stay lower-case. The first occurrence that does not open a
    sentence or a headline decides (a capital there says nothing); with none, the term as it is."""
    pattern = re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)
    for text in texts:
        for found in pattern.finditer(text):
            before = text[: found.start()].rstrip()
            if before and before[-1] not in ".!?:;\"'\u201c\u2018(":
                return found.group(0)
    return term
