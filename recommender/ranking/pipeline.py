"""The ranking pipeline: one definition of every rule, run by the live search, the batch precompute after a
build, the incremental update after a write and (through the stored lists) every read.

A story's candidates arrive as a :class:`Pool` (arrays in the index's result order), however they were found:
one FAISS search for a live list (:mod:`.search`), a batch of 512 searches for a whole build (:mod:`.bulk`), or
a stored list plus a newly published story (:mod:`.lists`). Then, in this order:

1. **never the story itself or a copy of it**: the same article, the same normalised text, the same page (URL
   variants), or an embedding cosine at or above ``near_copy``;
2. **the language rule**: with ``language = "same"`` a list keeps to its story's language (where both are known);
3. **the score** (:func:`scores`): the embedding cosine blended with keyword evidence -- which can reorder stories
   the model finds related but, through the semantic gate, never lift one it finds distant -- and multiplied by
   closeness in time to the story's own date (never a cliff: a far better match from years ago still wins);
4. **one link per copy group**, greedily in score order;
5. **filters** (the request's and the editors'), then the **minimum similarity** (a short list, never padded);
6. **diversity** (maximal marginal relevance), when the policy asks for it; then the top k.

Scores are rounded to 1e-9 and ties broken by catalog key, so the order is a pure function of the catalog and
the policy: the vectorised batch and a one-story search (whose sums may differ in the last bit) agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.ranking.policy import RankingPolicy

#: Decimals a score keeps when lists are ordered (and stored): below float noise, far above real differences.
SCORE_DECIMALS = 9
#: Entries a stored list holds (requests for more, k up to 50, are a live search).
LIST_DEPTH = 20


def pool_size(k: int) -> int:
    """Candidates fetched for a list of k: the first pool of every search (live or batch)."""
    return max(4 * k + 16, 32)


@dataclass(frozen=True)
class Query:
    """What the pipeline needs of the story a list is for (free text: key -1 and no codes)."""

    key: int = -1
    copy_code: int = -1  # -1: no copy group (free text)
    url_code: int = -1  # -1: no URL
    days: float = float("nan")  # published, in days since the epoch; nan = undated
    language: int = -1  # language code; -1 = unknown
    has_terms: bool = True  # False: no keyword evidence for this story (no vector)
    model_language: bool = True  # the embedding model was trained on the story's language


@dataclass
class Pool:
    """One story's candidates as parallel arrays (codes comparable with the :class:`Query`'s)."""

    keys: np.ndarray  # int64 catalog keys
    sims: np.ndarray  # float64 embedding cosine to the story
    keyword: np.ndarray  # float64 keyword cosine to the story (0: no shared terms, or no keyword vector)
    copy_codes: np.ndarray  # int64: equal = copies of one text
    url_codes: np.ndarray  # int64: equal = one page; -1 = no URL
    days: np.ndarray  # float64 published (days since the epoch); nan = undated
    languages: np.ndarray  # int64 language code; -1 = unknown
    pairwise: np.ndarray  # (m, m) embedding cosines between the candidates
    allowed: np.ndarray | None = None  # bool: False = a filter keeps it out; None = no filters

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Ranked:
    """A list: positions into the pool, best first, with their scores; ``short`` when fewer than k passed;
    ``complete`` False when the pool was not enough to be sure (search deeper)."""

    picks: np.ndarray  # indices into the pool
    scores: np.ndarray  # float64 score of each pick
    short: bool
    complete: bool


def time_factor(query_days: float, days: np.ndarray, policy: RankingPolicy) -> np.ndarray:
    """Multiplier in ``[1 - time_weight, 1]`` for closeness in time to the story's own date (not to now): 1 on
    the same day, halfway to the floor after one half-life. A boost, never a cliff: a far better match from
    years ago still beats a weak fresh one. An undated candidate gets no boost (the floor, as if far apart) and
    loses nothing else; for an undated story, or free text, time plays no part (1 for all)."""
    if not policy.time_on or np.isnan(query_days):
        return np.ones(len(days), dtype=np.float64)
    apart = np.abs(days - query_days)
    decay = np.exp2(-np.nan_to_num(apart, nan=np.inf) / float(policy.time_half_life_days or 1.0))
    return (1.0 - policy.time_weight) + policy.time_weight * decay


def keyword_gate(sims: np.ndarray, policy: RankingPolicy) -> np.ndarray:
    """How much keyword evidence may count for each candidate, by how related the model finds it: 0 at or below
    the minimum similarity, 1 from ``keyword_gate`` up, linear in between. Shared words can reorder stories
    the model finds related; they cannot lift one it finds distant."""
    low, high = policy.min_similarity, max(policy.keyword_gate, policy.min_similarity + 1e-6)
    return np.clip((sims - low) / (high - low), 0.0, 1.0)


def scores(query: Query, pool: Pool, policy: RankingPolicy) -> np.ndarray:
    """Each candidate's score for the story (rounded to :data:`SCORE_DECIMALS`).

    ``(1 - w) * cosine + w * keyword cosine * gate``, times the time factor. For a story in a language the
    model was not trained on the cosine is noise: the keyword share is ``foreign_keyword_weight`` and the gate,
    which trusts the cosine, is off.
    """
    sims = pool.sims
    w: np.ndarray | float
    if not query.model_language and query.has_terms:
        w = policy.foreign_keyword_weight
        base = (1.0 - w) * sims + w * pool.keyword
    elif query.has_terms:
        w = keyword_weights(query, pool, policy)
        base = (1.0 - w) * sims + w * pool.keyword * keyword_gate(sims, policy)
    else:
        base = sims.astype(np.float64)
    return np.round(base * time_factor(query.days, pool.days, policy), SCORE_DECIMALS)


def keyword_weights(query: Query, pool: Pool, policy: RankingPolicy) -> np.ndarray | float:
    """The keyword share for each candidate: ``dated_keyword_weight`` where both stories are dated and time
    proximity is on, ``keyword_weight`` elsewhere."""
    dated = policy.dated_keyword_weight
    if dated is None or not policy.time_on or np.isnan(query.days):
        return policy.keyword_weight
    return np.where(np.isnan(pool.days), policy.keyword_weight, dated)


def select(
    query: Query,
    pool: Pool,
    score: np.ndarray,
    policy: RankingPolicy,
    k: int,
    *,
    exhausted: bool,
    searched: int | None = None,
) -> Ranked:
    """Steps 1, 2 and 4-6 of the module docstring over a pool whose scores are known (the one definition of
    copies, language, filters, minimum similarity and diversity). ``searched``: how many nearest stories the
    pool was asked for (None: the pool is given, e.g. a stored list plus a newcomer)."""
    m = len(pool)
    idx = np.arange(m)
    weakest = float(pool.sims.min()) if m else -1.0
    # 2 (first, as it decides the pool). A list keeps to its story's language, and its pool is the `searched`
    # nearest stories *of that language*: a bilingual archive gives each language the lists it would have alone.
    in_pool = np.ones(m, dtype=bool)
    full = True
    if policy.keeps_language and query.language >= 0:
        in_pool = (pool.languages == query.language) | (pool.languages < 0)
        if searched is not None and not in_pool.all():
            by_similarity = np.lexsort((pool.keys, -pool.sims))
            mine = by_similarity[in_pool[by_similarity]]
            full = len(mine) >= searched
            in_pool = np.zeros(m, dtype=bool)
            in_pool[mine[:searched]] = True
    # 1. never the story itself or a copy of it
    keep = in_pool & (pool.keys != query.key) & (pool.sims < policy.near_copy)
    if query.copy_code >= 0:
        keep &= pool.copy_codes != query.copy_code
    if query.url_code >= 0:
        keep &= pool.url_codes != query.url_code
    idx = idx[keep]
    # 3. best score first; equal scores by catalog key (a pure function of the catalog, whatever the search order)
    idx = idx[np.lexsort((pool.keys[idx], -score[idx]))]
    # 4. one link per copy group: greedy in score order (a candidate yields to an earlier kept one)
    idx = idx[_first_of_each_copy_group(pool, idx, policy.near_copy)]
    # 5. filters, then the minimum similarity (where the model reads the language)
    if pool.allowed is not None:
        idx = idx[pool.allowed[idx]]
    if query.model_language:
        idx = idx[pool.sims[idx] >= policy.min_similarity]
    else:  # the cosine says nothing: shared words decide what is related
        idx = idx[pool.keyword[idx] >= max(policy.min_keyword_similarity, 1e-12)]
    # 6. diversity, then the top k
    picks = _mmr(idx, score, pool.pairwise, k, 1.0 - policy.diversity) if policy.diversity > 0 else idx[:k]
    below_cut = query.model_language and weakest < policy.min_similarity  # nothing further down can pass
    if not full:  # fewer of the story's language than a pool holds: search further
        complete = exhausted or below_cut
    else:  # a story in a language the model cannot read is ranked by the words of its pool: that is its list
        complete = exhausted or below_cut or len(picks) >= k or not query.model_language
    return Ranked(picks, score[picks], len(picks) < k, complete)


def rank(
    query: Query, pool: Pool, policy: RankingPolicy, k: int, *, exhausted: bool, searched: int | None = None
) -> Ranked:
    """The whole pipeline over one story's pool (``searched``: how many nearest stories it was asked for)."""
    return select(query, pool, scores(query, pool, policy), policy, k, exhausted=exhausted, searched=searched)


