"""How a suggestion relates in time to its story: one pure function of the two dates (issue 12, item 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recommender.ranking.relation import relation, time_apart

STORY = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (STORY, "same-day"),
        (STORY + timedelta(hours=23, minutes=59), "same-day"),
        (STORY - timedelta(hours=23, minutes=59), "same-day"),  # 12:01 the day before: within 24 hours
        (STORY + timedelta(hours=24), "follow-up"),
        (STORY + timedelta(days=40), "follow-up"),
        (STORY - timedelta(hours=24), "background"),
        (STORY - timedelta(days=800), "background"),
    ],
)
def test_relation_from_the_two_dates(other: datetime, expected: str) -> None:
    assert relation(STORY, other) == expected


def test_no_relation_without_both_dates() -> None:
    assert relation(None, STORY) is None and relation(STORY, None) is None and relation(None, None) is None


def test_relation_compares_instants_across_time_zones() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=1))
    assert relation(STORY, datetime(2024, 3, 11, 12, 30, tzinfo=paris)) == "same-day"  # 11:30 UTC: 23.5 h
    assert relation(STORY, datetime(2024, 3, 11, 13, 0, tzinfo=paris)) == "follow-up"  # exactly 24 h later


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(hours=3), "the same day"),
        (timedelta(days=1), "1 day later"),
        (timedelta(days=-2, hours=-5), "2 days earlier"),
        (timedelta(days=13), "1 week later"),
        (timedelta(days=-45), "1 month earlier"),
        (timedelta(days=400), "1 year later"),
        (timedelta(days=-1100), "3 years earlier"),
    ],
)
def test_time_apart_in_words(delta: timedelta, words: str) -> None:
    assert time_apart(STORY, STORY + delta) == words
