from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from recommender.articles import Article
from recommender.ranking.pipeline import (
    Candidate,
    QueryContext,
    RankingOptions,
    collapse_copies,
    drop_query_copies,
    freshness_factor,
    mmr,
    passes_filters,
    rank,
)


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def cand(
    key: int,
    sim: float,
    *,
    vec: np.ndarray | None = None,
    copy: str | None = None,
    url: str | None = None,
    section: str | None = None,
    published: str | None = None,
    title: str = "t",
) -> Candidate:
    article = Article(id=f"id{key}", title=title, url=url, section=section, published_at=published)
    return Candidate(key, article, copy or f"copy{key}", sim, vec)


def test_never_self_nor_copy_of_self() -> None:
    query = QueryContext(article_id="id1", copy_key="same", url="https://n.example/a")
    pool = [
        cand(1, 1.0),  # itself
        cand(2, 0.99, copy="same"),  # exact copy of its text
        cand(3, 0.9, url="https://www.n.example/a/?utm_source=x"),  # URL variant
        cand(4, 0.98),  # near copy
        cand(5, 0.8),
    ]
    assert [c.key for c in drop_query_copies(query, pool, near_copy=0.97)] == [5]


def test_two_identical_wire_copies_give_one_link() -> None:
    v = unit(1, 0, 0)
    pool = [cand(2, 0.8, copy="wire", vec=v), cand(3, 0.8, copy="wire", vec=v), cand(4, 0.7, vec=unit(0, 1, 0))]
    assert [c.key for c in collapse_copies(pool, 0.97)] == [2, 4]


def test_near_copies_collapse_by_vector() -> None:
    pool = [cand(2, 0.8, vec=unit(1, 0.01, 0)), cand(3, 0.79, vec=unit(1, 0.02, 0)), cand(4, 0.7, vec=unit(0, 1, 0))]
    assert [c.key for c in collapse_copies(pool, 0.97)] == [2, 4]


def test_url_variants_collapse() -> None:
    pool = [cand(2, 0.8, url="https://n.example/x"), cand(3, 0.7, url="http://www.n.example/x/")]
    assert [c.key for c in collapse_copies(pool, 0.97)] == [2]


def test_filters() -> None:
    a = Article(id="x", title="t", section="Sport", language="en", published_at="2024-03-01T00:00:00+00:00")
    assert passes_filters(a, RankingOptions(section="sport"))
    assert not passes_filters(a, RankingOptions(section="local"))
    assert not passes_filters(a, RankingOptions(language="fr"))
    assert not passes_filters(a, RankingOptions(exclude=frozenset({"x"})))
    assert passes_filters(a, RankingOptions(since=datetime(2024, 2, 1, tzinfo=UTC)))
    assert not passes_filters(a, RankingOptions(since=datetime(2024, 4, 1, tzinfo=UTC)))
    assert not passes_filters(a, RankingOptions(until=datetime(2024, 2, 1, tzinfo=UTC)))
    undated = Article(id="y", title="t")
    assert not passes_filters(undated, RankingOptions(since=datetime(2024, 2, 1, tzinfo=UTC)))


@pytest.mark.parametrize(
    ("age", "half_life", "weight", "expected"),
    [
        (0, 30, 0.2, 1.0),
        (30, 30, 0.2, 0.9),
        (-30, 30, 0.2, 0.9),
        (3000, 30, 0.2, 0.8),
        (30, None, 0.2, 1.0),
        (None, 30, 0.2, 1.0),
    ],
)
def test_freshness_factor(age: float | None, half_life: float | None, weight: float, expected: float) -> None:
    assert freshness_factor(age, half_life, weight) == pytest.approx(expected, abs=1e-6)