def _first_of_each_copy_group(pool: Pool, order: np.ndarray, near_copy: float) -> np.ndarray:
    """Mask over ``order``: True for the first (best) of each copy group -- same text, same page, or an
    embedding cosine at or above ``near_copy`` with an earlier kept candidate."""
    m = len(order)
    if m < 2:
        return np.ones(m, dtype=bool)
    copies = pool.copy_codes[order]
    urls = pool.url_codes[order]
    pages = urls[urls >= 0]
    if len(np.unique(copies)) == m and len(np.unique(pages)) == len(pages):  # no same text, no same page
        hot = pool.pairwise >= near_copy  # the whole pool: cheaper than taking out ``order``'s part first
        if np.count_nonzero(hot) == np.count_nonzero(hot.diagonal()):  # and no two stories near copies
            return np.ones(m, dtype=bool)  # (most pools: the matrices below cost 0.1 ms a list)
    near = pool.pairwise[np.ix_(order, order)] >= near_copy
    same = (copies[:, None] == copies[None, :]) | ((urls[:, None] == urls[None, :]) & (urls[:, None] >= 0))
    conflict = np.triu(near | same, k=1)  # conflict[i, j]: i earlier than j and they are copies
    kept = np.ones(m, dtype=bool)
    for j in np.flatnonzero(conflict.any(axis=0)):
        if kept[conflict[:, j]].any():  # `kept` of earlier entries is final when j is reached
            kept[j] = False
    return kept


def _mmr(order: np.ndarray, score: np.ndarray, pairwise: np.ndarray, k: int, lambda_: float) -> np.ndarray:
    """Maximal marginal relevance over ``order`` (best first): each pick trades its score against its
    highest cosine to what is already picked. Ties go to the earlier candidate."""
    pool = list(order)
    picked: list[int] = []
    while pool and len(picked) < k:
        if picked:
            redundancy = pairwise[np.ix_(pool, picked)].max(axis=1)
            gains = lambda_ * score[pool] - (1.0 - lambda_) * redundancy
        else:
            gains = lambda_ * score[pool]
        best = int(np.argmax(gains))  # first of equal gains
        picked.append(pool.pop(best))
    return np.asarray(picked, dtype=np.int64)
