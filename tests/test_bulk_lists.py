"""The vectorised precompute (recommender.ranking.bulk) gives the lists the story-by-story ranking gives."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from recommender import Recommender, build_index
from recommender.ranking import bulk as bulk_lists
from recommender.ranking import lists as related_lists
from recommender.ranking.policy import RankingPolicy
from recommender.storage import vector_index
from recommender.writer import add_articles, delete_articles
from tests import fakes
from tests.conftest import write_jsonl

TOPICS = {
    "flood": "river flood rain evacuated residents water levels dam warning homes",
    "bank": "central bank interest rates inflation markets bonds traders economy",
    "football": "football cup final goal stadium fans coach league striker",
    "election": "election vote ballot candidate parliament campaign polls minister",
    "fire": "wildfire forest firefighters smoke hectares evacuation wind blaze",
}


def corpus(seed: int, stories: int, copies_every: int = 7) -> list[dict]:
    """Stories about a few topics, each with its own names; every few a verbatim wire copy, a URL variant of
    another page, or a lightly edited near copy -- the cases the copy rules exist for."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for i in range(stories):
        topic = rng.choice(sorted(TOPICS))
        words = TOPICS[topic].split()
        names = [f"name{rng.randrange(40)}", f"place{rng.randrange(25)}", f"{rng.randrange(1990, 2025)}"]
        body = " ".join(rng.choices(words, k=25) + names * 2 + [f"detail{rng.randrange(500)}" for _ in range(4)])
        rows.append(
            {
                "id": f"s{i}",
                "title": f"{topic} {names[0]} {names[1]}",
                "body": body,
                "url": f"https://news.example/{topic}/{i}",
                "section": topic,
            }
        )
        if i % copies_every == 3:  # a wire copy: same text, other id and URL
            rows.append({**rows[-1], "id": f"s{i}-wire", "url": f"https://wire.example/{i}"})
        if i % copies_every == 5:  # the same page under a tracking-parameter URL variant
            rows.append(
                {
                    **rows[-1],
                    "id": f"s{i}-amp",
                    "body": body + " update",
                    "url": f"https://news.example/{topic}/{i}?utm_source=feed",
                }
            )
    return rows


def assert_lists_match_live_ranking(index_dir: Path, variant: str = "") -> None:
    """Every stored list is what a live ranking of the same catalog gives: same stories, same order, same
    cosines and scores; and the reverse table mirrors the lists."""
    with Recommender.open(index_dir, embedder=fakes.SHARED) as rec:
        catalog = rec.store.catalog
        ranker = rec.lists.ranker(variant)
        checked = 0
        for stored in catalog.iter_articles():
            live = ranker.rank(ranker.subject(stored.article.id), related_lists.DEPTH)
            entry = related_lists.load(catalog, stored.key, variant)
            assert entry is not None, stored.article.id
            assert [e.key for e in entry.entries] == [e.key for e in live.entries], stored.article.id
            assert entry.short == live.short, stored.article.id
            np.testing.assert_allclose(
                [e.similarity for e in entry.entries], [e.similarity for e in live.entries], atol=2e-6
            )
            assert [e.score for e in entry.entries] == [e.score for e in live.entries], stored.article.id
            checked += 1
        assert checked == catalog.count()
        sql = "SELECT dst, src FROM related_refs WHERE variant = ?"
        refs = {tuple(r) for r in catalog.conn.execute(sql, (variant,))}
        expected = {
            (k, key)
            for key, items in catalog.conn.execute("SELECT key, items FROM related WHERE variant = ?", (variant,))
            for k, *_ in json.loads(items)
        }
        assert refs == expected  # the reverse table: which lists show each story
        plan = catalog.conn.execute("EXPLAIN QUERY PLAN DELETE FROM related_refs WHERE variant = '' AND src = 1")
        assert "related_refs_src" in " ".join(str(tuple(r)) for r in plan.fetchall())  # its src index is back


@pytest.mark.thorough
def test_bulk_refresh_equals_story_by_story_ranking(
    tmp_path: Path, fake: fakes.FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_lists, "ROW_BLOCK", 17)  # keyword weights computed over several row blocks
    monkeypatch.setattr(bulk_lists, "KEYWORD_PAIRS", 7)  # and keyword cosines over several chunks of pairs
    source = write_jsonl(tmp_path / "a.jsonl", corpus(1, 180))
    build_index([source], tmp_path / "index", model=fakes.FAKE_MODEL)
    assert_lists_match_live_ranking(tmp_path / "index")


@pytest.mark.thorough
def test_bulk_refresh_on_a_graph_index_with_tombstones(
    tmp_path: Path, fake: fakes.FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HNSW cannot delete: deleted and edited stories leave stale entries the bulk path must skip."""
    monkeypatch.setattr(vector_index, "EXACT_SEARCH_LIMIT", 20)
    rows = corpus(2, 150)
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], index_dir, model=fakes.FAKE_MODEL)
    with Recommender.open(index_dir, embedder=fakes.SHARED) as rec:
        assert rec.info()["index_type"] == "hnsw"
    delete_articles(index_dir, [r["id"] for r in rows[:12]])
    edited = [{**r, "body": r["body"] + " correction name3 place4"} for r in rows[20:30]]
    add_articles(index_dir, articles=edited, embedder=fakes.SHARED)
    with Recommender.open(index_dir, embedder=fakes.SHARED) as rec:
        assert rec.store.tombstones > 0
        assert rec.lists.refresh_all() == rec.store.catalog.count()
    assert_lists_match_live_ranking(index_dir)


@pytest.mark.thorough
def test_stories_whose_first_pool_is_not_enough_are_searched_deeper(
    tmp_path: Path, fake: fakes.FakeEmbedder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Many copies of one text: the first candidate pool collapses below the list depth, so the bulk path
    hands those stories to the search-until-k ranking, and the lists still match."""
    base = corpus(3, 60)
    rows = base + [{**base[0], "id": f"copy{i}", "url": f"https://copies.example/{i}"} for i in range(120)]
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], tmp_path / "index", model=fakes.FAKE_MODEL)
    with Recommender.open(tmp_path / "index", embedder=fakes.SHARED) as rec:
        with caplog.at_level("INFO", logger="recommender.ranking.lists"):
            rec.lists.refresh_all()
    assert any("needed a deeper search" in r.getMessage() for r in caplog.records)
    assert_lists_match_live_ranking(tmp_path / "index")


