"""The pipeline's rules, one at a time, on hand-made pools (pure functions, no index)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.ranking.pipeline import Pool, Query, keyword_gate, pool_size, rank, scores, select, time_factor
from recommender.ranking.policy import KNOBS, Filters, PolicyError, RankingPolicy

NAN = float("nan")


def pool(
    sims: list[float],
    *,
    keyword: list[float] | None = None,
    copies: list[int] | None = None,
    urls: list[int] | None = None,
    days: list[float] | None = None,
    languages: list[int] | None = None,
    pairwise: np.ndarray | None = None,
    allowed: list[bool] | None = None,
) -> Pool:
    n = len(sims)
    return Pool(
        keys=np.arange(10, 10 + n, dtype=np.int64),
        sims=np.asarray(sims, dtype=np.float64),
        keyword=np.asarray(keyword or [0.0] * n, dtype=np.float64),
        copy_codes=np.asarray(copies or list(range(100, 100 + n)), dtype=np.int64),
        url_codes=np.asarray(urls or [-1] * n, dtype=np.int64),
        days=np.asarray(days or [NAN] * n, dtype=np.float64),
        languages=np.asarray(languages or [-1] * n, dtype=np.int64),
        pairwise=np.eye(n) if pairwise is None else pairwise,
        allowed=None if allowed is None else np.asarray(allowed),
    )


def keys(ranked: object, p: Pool) -> list[int]:
    return [int(p.keys[i]) for i in ranked.picks]  # type: ignore[attr-defined]


PLAIN = RankingPolicy(keyword_weight=0.0)
QUERY = Query(key=1, copy_code=1, url_code=1, days=NAN, language=0)


def test_never_self_nor_copy_of_self() -> None:
    p = pool([0.99, 0.9, 0.8, 0.7], copies=[100, 1, 102, 103], urls=[-1, -1, 1, -1])
    p.keys[3] = 1  # the story itself
    ranked = rank(QUERY, p, PLAIN, 5, exhausted=True)
    assert keys(ranked, p) == []  # a near copy (>= 0.97), the same text, the same page, itself
    assert ranked.short and ranked.complete


def test_one_link_per_copy_group_the_best_ranked_stays() -> None:
    pairwise = np.eye(4)
    pairwise[0, 2] = pairwise[2, 0] = 0.99  # 10 and 12: near copies by vector
    p = pool([0.9, 0.8, 0.7, 0.6], copies=[5, 5, 6, 7], urls=[-1, -1, -1, 3], pairwise=pairwise)
    assert keys(rank(QUERY, p, PLAIN, 5, exhausted=True), p) == [10, 13]
    p = pool([0.9, 0.8], urls=[4, 4])  # URL variants of one page
    assert keys(rank(QUERY, p, PLAIN, 5, exhausted=True), p) == [10]


def test_filters_and_minimum_similarity_give_a_short_list_not_padding() -> None:
    p = pool([0.9, 0.8, 0.5, 0.1], allowed=[True, False, True, True])
    ranked = rank(QUERY, p, PLAIN, 3, exhausted=False)
    assert keys(ranked, p) == [10, 12] and ranked.short
    assert ranked.complete  # the weakest candidate is below the cut: searching deeper finds nothing better
    deeper = rank(QUERY, pool([0.9, 0.8, 0.5], allowed=[True, False, True]), PLAIN, 3, exhausted=False)
    assert not deeper.complete  # everything was related and a filter took one: search deeper


def test_equal_scores_are_ordered_by_key_whatever_the_search_order() -> None:
    p = pool([0.5, 0.5, 0.5])
    p.keys[:] = [30, 10, 20]
    assert keys(rank(QUERY, p, PLAIN, 3, exhausted=True), p) == [10, 20, 30]


def test_keyword_evidence_reorders_related_stories_but_never_lifts_a_distant_one() -> None:
    policy = RankingPolicy(keyword_weight=0.7, keyword_gate=0.5, min_similarity=0.2)
    # 10: related by the model, few shared words; 11: related, many shared words; 12: distant, a shared name
    p = pool([0.6, 0.55, 0.25], keyword=[0.1, 0.6, 0.9])
    ranked = rank(QUERY, p, policy, 3, exhausted=True)
    assert keys(ranked, p) == [11, 10, 12]  # reordered among the related; the distant one stays last
    np.testing.assert_allclose(keyword_gate(np.array([0.2, 0.35, 0.5, 0.9]), policy), [0.0, 0.5, 1.0, 1.0])
    open_gate = RankingPolicy(keyword_weight=0.7, keyword_gate=0.2)
    assert keys(rank(QUERY, p, open_gate, 3, exhausted=True), p)[0] == 12  # what an ungated blend does


def test_time_proximity_is_a_boost_not_a_cliff() -> None:
    policy = RankingPolicy(keyword_weight=0.0, dated_keyword_weight=None, time_half_life_days=3, time_weight=0.5)
    factor = time_factor(100.0, np.array([100.0, 103.0, 97.0, 200.0, NAN]), policy)
    np.testing.assert_allclose(factor, [1.0, 0.75, 0.75, 0.5 + 0.5 * 2 ** (-100 / 3), 0.5])
    query = Query(key=1, copy_code=1, days=100.0)
    same_week = pool([0.45, 0.46, 0.95, 0.46], days=[101.0, 160.0, 900.0, NAN])
    # a far better match from years ago still beats a weak fresh one; a close follow-up beats an equal match
    # from months ago; an undated story gets no boost and nothing worse
    assert keys(rank(query, same_week, policy, 4, exhausted=True), same_week) == [12, 10, 11, 13]
    undated_query = Query(key=1, copy_code=1)
    assert list(time_factor(undated_query.days, same_week.days, policy)) == [1.0, 1.0, 1.0, 1.0]


def test_a_list_keeps_to_its_storys_language() -> None:
    p = pool([0.9, 0.8, 0.7], languages=[1, 0, -1])
    same = RankingPolicy(keyword_weight=0.0, language="same")
    assert keys(rank(QUERY, p, same, 3, exhausted=True), p) == [11, 12]  # unknown languages are not excluded
    mixed = RankingPolicy(keyword_weight=0.0, language="any")
    assert keys(rank(QUERY, p, mixed, 3, exhausted=True), p) == [10, 11, 12]


def test_a_language_the_model_does_not_read_is_ranked_by_keywords() -> None:
    query = Query(key=1, copy_code=1, model_language=False)
    p = pool([0.9, 0.3, 0.1], keyword=[0.0, 0.2, 0.5])
    ranked = rank(query, p, RankingPolicy(), 3, exhausted=True)
    assert keys(ranked, p) == [12, 11]  # by shared words; no shared word, no link


def test_diversity_spreads_near_identical_angles() -> None:
    pairwise = np.eye(3)
    pairwise[0, 1] = pairwise[1, 0] = 0.95
    p = pool([0.9, 0.89, 0.8], pairwise=pairwise)
    assert keys(rank(QUERY, p, PLAIN, 2, exhausted=True), p) == [10, 11]
    diverse = RankingPolicy(keyword_weight=0.0, diversity=0.3)
    assert keys(rank(QUERY, p, diverse, 2, exhausted=True), p) == [10, 12]


def test_select_with_given_scores_is_what_rank_does() -> None:
    p = pool([0.9, 0.7, 0.5], keyword=[0.1, 0.9, 0.2])
    policy = RankingPolicy()
    given = scores(QUERY, p, policy)
    assert np.array_equal(
        select(QUERY, p, given, policy, 3, exhausted=True).picks, rank(QUERY, p, policy, 3, exhausted=True).picks
    )


def test_pool_size() -> None:
    assert pool_size(5) == 36 and pool_size(20) == 96 and pool_size(1) == 32


def test_policy_values_are_checked_with_one_line_errors() -> None:
    assert RankingPolicy.from_assignments(["keyword_weight=0.3", "time-half-life-days=none"]) == RankingPolicy(
        keyword_weight=0.3, time_half_life_days=None
    )
    with pytest.raises(PolicyError, match=r"ranking.keyword_weight = 'five': must be a number from 0 to 1"):
        RankingPolicy.from_assignments(["keyword_weight=five"])
    with pytest.raises(PolicyError, match="unknown ranking setting"):
        RankingPolicy.from_mapping({"colour": "red"})
    with pytest.raises(PolicyError, match="one of same, any"):
        RankingPolicy.from_mapping({"language": "fr"})
    with pytest.raises(PolicyError):
        RankingPolicy(diversity=1.5)
    assert set(KNOBS) == set(RankingPolicy().to_dict())


def test_filters_read_a_link_card() -> None:
    from datetime import UTC, datetime

    from recommender.articles import Article

    card = Article(
        id="x",
        title="t",
        section="Sport",
        language="en",
        tags=("Obituaries",),
        published_at="2024-01-02T00:00:00+00:00",
    )
    assert Filters(section="sport").passes(card) and not Filters(section="local").passes(card)
    assert not Filters(exclude=frozenset({"x"})).passes(card)
    assert not Filters(exclude_tags=frozenset({"obituaries"})).passes(card)
    assert not Filters(exclude_sections=frozenset({"SPORT"})).passes(card)
    assert not Filters(since=datetime(2024, 2, 1, tzinfo=UTC)).passes(card)
    assert not Filters(since=datetime(2024, 2, 1, tzinfo=UTC)).passes(Article(id="y", title="undated"))
    merged = Filters(section="sport").merged(Filters(exclude=frozenset({"x"})))
    assert merged.section == "sport" and merged.exclude == {"x"}


def test_which_languages_the_model_reads() -> None:
    policy = RankingPolicy()
    assert policy.reads("sentence-transformers/all-MiniLM-L6-v2") == {"en"}
    assert policy.reads("/models/all-mpnet-base-v2") == {"en"}
    assert policy.reads("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2") is None
    assert policy.reads("my-own-model") is None  # unknown: trusted with every language
    assert RankingPolicy(model_languages="*").reads("all-MiniLM-L6-v2") is None
    assert RankingPolicy(model_languages="en,de").reads("all-MiniLM-L6-v2") == {"en", "de"}
    with pytest.raises(PolicyError, match="comma-separated language codes"):
        RankingPolicy.from_mapping({"model_languages": "English"})


def test_a_storys_pool_is_the_nearest_stories_of_its_language() -> None:
    """In a bilingual archive a story's pool is the `searched` nearest stories of its own language -- what a
    first search of an archive in that language alone would return -- so each language keeps its own lists."""
    query = Query(key=1, copy_code=1, language=5, model_language=False)
    p = pool([0.9, 0.8, 0.7, 0.6], keyword=[0.3, 0.0, 0.2, 0.4], languages=[5, 6, 5, 5])
    policy = RankingPolicy(language="same")
    ranked = rank(query, p, policy, 5, exhausted=False, searched=4)
    assert keys(ranked, p) == [10, 13, 12] and not ranked.complete  # 3 of its language, 4 asked for: search on
    truncated = rank(query, p, policy, 5, exhausted=False, searched=2)
    assert keys(truncated, p) == [10, 12] and truncated.complete  # the 2 nearest of its language: that is the pool
    assert rank(query, p, policy, 5, exhausted=True, searched=4).complete


def test_the_keyword_share_drops_where_time_tells_events_apart() -> None:
    policy = RankingPolicy(keyword_weight=0.7, dated_keyword_weight=0.3, time_half_life_days=3, time_weight=0.5)
    query = Query(key=1, copy_code=1, days=100.0)
    p = pool([0.6, 0.6], keyword=[0.5, 0.5], days=[100.0, NAN])
    got = scores(query, p, policy)
    assert got[0] == pytest.approx(0.7 * 0.6 + 0.3 * 0.5)  # both dated: time does part of the keywords' job
    assert got[1] == pytest.approx((0.3 * 0.6 + 0.7 * 0.5) * 0.5)  # undated: the usual share (and no boost)
    assert list(scores(Query(key=1, copy_code=1), p, policy)) == pytest.approx([0.3 * 0.6 + 0.7 * 0.5] * 2)


def _copy_groups_by_definition(pool: Pool, order: np.ndarray, near_copy: float) -> list[bool]:
    """The greedy rule as written: a candidate is kept unless an earlier kept one is the same text, the same
    page, or an embedding cosine at or above ``near_copy``."""
    kept: list[int] = []
    out = []
    for j in order:
        copy = any(
            pool.copy_codes[i] == pool.copy_codes[j]
            or (pool.url_codes[i] == pool.url_codes[j] and pool.url_codes[i] >= 0)
            or pool.pairwise[i, j] >= near_copy
            for i in kept
        )
        out.append(not copy)
        if not copy:
            kept.append(int(j))
    return out


@pytest.mark.parametrize("seed", range(60))
def test_one_link_per_copy_group_matches_its_definition(seed: int) -> None:
    """Pools with and without shared texts, shared pages and near-copy vectors (the common case, none of them,
    is answered without the pairwise matrices), in and out of the order the ranking visits them."""
    from recommender.ranking.pipeline import _first_of_each_copy_group

    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 40))
    vectors = rng.standard_normal((m, 8))
    if seed % 3 == 0:  # some near copies
        for i in rng.choice(m, size=m // 4, replace=False):
            vectors[i] = vectors[(i + 1) % m] + 0.01 * rng.standard_normal(8)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    copies = np.arange(m) if seed % 2 else rng.integers(0, max(2, m - 3), m)
    urls = np.where(rng.random(m) < 0.5, -1, np.arange(m) if seed % 4 != 1 else rng.integers(0, m, m))
    pool = Pool(
        keys=np.arange(100, 100 + m),
        sims=rng.random(m),
        keyword=np.zeros(m),
        copy_codes=copies.astype(np.int64),
        url_codes=urls.astype(np.int64),
        days=np.full(m, np.nan),
        languages=np.full(m, -1),
        pairwise=vectors @ vectors.T,
    )
    order = rng.permutation(m)[: int(rng.integers(1, m + 1))]
    got = _first_of_each_copy_group(pool, order, 0.97)
    assert got.tolist() == _copy_groups_by_definition(pool, order, 0.97)