def test_freshness_prefers_todays_follow_up_over_old_piece_of_same_weight() -> None:
    query = QueryContext(article_id="q", published=datetime(2024, 3, 1, tzinfo=UTC))
    old = cand(2, 0.80, published="2021-03-01T00:00:00+00:00")
    new = cand(3, 0.79, published="2024-03-01T12:00:00+00:00")
    ranked = rank(query, [old, new], RankingOptions(k=2, half_life_days=30))
    assert [c.key for c in ranked.items] == [3, 2]
    # ... but a far better old match still wins: a boost, not a sort
    much_better_old = cand(4, 0.95, published="2021-03-01T00:00:00+00:00")
    weak_new = cand(5, 0.5, published="2024-03-01T12:00:00+00:00")
    assert rank(query, [weak_new, much_better_old], RankingOptions(k=1, half_life_days=30)).items[0].key == 4


def test_mmr_spreads_angles() -> None:
    a1, a2, b = unit(1, 0, 0), unit(0.95, 0.31, 0), unit(0, 0, 1)
    pool = [cand(1, 0.9, vec=a1), cand(2, 0.89, vec=a2), cand(3, 0.8, vec=b)]
    assert [c.key for c in mmr(pool, 2, 1.0)] == [1, 2]
    assert [c.key for c in mmr(pool, 2, 0.5)] == [1, 3]


def test_min_similarity_gives_a_short_list_not_padding() -> None:
    ranked = rank(QueryContext(article_id="q"), [cand(2, 0.6), cand(3, 0.1)], RankingOptions(k=5, min_similarity=0.2))
    assert [c.key for c in ranked.items] == [2] and ranked.short


def test_keyword_evidence_reorders_but_keeps_the_cosine() -> None:
    from recommender.ranking.pipeline import blend_keywords

    query = QueryContext(article_id="q", terms={"cheeks": 0.8, "hired": 0.6})
    generic = Candidate(2, Article(id="g", title="t"), "g", 0.80, terms={"coach": 1.0})
    named = Candidate(3, Article(id="n", title="t"), "n", 0.70, terms={"cheeks": 0.6, "hired": 0.8})
    out = blend_keywords(query, [generic, named], weight=0.7)
    assert [c.key for c in out] == [3, 2]
    assert out[0].similarity == 0.70  # the cosine stays for min_similarity and display
    assert out[0].rank_score == pytest.approx(0.3 * 0.70 + 0.7 * 0.96)
    assert out[1].rank_score == pytest.approx(0.3 * 0.80)
    # weight 0, or a query without keyword vector: embedding order untouched
    assert [c.key for c in blend_keywords(query, [generic, named], weight=0.0)] == [2, 3]
    assert [c.key for c in blend_keywords(QueryContext(article_id="q"), [generic, named], 0.7)] == [2, 3]


def test_rank_uses_the_blend_and_still_drops_copies() -> None:
    query = QueryContext(article_id="q", copy_key="qk", terms={"flood": 1.0})
    v = unit(1, 0, 0)
    pool = [
        Candidate(1, Article(id="copy", title="t"), "qk", 0.9, v, terms={"flood": 1.0}),  # a copy of the story
        Candidate(2, Article(id="w1", title="t"), "wire", 0.5, unit(0, 1, 0), terms={"flood": 1.0}),
        Candidate(3, Article(id="w2", title="t"), "wire", 0.5, unit(0, 1, 0), terms={"flood": 1.0}),  # same wire
        Candidate(4, Article(id="o", title="t"), "o", 0.6, unit(0, 0, 1), terms={"rates": 1.0}),
    ]
    ranked = rank(query, pool, RankingOptions(k=5))
    assert [c.key for c in ranked.items] == [2, 4]  # keyword match first, one wire link, never the copy


def test_freshness_multiplies_the_blended_score() -> None:
    from recommender.ranking.pipeline import apply_freshness

    query = QueryContext(article_id="q", published=datetime(2024, 3, 1, tzinfo=UTC))
    c = Candidate(2, Article(id="a", title="t", published_at="2024-01-31T00:00:00+00:00"), "a", 0.5, score=0.8)
    out = apply_freshness(query, [c], RankingOptions(half_life_days=30, freshness_weight=0.2))
    assert out[0].rank_score == pytest.approx(0.8 * freshness_factor(30, 30, 0.2))