@pytest.mark.parametrize(
    "policy",
    [
        RankingPolicy(diversity=0.5),
        RankingPolicy(time_half_life_days=2, time_weight=0.5, dated_keyword_weight=0.2),
        RankingPolicy(keyword_weight=0.3, keyword_gate=0.5, keyword_prior_docs=50, language="same"),
        # most of a pool below the minimum similarity (the bulk path skips keyword cosines the gate zeroes),
        # and German stories the model does not read (every candidate's keyword cosine counts: "any" keeps their
        # pools full, so the bulk path ranks them)
        RankingPolicy(
            min_similarity=0.6, keyword_gate=0.8, model_languages="en", foreign_keyword_weight=0.7, language="any"
        ),
    ],
    ids=["diversity", "time", "gate-prior-language", "gated-and-unread"],
)
def test_every_policy_gives_the_same_lists_in_bulk_and_live(
    tmp_path: Path, fake: fakes.FakeEmbedder, policy: RankingPolicy
) -> None:
    """There is one pipeline: whatever the policy, the batch precompute and a live search agree."""
    rows = corpus(6, 90)
    for n, row in enumerate(rows):
        row["published_at"] = f"2024-03-{1 + n % 28:02d}T{n % 24:02d}:00:00Z" if n % 5 else None
        row["language"] = "de" if n % 11 == 0 else "en"
    source = write_jsonl(tmp_path / "a.jsonl", rows)
    build_index([source], tmp_path / "index", model=fakes.FAKE_MODEL, policy=policy)
    assert_lists_match_live_ranking(tmp_path / "index")


@pytest.mark.parametrize("languages", [("en",), ("en", "de"), (None,)], ids=["one", "two", "unknown"])
def test_keyword_weights_per_language_in_bulk_and_live(
    tmp_path: Path, fake: fakes.FakeEmbedder, languages: tuple[str | None, ...]
) -> None:
    """An archive in one language (or none known) takes the bulk pass's single-language path, a bilingual one
    weighs each language against its own counts: either way the stored lists are a live ranking's."""
    rows = corpus(7, 60)
    for n, row in enumerate(rows):
        row["language"] = languages[n % len(languages)]
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], tmp_path / "index", model=fakes.FAKE_MODEL)
    with Recommender.open(tmp_path / "index", embedder=fakes.SHARED) as rec:
        spoken = {s.article.language for s in rec.store.catalog.iter_articles()}
    assert len(spoken) == len(languages) or languages == (None,)  # (undeclared: the detector decides)
    assert_lists_match_live_ranking(tmp_path / "index")


def test_build_output_is_unchanged_json(tmp_path: Path, fake: fakes.FakeEmbedder) -> None:
    """Stored rows keep the format every reader expects: [[key, similarity, score], ...]."""
    source = write_jsonl(tmp_path / "a.jsonl", corpus(4, 40))
    build_index([source], tmp_path / "index", model=fakes.FAKE_MODEL)
    with Recommender.open(tmp_path / "index", embedder=fakes.SHARED) as rec:
        items, short = rec.store.catalog.conn.execute("SELECT items, short FROM related LIMIT 1").fetchone()
    entries = json.loads(items)
    assert entries and all(len(e) == 3 and isinstance(e[0], int) for e in entries)
    assert short in (0, 1)


@pytest.mark.parametrize("row_block", [5, 7, 1000])
def test_stories_without_keywords_have_an_empty_row(
    tmp_path: Path, fake: fakes.FakeEmbedder, row_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A story with no word of two letters or more (first, middle or last in key order; at a block's edge or
    inside one) has no keyword row, and its neighbours' rows are still unit length."""
    monkeypatch.setattr(bulk_lists, "ROW_BLOCK", row_block)
    rows = corpus(5, 12)
    blank = {"title": "7", "body": "1 2 3 ?"}
    rows.insert(0, {**blank, "id": "blank-first"})
    rows.insert(6, {**blank, "id": "blank-middle"})
    rows.append({**blank, "id": "blank-last"})
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], tmp_path / "index", model=fakes.FAKE_MODEL)
    with Recommender.open(tmp_path / "index", embedder=fakes.SHARED) as rec:
        archive = bulk_lists.load_archive(rec.store.catalog, rec.policy)
        lengths = np.diff(archive.terms.indptr)
        norms = np.sqrt(np.asarray(archive.terms.multiply(archive.terms).sum(axis=1)).ravel())
        assert (lengths == 0).sum() == 3
        np.testing.assert_allclose(norms[lengths > 0], 1.0)
    assert_lists_match_live_ranking(tmp_path / "index")
