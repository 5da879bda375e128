from __future__ import annotations

import pytest

from recommender.articles import (
    MAX_BODY_CHARS,
    Article,
    compose_text,
    normalise_for_copy,
    parse_datetime,
    url_key,
    validate_article,
)
from recommender.errors import InvalidArticle


def test_valid_article_keeps_unknown_fields_as_metadata() -> None:
    a = validate_article({"id": "x1", "title": " T ", "body": "B", "event": "e1", "author": "Ann"}, "f:1")
    assert a == Article(id="x1", title="T", body="B", metadata={"event": "e1", "author": "Ann"})
    assert a.to_dict()["event"] == "e1"


def test_numeric_id_becomes_string() -> None:
    assert validate_article({"id": 42, "title": "T"}, "f:1").id == "42"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"title": "T"}, "missing 'id'"),
        ({"id": "  ", "title": "T"}, "missing 'id'"),
        ({"id": True, "title": "T"}, "missing 'id'"),
        ({"id": "x"}, "neither title nor body"),
        ({"id": "x", "title": "", "body": "  "}, "neither title nor body"),
        ({"id": "x", "title": 5}, "must be a string"),
        ({"id": "x", "title": "T", "published_at": "yesterday"}, "not an ISO 8601 date"),
        ({"id": "x", "title": "T", "published_at": "2024-13-45"}, "not an ISO 8601 date"),
        ({"id": "x", "title": "T", "tags": {"a": 1}}, "'tags' must be a list"),
        ({"id": "x", "title": "T", "body": "b" * (MAX_BODY_CHARS + 1)}, "limit"),
        ({"id": "x\ny", "title": "T"}, "control characters"),
        (["not", "an", "object"], "expected an object"),
    ],
)
def test_invalid_articles_name_their_location(raw: object, reason: str) -> None:
    with pytest.raises(InvalidArticle) as info:
        validate_article(raw, "feed.jsonl:7")
    assert str(info.value).startswith("feed.jsonl:7")
    assert reason in str(info.value)


def test_dates_are_normalised_to_utc() -> None:
    assert parse_datetime("2024-03-01T10:00:00+02:00") == "2024-03-01T08:00:00+00:00"
    assert parse_datetime("2024-03-01T10:00:00Z") == "2024-03-01T10:00:00+00:00"
    assert parse_datetime("2024-03-01") == "2024-03-01T00:00:00+00:00"


def test_tags_from_comma_separated_string() -> None:
    assert validate_article({"id": "x", "title": "T", "tags": "a, b,,c"}, "f").tags == ("a", "b", "c")


def test_compose_text_joins_title_and_body_once() -> None:
    assert compose_text("Title", "Body.") == "Title. Body."
    assert compose_text("Title?", "Body.") == "Title? Body."
    assert compose_text("", "Body") == "Body"
    assert compose_text("Title", "") == "Title"


def test_content_hash_follows_text_record_hash_follows_everything() -> None:
    a = Article(id="1", title="T", body="B", section="x")
    b = Article(id="1", title="T", body="B", section="y")
    assert a.content_hash == b.content_hash
    assert a.record_hash != b.record_hash


def test_copy_key_ignores_case_punctuation_and_spacing() -> None:
    a = Article(id="1", title="Flood hits city", body="Rain, rain!")
    b = Article(id="2", title="FLOOD hits city.", body="rain   rain")
    assert a.copy_key == b.copy_key
    assert normalise_for_copy("Ça va?") == "ça va"


@pytest.mark.parametrize(
    "variant",
    [
        "https://www.news.example/story/1",
        "http://news.example/story/1/",
        "https://news.example/story/1?utm_source=x&utm_medium=y",
        "https://news.example/story/1#comments",
        "https://m.news.example/story/1/amp",
    ],
)
def test_url_variants_share_a_key(variant: str) -> None:
    assert url_key(variant) == url_key("https://news.example/story/1")


def test_url_key_keeps_identifying_query() -> None:
    assert url_key("https://n.example/a?id=1") != url_key("https://n.example/a?id=2")
