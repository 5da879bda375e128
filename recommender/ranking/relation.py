"""How a suggested story relates in time to the story it is shown under: the same day, a follow-up, background.

A reader deciding whether to click wants to know whether a link is more of today's news, what happened next, or
the history behind it. Only the two publication dates decide it (no clock, no index), so the label is the same
in the stored list, a live search, the export and every replica. Stories without a date get no label.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

Relation = Literal["same-day", "follow-up", "background"]

#: Stories published less than this apart are "same-day" (a rolling 24 hours, not the calendar day: a story at
#: 23:00 and its update at 01:00 belong together).
SAME_DAY = timedelta(hours=24)


def relation(story: datetime | None, other: datetime | None) -> Relation | None:
    """``other``'s relation to ``story``: ``same-day`` when less than :data:`SAME_DAY` apart, ``follow-up`` when
    published later, ``background`` when earlier; None when either has no date."""
    if story is None or other is None:
        return None
    apart = other - story
    if abs(apart) < SAME_DAY:
        return "same-day"
    return "follow-up" if apart > timedelta(0) else "background"


def time_apart(story: datetime, other: datetime) -> str:
    """``other``'s distance in time from ``story`` in words an editor reads at a glance: ``the same day``,
    ``1 day later``, ``3 weeks earlier``, ``2 years earlier`` (rounded down to the largest whole unit)."""
    apart = other - story
    if abs(apart) < SAME_DAY:
        return "the same day"
    days = int(abs(apart) / timedelta(days=1))
    for unit, size in (("year", 365), ("month", 30), ("week", 7), ("day", 1)):
        if days >= size:
            count = days // size
            amount = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    return f"{amount} {'later' if apart > timedelta(0) else 'earlier'}"
