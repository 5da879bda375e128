"""Asking for related stories through the library (fake embedder)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from recommender import ArticleNotFound, Filters, RankingPolicy, Recommender, add_articles
from recommender.writer import apply_policy
from tests.conftest import ARTICLES


def test_related_never_self_never_a_copy(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        related = rec.related("a1", k=5)
        assert "a1" not in related.ids and "a1-wire" not in related.ids
        assert related.ids[:2] == ["a2", "a3"] or set(related.ids[:2]) == {"a2", "a3"}
        scores = [s.score for s in related]
        assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


def test_wire_copy_gets_the_same_list_without_the_original(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        assert "a1" not in rec.related("a1-wire", k=5).ids


def test_filter_that_excludes_the_top_candidates_still_returns_k(fake_index: Path) -> None:
    a1 = next(a for a in ARTICLES if a["id"] == "a1")
    # 30 archive stories closer to a1 than anything else (its text plus a note), all outside the filter
    add_articles(
        fake_index,
        articles=[
            {
                "id": f"f{i}",
                "title": a1["title"],
                "body": f"{a1['body']} Archive note{i} kept{i}.",
                "section": "archive",
                "published_at": a1["published_at"],  # the same day: time plays no part in this test
            }
            for i in range(30)
        ],
    )
    apply_policy(fake_index, RankingPolicy(min_similarity=-1.0))
    with Recommender.open(fake_index) as rec:
        top = rec.related("a1", k=20)
        assert all(i.startswith("f") for i in top.ids)
        local = rec.related("a1", k=2, filters=Filters(section="local"))
        assert set(local.ids) == {"a2", "a3"} and not local.short
        sport = rec.related("a1", k=3, filters=Filters(section="sport"))
        assert set(sport.ids) == {"c1", "c2"} and sport.short  # only two sport stories exist


def test_exclude_ids_and_date_window(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        assert "a2" not in rec.related("a1", k=3, filters=Filters(exclude=frozenset({"a2"}))).ids
    apply_policy(fake_index, RankingPolicy(min_similarity=-1.0))
    with Recommender.open(fake_index) as rec:
        since = datetime(2024, 1, 1, tzinfo=UTC)
        window = rec.related("c1", k=5, filters=Filters(since=since))
        assert window.ids and all(rec.get(i).published_at >= "2024" for i in window.ids)


def test_related_to_text_and_url(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        by_text = rec.related_to_text("interest rates and inflation at the central bank", k=2)
        assert set(by_text.ids) == {"b1", "b2"}
        by_url = rec.related_to_url("http://www.news.example/b1/?utm_source=newsletter", k=2)
        assert "b1" not in by_url.ids and by_url.ids[0] == "b2"
        assert rec.find("https://news.example/c1").id == "c1"


def test_unknown_ids(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        with pytest.raises(ArticleNotFound):
            rec.related("nope")
        with pytest.raises(ArticleNotFound):
            rec.related_to_url("https://news.example/nope")


def test_short_list_is_flagged(fake_index: Path) -> None:
    apply_policy(fake_index, RankingPolicy(min_similarity=0.3))
    with Recommender.open(fake_index) as rec:
        related = rec.related("c1", k=5)
        assert related.short and len(related) < 5


def test_link_cards_kept_between_reads_follow_every_write(fake_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Links are read once and kept (a bounded LRU); a write -- here, or by another process and followed with
    refresh() -- empties them, so a retitled story shows its new title in the next answer."""
    import recommender.recommender as recommender_module

    with Recommender.open(fake_index) as rec:
        monkeypatch.setattr(recommender_module, "LINK_CARDS", 3)
        first = {a["id"]: rec.related(a["id"], k=5) for a in ARTICLES}
        assert 0 < len(rec._link_cards) <= 3  # bounded
        monkeypatch.setattr(recommender_module, "LINK_CARDS", 1000)
        assert {a["id"]: rec.related(a["id"], k=5) for a in ARTICLES} == first  # the same answers from the cards
        linked = first["a1"].items[0]
        assert linked.id in {card.id for card in rec._link_cards.values()}
        row = next(a for a in ARTICLES if a["id"] == linked.id)
        add_articles(fake_index, articles=[{**row, "title": "Retitled by the desk"}])  # another writer
        rec.refresh()
        assert next(s for s in rec.related("a1", k=5) if s.id == linked.id).title == "Retitled by the desk"
