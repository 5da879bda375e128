"""Precomputed lists: equal to a live search after a build, patched on add/edit/delete, caught up after a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender import Recommender, add_articles, build_index, delete_articles
from recommender.ranking import lists as related_lists
from recommender.ranking.policy import NO_FILTERS, Filters
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, SHARED, FakeEmbedder


def stored_ids(rec: Recommender, article_id: str) -> list[str]:
    key = rec.store.catalog.get(article_id).key
    entry = related_lists.load(rec.store.catalog, key)
    assert entry is not None
    rows = rec.store.catalog.get_many([k for k, _ in entry.items])
    return [rows[k].article.id for k, _ in entry.items]


def test_build_precomputes_every_list_equal_to_live_ranking(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        for row in ARTICLES:
            assert stored_ids(rec, row["id"]) == rec.live_related(row["id"], k=related_lists.DEPTH).ids
            assert rec.related(row["id"], k=3).ids == rec.live_related(row["id"], k=3).ids


def test_new_story_enters_its_neighbours_lists_and_leaves_on_delete(fake_index: Path) -> None:
    new = {
        "id": "a4",
        "title": "River city flood evacuated residents rain homes",
        "body": "Flood waters river city residents evacuated homes heavy rain overnight.",
    }
    add_articles(fake_index, articles=[new])
    with Recommender.open(fake_index) as rec:
        for neighbour in ("a1", "a2", "a3"):
            assert "a4" in stored_ids(rec, neighbour)
            # same stories as a live ranking; the order of near-equal scores may differ, because the newcomer
            # shifts every keyword weight a little (noticeable in this 9-story corpus, not in an archive)
            assert set(stored_ids(rec, neighbour)) == set(rec.live_related(neighbour, k=related_lists.DEPTH).ids)
    delete_articles(fake_index, ["a4"])
    with Recommender.open(fake_index) as rec:
        for row in ARTICLES:
            assert "a4" not in stored_ids(rec, row["id"])
        assert (
            rec.store.catalog.conn.execute(
                "SELECT COUNT(*) FROM related_refs WHERE dst NOT IN (SELECT key FROM articles)"
            ).fetchone()[0]
            == 0
        )


def test_edited_story_is_re_ranked_everywhere(fake_index: Path) -> None:
    # b2 stops being about rates: it must leave b1's list
    add_articles(
        fake_index,
        articles=[{"id": "b2", "title": "Football cup final fans", "body": "team stadium goal cup final football"}],
    )
    with Recommender.open(fake_index) as rec:
        assert stored_ids(rec, "b1") == rec.live_related("b1", k=related_lists.DEPTH).ids
        assert stored_ids(rec, "c1") == rec.live_related("c1", k=related_lists.DEPTH).ids
        assert "b2" in stored_ids(rec, "c1")


def test_lookup_with_filters_falls_back_to_search_when_needed(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        local = Filters(section="local")
        assert rec.related("a1", k=2, filters=local).ids == rec.live_related("a1", k=2, filters=local).ids
        assert related_lists.lookup(rec, "a1", 30, NO_FILTERS) is None  # deeper than stored: a live search
        assert rec.related("a1", k=30).ids == rec.live_related("a1", k=30).ids


def test_crash_before_list_update_is_caught_up(fake_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(rec: Recommender) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(related_lists, "catch_up", crash)
    with pytest.raises(KeyboardInterrupt):
        add_articles(
            fake_index,
            articles=[{"id": "a5", "title": "River city flood residents evacuated", "body": "flood rain homes"}],
        )
    monkeypatch.undo()
    with Recommender.open(fake_index) as rec:
        assert related_lists.related_seq(rec.store.catalog) < rec.store.catalog.last_seq()
        assert related_lists.catch_up(rec) == 1
        assert "a5" in stored_ids(rec, "a1")


def test_insertion_places_the_newcomer_by_its_score(fake_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path (no re-rank) puts a clear follow-up at the top of its neighbour's list."""
    reranked: list[str] = []
    original = Recommender.rerank

    def spy(self: Recommender, article_id: str, keys: list[int], k: int) -> object:
        reranked.append(article_id)
        return original(self, article_id, keys, k)

    monkeypatch.setattr(Recommender, "rerank", spy)
    with Recommender.open(fake_index) as rec:
        before = related_lists.load(rec.store.catalog, rec.store.catalog.get("b1").key)
        assert before is not None and before.scores is not None
    add_articles(
        fake_index,
        articles=[
            {
                "id": "b9",
                "title": "Central bank signals more interest rate rises",
                "body": "Inflation stays high, the central bank says; markets fell again as "
                "traders expect interest rates to rise further.",
            }
        ],
    )
    with Recommender.open(fake_index) as rec:
        after = related_lists.load(rec.store.catalog, rec.store.catalog.get("b1").key)
        assert after is not None and after.scores == sorted(after.scores, reverse=True)
        assert stored_ids(rec, "b1")[0] == "b9" == rec.related("b1", k=1).ids[0]
    assert "b1" not in reranked


def test_newcomer_score_is_what_ranking_the_neighbours_list_would_give(tmp_path: Path, fake: FakeEmbedder) -> None:
    """Publishing scores the newcomer for each neighbour's list from the newcomer's side (cosines are
    symmetric); for every ordered pair of stories that must equal ranking the neighbour's list with it --
    copies, URL variants and weak matches (None) included."""
    from recommender.ranking.pipeline import rank
    from tests.test_bulk_lists import corpus

    build_index([write_jsonl(tmp_path / "a.jsonl", corpus(7, 40))], tmp_path / "index", model=FAKE_MODEL)
    with Recommender.open(tmp_path / "index", embedder=SHARED) as rec:
        options = rec._options(related_lists.DEPTH, NO_FILTERS)
        stories = list(rec.store.catalog.iter_articles())
        checked = dropped = 0
        for newcomer in stories:
            new_query, new_vector = rec._query_for(newcomer.article.id)
            for neighbour in rec.candidates_for_keys(new_vector, [s.key for s in stories if s.key != newcomer.key]):
                mine = related_lists.newcomer_score(neighbour, new_query, options)
                their_query, their_vector = rec._query_for(neighbour.article.id)
                ranked = rank(their_query, rec.candidates_for_keys(their_vector, [newcomer.key]), options).items
                if mine is None:
                    assert ranked == []
                    dropped += 1
                else:
                    assert len(ranked) == 1 and ranked[0].rank_score == pytest.approx(mine, abs=1e-12)
                checked += 1
        assert dropped and checked > dropped
