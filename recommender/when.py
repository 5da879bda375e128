"""Times an editor types: an ISO date or date-time, or a duration from now such as ``48h`` or ``7d``.

Used for a rule's expiry (``--until``) and a report's start (``--since``). A date without a time means the whole
day: as an expiry it ends at the next midnight UTC ("until Friday" includes Friday); as a start it begins at that
day's midnight UTC. A date-time without a zone is UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from recommender.errors import InvalidTime

_DURATION = re.compile(r"^\s*(\d{1,6})\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"m": timedelta(minutes=1), "min": timedelta(minutes=1), "h": timedelta(hours=1)}
_UNITS |= {"d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_when(text: str, now: datetime, *, end_of_day: bool = False, past: bool = False) -> datetime:
    """``text`` as an aware UTC date-time.

    ``30m``, ``48h``, ``7d``, ``2w`` count from ``now``: forwards, or backwards with ``past`` (``--since 7d``).
    A bare date is that day's start, or with ``end_of_day`` the next day's start (an expiry includes the day).
    """
    match = _DURATION.match(text)
    if match:
        delta = int(match.group(1)) * _UNITS[match.group(2).lower()]
        return now - delta if past else now + delta
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidTime(
            f"{text!r} is not a date (2026-12-01), a date-time (2026-12-01T18:00) or a duration (30m, 48h, 7d, 2w)"
        ) from None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(UTC)


def aware(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken as UTC (what typer hands over for ``--since 2026-12-01``)."""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


def iso(value: datetime) -> str:
    """A UTC date-time as written in rules, events and reports: ``2026-12-01T18:00:00Z``."""
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"  # strftime's, 3x faster
