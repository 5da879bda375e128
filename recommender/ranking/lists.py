"""Precomputed "Also Read" lists: computed at build/add time and kept current on every write.

Serving by id is then a lookup. Each list is stored to :data:`DEPTH` entries (catalog keys and similarities,
best first) with a reverse table, so that:

- a new or edited story gets its own list, and enters the lists of its existing neighbours at once (each of
  its nearest :data:`NEIGHBOURS` stories re-ranks its stored list plus the newcomer, no search needed);
- a deleted or edited story leaves every list that showed it at once (those lists are recomputed).

The catalog's ``meta.related_seq`` records up to which change the lists are current; after a crash between a
write's commit and its list update, :func:`catch_up` finishes the job from the change log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.articles import url_key
from recommender.errors import ArticleNotFound
from recommender.ranking import bulk as bulk_lists
from recommender.ranking.keywords import cosine
from recommender.ranking.pipeline import Candidate, QueryContext, Ranked, RankingOptions
from recommender.ranking.policy import NO_FILTERS, Filters, RankingPolicy
from recommender.storage.catalog import Catalog
from recommender.storage.sql import keyset_pages

if TYPE_CHECKING:
    from recommender.recommender import Recommender, RelatedList

log = logging.getLogger(__name__)

#: Entries stored per list; requests for more (k up to 50) fall back to a live search.
DEPTH = 20
#: How many of a new story's nearest neighbours get the chance to take it into their lists.
NEIGHBOURS = 50
#: Above this share of changed articles a write recomputes every list instead of patching.
FULL_REFRESH_SHARE = 0.2


@dataclass(frozen=True)
class StoredList:
    items: list[tuple[int, float]]  # (catalog key, similarity), best first
    short: bool
    scores: list[float] | None = None  # each item's ranking score; None for lists stored without them


def load(catalog: Catalog, key: int) -> StoredList | None:
    row = catalog.conn.execute("SELECT items, short FROM related WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    entries = json.loads(row[0])
    scores = [float(e[2]) for e in entries] if all(len(e) > 2 for e in entries) else None
    return StoredList([(int(e[0]), float(e[1])) for e in entries], bool(row[1]), scores)


def _store(catalog: Catalog, key: int, ranked: Ranked) -> None:
    _store_items(catalog, key, _entries(ranked), ranked.short)


def _entries(ranked: Ranked) -> list[tuple[int, float, float]]:
    """``(key, similarity, ranking score)`` of each item: what a stored list keeps."""
    return [(c.key, c.similarity, c.rank_score) for c in ranked.items]


def _items_json(items: Sequence[tuple[int, float, float]]) -> str:
    """A list as the ``related.items`` column stores it: ``[[key, similarity, score], ...]``, 6 decimals."""
    return json.dumps([[k, round(sim, 6), round(score, 6)] for k, sim, score in items])


def _store_items(catalog: Catalog, key: int, items: Sequence[tuple[int, float, float]], short: bool) -> None:
    conn = catalog.conn
    conn.execute(
        "INSERT INTO related(key, items, short) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET items = excluded.items, short = excluded.short",
        (key, _items_json(items), int(short)),
    )
    conn.execute("DELETE FROM related_refs WHERE src = ?", (key,))
    conn.executemany("INSERT OR IGNORE INTO related_refs(dst, src) VALUES (?, ?)", [(k, key) for k, _, _ in items])


def _drop(catalog: Catalog, key: int) -> None:
    catalog.conn.execute("DELETE FROM related WHERE key = ?", (key,))
    catalog.conn.execute("DELETE FROM related_refs WHERE src = ?", (key,))


def _referrers(catalog: Catalog, key: int) -> list[int]:
    return [int(r[0]) for r in catalog.conn.execute("SELECT src FROM related_refs WHERE dst = ?", (key,))]


def _ids_for(catalog: Catalog, keys: Iterable[int]) -> dict[int, str]:
    return {k: s.article.id for k, s in catalog.get_many(list(keys)).items()}


def related_seq(catalog: Catalog) -> int | None:
    value = catalog.get_meta("related_seq")
    return int(value) if value is not None else None


def _all_ids(catalog: Catalog, page: int = 1000) -> Iterable[tuple[int, str]]:
    """``(key, id)`` of every article, a page at a time: memory stays flat however large the archive."""
    sql = "SELECT key, id FROM articles WHERE key > ? ORDER BY key LIMIT ?"
    for rows in keyset_pages(catalog.conn, sql, 0, page):
        yield from ((int(key), str(article_id)) for key, article_id in rows)


def refresh_all(rec: Recommender, policy: RankingPolicy | None = None) -> int:
    """Recompute every list (after a build; with ``policy``, recorded in the same transaction: a policy change).
    Returns how many lists were written.

    Vectorised in batches (:mod:`recommender.ranking.bulk`) when the ranking options allow it, else one ranked
    search per story.
    """
    catalog = rec.store.catalog
    seq = catalog.last_seq()
    count = 0
    with catalog.transaction():
        if policy is not None:
            catalog.set_meta("ranking_policy", json.dumps(policy.to_dict()))
            rec.adopt_policy(policy)
        catalog.conn.execute("DELETE FROM related")
        catalog.conn.execute("DELETE FROM related_refs")
        if bulk_lists.supports(rec.options):
            count = _refresh_all_bulk(rec)
        else:
            for key, article_id in _all_ids(catalog):
                _store(catalog, key, rec.rank_for(article_id, DEPTH))
                count += 1
        catalog.set_meta("related_seq", str(seq))
        catalog.set_meta("lists_version", str(int(catalog.get_meta("lists_version") or 0) + 1))
    rec.follow_lists()
    return count


def _refresh_all_bulk(rec: Recommender) -> int:
    """Every list from :func:`recommender.ranking.bulk.rank_all`, written in batches (inside the caller's
    transaction, on emptied tables).

    The reverse table is written last, sorted by its primary key, with its ``src`` index built afterwards:
    inserted in list order, each row landed at a random place of a 20M-row B-tree (18 % of a 1M build's list time).
    """
    catalog = rec.store.catalog
    archive = bulk_lists.load_archive(catalog)
    log.info("related lists: %d stories loaded (%.0f MB of arrays)", len(archive.keys), archive.nbytes / 1e6)
    options = rec._options(DEPTH, NO_FILTERS)
    lists: list[tuple[int, str, int]] = []
    dst: list[np.ndarray] = []
    src: list[np.ndarray] = []
    count = slow = 0

    def flush() -> None:
        catalog.conn.executemany("INSERT INTO related(key, items, short) VALUES (?, ?, ?)", lists)
        lists.clear()

    for row, ranked in bulk_lists.rank_all(archive, rec.store.search_many, int(rec.store.index.ntotal), options):
        key = int(archive.keys[row])
        if ranked.complete:
            items, short = ranked.items, ranked.short
        else:  # the first candidate pool was not enough: search further, one story
            slow += 1
            article_id = catalog.conn.execute("SELECT id FROM articles WHERE key = ?", (key,)).fetchone()[0]
            full = rec.rank_for(article_id, DEPTH)
            items, short = _entries(full), full.short
        lists.append((key, _items_json(items), int(short)))
        dst.append(np.fromiter((k for k, _, _ in items), dtype=np.int64, count=len(items)))
        src.append(np.full(len(items), key, dtype=np.int64))
        count += 1
        if len(lists) >= 5000:
            flush()
    flush()
    _write_refs(
        catalog,
        np.concatenate(dst) if dst else np.zeros(0, np.int64),
        np.concatenate(src) if src else np.zeros(0, np.int64),
    )
    if slow:
        log.info("related lists: %d of %d needed a deeper search", slow, count)
    return count


def _write_refs(catalog: Catalog, dst: np.ndarray, src: np.ndarray, chunk: int = 100_000) -> None:
    """Fill the emptied reverse table in primary-key order, then (re)build its ``src`` index in one pass."""
    order = np.lexsort((src, dst))
    dst, src = dst[order], src[order]
    conn = catalog.conn
    conn.execute("DROP INDEX IF EXISTS related_refs_src")
    for start in range(0, len(dst), chunk):
        rows = zip(dst[start : start + chunk].tolist(), src[start : start + chunk].tolist(), strict=True)
        conn.executemany("INSERT OR IGNORE INTO related_refs(dst, src) VALUES (?, ?)", rows)
    conn.execute("CREATE INDEX related_refs_src ON related_refs(src)")


def update(rec: Recommender, keys: Sequence[int]) -> None:
    """Bring the lists up to date after the articles with these catalog keys were added, edited or deleted.

    Must run with the in-memory index already including the change (``store.catch_up()``).
    """
    catalog = rec.store.catalog
    keys = list(dict.fromkeys(keys))
    present = _ids_for(catalog, keys)
    with catalog.transaction():
        stale: set[int] = set()
        for key in keys:
            stale.update(_referrers(catalog, key))  # lists that showed the old version (or the deleted story)
        for key in keys:
            if key in present:
                ranked = rec.rank_for(present[key], DEPTH)
                _store(catalog, key, ranked)
            else:
                _drop(catalog, key)
        stale -= set(keys)
        stale_ids = _ids_for(catalog, stale)
        for key, article_id in stale_ids.items():
            _store(catalog, key, rec.rank_for(article_id, DEPTH))
        for key, article_id in present.items():
            _offer_to_neighbours(rec, key, article_id, skip=set(keys) | set(stale_ids))
        catalog.set_meta("related_seq", str(catalog.last_seq()))


def _offer_to_neighbours(rec: Recommender, key: int, article_id: str, skip: set[int]) -> None:
    """Let the nearest stories of a new/edited story take it into their lists.

    Most neighbours are settled by scoring the newcomer alone against them (:func:`_try_insert`); only when a
    stored list lacks scores, the ranking options are ones that need the whole list (filters, freshness,
    diversity), or the newcomer is a copy of something already listed does the whole stored list get re-ranked.
    """
    catalog = rec.store.catalog
    query, query_vector = rec._query_for(article_id)
    # the newcomer's nearest stories, with their keyword vectors: the same pool its own list was ranked from
    near = [c for c in rec._candidates(query_vector, NEIGHBOURS + 1) if c.key != key and c.key not in skip]
    fast = bulk_lists.supports(rec.options)
    for neighbour in near:
        current = load(catalog, neighbour.key)
        if (
            fast
            and current is not None
            and key not in {k for k, _ in current.items}
            and _try_insert(rec, neighbour, current, key, query)
        ):
            continue
        pool = [k for k, _ in current.items] if current else []
        if key in pool:
            pool.remove(key)
        ranked = rec.rerank(neighbour.article.id, pool + [key], DEPTH)
        if current is not None and not current.short and len(ranked.items) < DEPTH:
            # the re-rank saw only the stored list: never let a full list shrink; search instead
            ranked = rec.rank_for(neighbour.article.id, DEPTH)
        _store(catalog, neighbour.key, ranked)


def newcomer_score(neighbour: Candidate, newcomer: QueryContext, options: RankingOptions) -> float | None:
    """The ranking score a newcomer gets in ``neighbour``'s list, or None when it does not belong there.

    What :func:`recommender.ranking.pipeline.rank` would give it with the neighbour as the query, computed from the
    newcomer's side: the embedding cosine and the keyword cosine are symmetric, so the newcomer's own candidate
    pool already holds both. Valid for options :func:`recommender.ranking.bulk.supports` (no filters, no
    freshness, no diversity).
    """
    article = neighbour.article
    if neighbour.copy_key == newcomer.copy_key or neighbour.similarity >= options.near_copy:
        return None  # a copy of the neighbour itself
    if newcomer.url and article.url and url_key(newcomer.url) == url_key(article.url):
        return None
    if neighbour.similarity < options.min_similarity:
        return None
    if options.keyword_weight <= 0 or not neighbour.terms:  # the neighbour, as the query, has no keywords
        return neighbour.similarity
    keywords = cosine(neighbour.terms, newcomer.terms) if newcomer.terms else 0.0
    return (1.0 - options.keyword_weight) * neighbour.similarity + options.keyword_weight * keywords


def _try_insert(
    rec: Recommender, neighbour: Candidate, current: StoredList, newcomer: int, query: QueryContext
) -> bool:
    """Place ``newcomer`` in ``neighbour``'s stored list by its own score, when that provably equals a re-rank.

    It does when the list has scores, the options are ones :func:`recommender.ranking.bulk.supports` (each
    item's score does not depend on the others), and the newcomer is no copy of a listed story (else the copy
    rules decide which one stays). Returns False when a full re-rank is needed; True when the list was settled
    (newcomer in, or not eligible).
    """
    if current.scores is None:
        return False
    score = newcomer_score(neighbour, query, rec._options(DEPTH, NO_FILTERS))
    if score is None:
        return True  # a copy of this story, or below the minimum similarity: it does not belong here
    full = len(current.items) >= DEPTH
    if full and score <= current.scores[-1]:
        return True  # weaker than everything listed
    catalog = rec.store.catalog
    listed = [k for k, _ in current.items]
    copies = catalog.copy_keys(listed)
    vectors = catalog.vectors_for_keys(listed)
    if len(copies) != len(listed) or len(vectors) != len(listed):
        return False  # something listed was deleted meanwhile
    new_url = url_key(query.url) if query.url else None
    for k in listed:
        copy_key, listed_url = copies[k]
        if copy_key == query.copy_key or (new_url and listed_url == new_url):
            return False
        if query.vector is not None and float(np.dot(vectors[k], query.vector)) >= rec.options.near_copy:
            return False
    entries = [(k, sim, s) for (k, sim), s in zip(current.items, current.scores, strict=True)]
    entries.append((newcomer, neighbour.similarity, score))
    entries.sort(key=lambda e: e[2], reverse=True)
    _store_items(catalog, neighbour.key, entries[:DEPTH], current.short and len(entries) < DEPTH)
    return True


def catch_up(rec: Recommender) -> int:
    """Finish list updates a crash interrupted (catalog changes newer than ``related_seq``). Returns keys done."""
    catalog = rec.store.catalog
    done = related_seq(catalog)
    last = catalog.last_seq()
    if done is not None and done >= last:
        return 0
    oldest = catalog.conn.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
    if (
        done is None
        or oldest is None
        or oldest > done + 1
        or (last - done) > FULL_REFRESH_SHARE * max(catalog.count(), 1)
    ):
        return refresh_all(rec)
    keys = [key for _, key, _ in catalog.changes_since(done)]
    update(rec, keys)
    return len(set(keys))


def lookup(rec: Recommender, article_id: str, k: int, filters: Filters) -> RelatedList | None:
    """An article's list from the precomputed store: a lookup, not a search.

    Filters are applied to the stored list. None when the stored list cannot answer: k deeper than stored, no
    list yet, or filters leaving fewer than k while the stored list was not already everything related (the
    caller then searches live, so a filter never shrinks the list while k matching stories exist).
    """
    from recommender.recommender import RelatedList, Suggestion

    catalog = rec.store.catalog
    key = catalog.key_of(article_id)
    if key is None:
        raise ArticleNotFound(article_id)
    done = related_seq(catalog)
    if k > DEPTH or done is None or done < rec.store.seq:
        return None  # deeper than stored, or a writer crashed before it brought the lists up to date
    entry = load(catalog, key)
    if entry is None:
        return None
    listed = [key for key, _ in entry.items]
    cards = catalog.cards(listed[:k])  # usually enough; the rest only when filters or deletes skip some
    picked: list[Suggestion] = []
    scores: list[float | None] = list(entry.scores) if entry.scores else [None] * len(entry.items)
    for n, ((item_key, similarity), relevance) in enumerate(zip(entry.items, scores, strict=True)):
        if n == k:
            cards.update(catalog.cards(listed[k:]))
        a = cards.get(item_key)
        if a is None or not filters.passes(a):
            continue
        picked.append(Suggestion(a.id, a.title, a.url, similarity, a.published_at, a.section, relevance))
        if len(picked) == k:
            break
    if len(picked) == k or entry.short:
        return RelatedList(picked, len(picked) < k)
    return None
