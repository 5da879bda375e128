"""Hypothesis throws garbage at every reader and the validator: each case ends in a valid article or a
clear error naming the place, never a traceback and never a hang."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.articles import Article, validate_article
from recommender.errors import InvalidArticle
from recommender.ingest.sources import Record, read_csv, read_feed, read_html_file, read_jsonl

FUZZ = settings(
    max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
field_values = st.one_of(
    json_values,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),  # control characters, NULs, emoji, RTL marks
    st.sampled_from(["", " ", "2024-02-30", "2024-13-01T00:00:00", "yesterday", "1e309", "\x00", "é" * 3000]),
)
articles = st.dictionaries(
    st.sampled_from(["id", "title", "body", "url", "published_at", "section", "tags", "language", "extra"]),
    field_values,
    max_size=9,
)


def check(item: Any, where: str) -> None:
    """Every reader yields only these two things, and an error always says where."""
    if isinstance(item, Record):
        assert isinstance(item.article, Article) and item.article.id and (item.article.title or item.article.body)
        json.dumps(item.article.to_dict())  # storable
    else:
        assert isinstance(item, InvalidArticle), type(item)
        assert str(item).startswith(where) and item.reason


@FUZZ
@given(raw=articles)
def test_validator_accepts_or_names_the_place(raw: dict[str, Any]) -> None:
    try:
        article = validate_article(raw, "fuzz.jsonl:1")
    except InvalidArticle as exc:
        assert str(exc).startswith("fuzz.jsonl:1")
    else:
        assert article.id == str(raw["id"]).strip()


@FUZZ
@given(
    data=st.binary(max_size=2000)
    | st.lists(articles, max_size=5).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode())
)
def test_jsonl_reader(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_bytes(data)
    for item in read_jsonl(path):
        check(item, str(path))


def test_deeply_nested_json_is_one_rejection(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n" + '{"id": "ok", "title": "fine"}\n', encoding="utf-8")
    items = list(read_jsonl(path))
    assert isinstance(items[0], InvalidArticle) and items[0].location == f"{path}:1"
    assert isinstance(items[1], Record)


def test_huge_field_is_refused_with_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({"id": "big", "body": "x" * 1_000_001}) + "\n", encoding="utf-8")
    (item,) = read_jsonl(path)
    assert isinstance(item, InvalidArticle) and "limit 1,000,000" in item.reason


def test_empty_files(tmp_path: Path) -> None:
    for name, reader in (("e.jsonl", read_jsonl), ("e.csv", read_csv), ("e.xml", read_feed)):
        path = tmp_path / name
        path.write_bytes(b"")
        for item in reader(path):
            check(item, str(path))


@FUZZ
@given(data=st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: ("id,title,body\n" + t).encode("utf-8")))
def test_csv_reader(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_bytes(data)
    for item in read_csv(path):
        check(item, str(path))


@FUZZ
@given(
    data=st.binary(max_size=2000)
    | st.text(max_size=300).map(
        lambda t: (
            f"<rss><channel><item><title>{t}</title><guid>{t[:20]}</guid><description>{t}</description>"
            f"<pubDate>{t[:30]}</pubDate></item></channel></rss>".encode()
        )
    )
)
def test_feed_reader(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.xml"
    path.write_bytes(data)
    for item in read_feed(path):
        check(item, str(path))


@settings(
    max_examples=25, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    data=st.binary(max_size=2000)
    | st.text(max_size=500).map(
        lambda t: (
            f"<html><head><title>{t[:40]}</title></head><body><article><p>{t}</p></article></body></html>".encode()
        )
    )
)
def test_html_reader(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "page.html"
    path.write_bytes(data)
    check(read_html_file(path, "page"), str(path))


# -- lone surrogates and dates at the edge of the calendar (issue 15, case 4) ----------------------------------
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
surrogate_text = st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), surrogates, st.text(max_size=5))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: ("-" if m < 0 else "+") + f"{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
edge_dates = st.one_of(
    st.sampled_from(
        ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59+14:00", "0001-01-01"]
    ),
    st.builds(
        lambda d, off: d.isoformat() + off,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 3))
        | st.datetimes(
            min_value=datetime(9999, 12, 29),
            max_value=datetime(9999, 12, 31, 23, 59),
        ),
        offsets,
    ),
)
hostile_articles = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=8) | surrogate_text, "title": st.text(min_size=1, max_size=20)},
    optional={
        "body": surrogate_text,
        "url": surrogate_text,
        "section": surrogate_text,
        "tags": st.lists(surrogate_text, max_size=2),
        "published_at": edge_dates,
        "extra": st.dictionaries(surrogate_text, surrogate_text, max_size=2),
    },
)


def usable(article: Article) -> None:
    """Everything a write does with an accepted article: hashes, the stored JSON in UTF-8, the parsed date."""
    assert article.content_hash and article.copy_key and article.record_hash
    json.dumps(article.to_dict(), ensure_ascii=False).encode("utf-8")
    if article.published_at:
        assert article.published is not None and article.published.tzinfo is not None


@FUZZ
@given(raw=hostile_articles)
def test_lone_surrogates_and_edge_dates_are_one_rejection_or_a_usable_article(raw: dict[str, Any]) -> None:
    try:
        article = validate_article(raw, "fuzz.jsonl:7")
    except InvalidArticle as exc:
        assert str(exc).startswith("fuzz.jsonl:7") and "\n" not in str(exc)
    else:
        usable(article)


@FUZZ
@given(rows=st.lists(hostile_articles, min_size=1, max_size=5))
def test_jsonl_batch_with_surrogates_and_edge_dates_keeps_every_good_line(
    tmp_path_factory: Any, rows: list[dict[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("surrogates") / "batch.jsonl"
    good = {"id": "good-one", "title": "Flood river", "body": "rain"}
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, good]), encoding="ascii")  # \ud800 escapes
    items = list(read_jsonl(path))
    assert len(items) == len(rows) + 1
    for number, item in enumerate(items, start=1):
        check(item, f"{path}:{number}")
        if isinstance(item, Record):
            usable(item.article)
    assert isinstance(items[-1], Record) and items[-1].article.id == "good-one"
