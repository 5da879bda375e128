"""Stored "Also Read" lists: computed at build time and kept current on every write, so serving is a lookup.

:class:`Lists` holds one index's ranking state: the policy of each variant (``""`` is the site's policy; named
variants are ranking policies under A/B test, each with lists of its own), the keyword model over the catalog's
keyword snapshot, and the version of the lists (part of the index version). Each list is stored to
:data:`DEPTH` entries (catalog key, embedding cosine, score; best first) with a reverse table, so that:

- a new or edited story gets its own list, and enters the lists of its nearest :data:`NEIGHBOURS` stories at
  once: its score in a neighbour's list is the same :func:`~recommender.ranking.pipeline.scores` a search from
  that neighbour would give it (both cosines, the time factor and the language rule are symmetric), and the
  neighbour's list is re-selected by the same :func:`~recommender.ranking.pipeline.select`;
- a deleted or edited story leaves every list that showed it at once (those lists are ranked again).

Every list is recomputed (:meth:`Lists.refresh_all`), and the keyword snapshot re-taken, after a build that
changed much of the archive, on a policy change, and by ``recommender refresh``. In between, a term's weight never
moves, so a stored list is what a live ranking of the same catalog gives (``tests/test_lists_equivalence.py``).
The catalog's ``meta.related_seq`` records up to which change the lists are current; after a crash between a
write's commit and its list update, :meth:`Lists.catch_up` finishes the job from the change log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pydantic_core

from recommender.articles import url_key
from recommender.errors import ArticleNotFound
from recommender.ranking import bulk
from recommender.ranking.keywords import KeywordModel, write_snapshot
from recommender.ranking.pipeline import LIST_DEPTH, SCORE_DECIMALS, Pool, Query, scores, select
from recommender.ranking.policy import NO_FILTERS, Filters, RankingPolicy
from recommender.ranking.search import (
    Codes,
    Entry,
    RankedList,
    Ranker,
    Searched,
    Subject,
    days_of,
    language_of,
    published,
)
from recommender.storage.catalog import Catalog, PoolRow
from recommender.storage.sql import in_chunks, keyset_pages
from recommender.storage.store import IndexStore
from recommender.storage.vector_index import single_thread

log = logging.getLogger(__name__)

#: Entries stored per list; requests for more (k up to 50) are a live search.
DEPTH = LIST_DEPTH
#: How many of a new story's nearest neighbours get the chance to take it into their lists.
NEIGHBOURS = 50
#: Above this share of changed articles a write recomputes every list instead of patching.
FULL_REFRESH_SHARE = 0.2
#: The site's own policy (the variant every reader gets unless an A/B test says otherwise).
DEFAULT_VARIANT = ""


@dataclass(frozen=True)
class StoredList:
    entries: list[Entry]
    short: bool


# -- the catalog's tables ------------------------------------------------------------------------------------------
def load(catalog: Catalog, key: int, variant: str = DEFAULT_VARIANT, depth: int | None = None) -> StoredList | None:
    """A stored list (its first ``depth`` entries when given; ``short`` is still the whole list's)."""
    row = catalog.conn.execute(
        "SELECT items, short FROM related WHERE variant = ? AND key = ?", (variant, key)
    ).fetchone()
    if row is None:
        return None
    items = pydantic_core.from_json(row[0])
    return StoredList([Entry(int(e[0]), float(e[1]), float(e[2])) for e in items[:depth]], bool(row[1]))


def _load_if_current(catalog: Catalog, key: int, variant: str, depth: int | None, seq: int) -> StoredList | None:
    """:func:`load`, when the lists include every change up to ``seq`` (``related_seq``, read in the same query:
    this is the read every stored-list answer makes)."""
    row = catalog.conn.execute(
        "SELECT items, short, (SELECT value FROM meta WHERE key = 'related_seq') FROM related "
        "WHERE variant = ? AND key = ?",
        (variant, key),
    ).fetchone()
    if row is None or row[2] is None or int(row[2]) < seq:
        return None
    items = pydantic_core.from_json(row[0])
    return StoredList([Entry(int(e[0]), float(e[1]), float(e[2])) for e in items[:depth]], bool(row[1]))


def load_many(catalog: Catalog, keys: Sequence[int], variant: str = DEFAULT_VARIANT) -> dict[int, StoredList]:
    """:func:`load` of several lists in one query (absent lists are left out)."""
    out: dict[int, StoredList] = {}
    for chunk, marks in in_chunks([int(k) for k in keys]):
        sql = f"SELECT key, items, short FROM related WHERE variant = ? AND key IN ({marks})"
        for key, items, short in catalog.conn.execute(sql, [variant, *chunk]):
            entries = [Entry(int(e[0]), float(e[1]), float(e[2])) for e in pydantic_core.from_json(items)]
            out[int(key)] = StoredList(entries, bool(short))
    return out


def items_json(entries: Sequence[Entry]) -> str:
    """A list as the ``related.items`` column stores it: ``[[key, similarity, score], ...]`` (compact JSON,
    written by pydantic-core: a ninth of ``json.dumps``'s time, which a build pays once per story)."""
    items = [[e.key, round(e.similarity, 6), round(e.score, SCORE_DECIMALS)] for e in entries]
    return pydantic_core.to_json(items).decode()


def _store(catalog: Catalog, key: int, ranked: RankedList, variant: str, stored: StoredList | None = None) -> None:
    """Write a story's list and its rows of the reverse table; ``stored``: the list it replaces, when known (then
    only the links that changed are written in the reverse table: a newcomer taken in, one pushed out)."""
    conn = catalog.conn
    conn.execute(
        "INSERT INTO related(variant, key, items, short) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(variant, key) DO UPDATE SET items = excluded.items, short = excluded.short",
        (variant, key, items_json(ranked.entries), int(ranked.short)),
    )
    new = {e.key for e in ranked.entries}
    if stored is None:
        conn.execute("DELETE FROM related_refs WHERE variant = ? AND src = ?", (variant, key))
        added = new
    else:
        old = {e.key for e in stored.entries}
        gone = sorted(old - new)
        if gone:
            sql = "DELETE FROM related_refs WHERE variant = ? AND dst = ? AND src = ?"
            conn.executemany(sql, [(variant, dst, key) for dst in gone])
        added = new - old
    if added:
        sql = "INSERT OR IGNORE INTO related_refs(variant, dst, src) VALUES (?, ?, ?)"
        conn.executemany(sql, [(variant, dst, key) for dst in sorted(added)])


def _drop(catalog: Catalog, key: int) -> None:
    """A deleted story's lists, every variant."""
    catalog.conn.execute("DELETE FROM related WHERE key = ?", (key,))
    catalog.conn.execute("DELETE FROM related_refs WHERE src = ?", (key,))


def _referrers(catalog: Catalog, key: int, variant: str) -> list[int]:
    rows = catalog.conn.execute("SELECT src FROM related_refs WHERE variant = ? AND dst = ?", (variant, key))
    return [int(r[0]) for r in rows]


def related_seq(catalog: Catalog) -> int | None:
    value = catalog.get_meta("related_seq")
    return int(value) if value is not None else None


def lists_version(catalog: Catalog) -> int:
    """How many times every stored list was recomputed: part of the index version."""
    return int(catalog.get_meta("lists_version") or 0)


def read_policies(catalog: Catalog) -> dict[str, RankingPolicy]:
    """The policy of every variant the catalog records (``""``: the site's; the defaults when none recorded)."""
    raw = catalog.get_meta("ranking_policy")
    out = {DEFAULT_VARIANT: RankingPolicy.from_mapping(json.loads(raw)) if raw else RankingPolicy()}
    variants = catalog.get_meta("ranking_variants")
    for name, values in (json.loads(variants) if variants else {}).items():
        out[str(name)] = RankingPolicy.from_mapping(values)
    return out


def _write_policies(catalog: Catalog, policies: dict[str, RankingPolicy]) -> None:
    catalog.set_meta("ranking_policy", json.dumps(policies[DEFAULT_VARIANT].to_dict()))
    named = {name: p.to_dict() for name, p in sorted(policies.items()) if name != DEFAULT_VARIANT}
    catalog.set_meta("ranking_variants", json.dumps(named))


def _all_ids(catalog: Catalog, page: int = 1000) -> Iterable[tuple[int, str]]:
    """``(key, id)`` of every article, a page at a time: memory stays flat however large the archive."""
    sql = "SELECT key, id FROM articles WHERE key > ? ORDER BY key LIMIT ?"
    for rows in keyset_pages(catalog.conn, sql, 0, page):
        yield from ((int(key), str(article_id)) for key, article_id in rows)


class Lists:
    """The stored lists of one open index, every variant, and what keeps them current."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._keywords: dict[float, KeywordModel] = {}
        self.reload()

    # -- state ------------------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the policies and the lists' version from the catalog (another process recomputed the lists,
        or changed a policy). True when anything changed."""
        version = lists_version(self.store.catalog)
        if getattr(self, "version", None) == version:
            return False
        self.version = version
        self.policies = read_policies(self.store.catalog)
        for model in self._keywords.values():
            model.reset()
        return True

    @property
    def catalog(self) -> Catalog:
        return self.store.catalog

    def policy(self, variant: str = DEFAULT_VARIANT) -> RankingPolicy:
        try:
            return self.policies[variant]
        except KeyError:
            raise ArticleNotFound(f"variant {variant}") from None

    def keywords(self, variant: str = DEFAULT_VARIANT) -> KeywordModel:
        prior = self.policy(variant).keyword_prior_docs
        model = self._keywords.get(prior)
        if model is None or model.catalog is not self.catalog:
            model = self._keywords[prior] = KeywordModel(self.catalog, prior)
        return model

    def ranker(self, variant: str = DEFAULT_VARIANT) -> Ranker:
        return Ranker(self.store, self.policy(variant), self.keywords(variant))

    # -- reading ----------------------------------------------------------------------------------------------
    def lookup(
        self, article_id: str, k: int, filters: Filters = NO_FILTERS, variant: str = DEFAULT_VARIANT
    ) -> tuple[list[Entry], bool] | None:
        """An article's list from the store: ``(entries, short)``, filtered. None when the stored list cannot
        answer -- k deeper than stored, no list, lists behind the catalog (a writer crashed before finishing
        them), or filters leaving fewer than k while the stored list was not already everything related -- and
        the caller searches live instead (a filter never shrinks a list while k matching stories exist)."""
        key = self.catalog.key_of(article_id)
        if key is None:
            raise ArticleNotFound(article_id)
        return self.lookup_key(key, k, filters, variant)

    def lookup_key(
        self, key: int, k: int, filters: Filters = NO_FILTERS, variant: str = DEFAULT_VARIANT
    ) -> tuple[list[Entry], bool] | None:
        """:meth:`lookup` by catalog key."""
        if k > DEPTH:
            return None
        catalog = self.catalog
        entry = _load_if_current(catalog, key, variant, k if filters.empty else None, self.store.seq)
        if entry is None:
            return None
        if filters.empty:
            picked = entry.entries[:k]
        else:
            cards = catalog.cards([e.key for e in entry.entries])
            picked = [e for e in entry.entries if e.key in cards and filters.passes(cards[e.key])][:k]
        if len(picked) == k or entry.short:
            return picked, len(picked) < k
        return None

    # -- writing ----------------------------------------------------------------------------------------------
    def refresh_all(self, policy: RankingPolicy | None = None, variant: str = DEFAULT_VARIANT) -> int:
        """Recompute every list of every variant and re-take the keyword snapshot, in one transaction (readers
        see the old lists until the new ones are all written). With ``policy``, it is recorded for ``variant``
        first (a policy change; a new variant). Returns how many lists were written."""
        catalog = self.catalog
        seq = catalog.last_seq()
        count = 0
        self.version = -1  # whatever happens below, the next reload() reads the catalog again
        with catalog.transaction():
            if policy is not None:
                self.policies = {**self.policies, variant: policy}
                _write_policies(catalog, self.policies)
            catalog.conn.execute("DELETE FROM related")
            catalog.conn.execute("DELETE FROM related_refs")
            archives = {}
            for name, variant_policy in sorted(self.policies.items()):
                prior = variant_policy.keyword_prior_docs
                if prior not in archives:
                    archives[prior] = bulk.load_archive(catalog, variant_policy)
                archive = archives[prior]
                if not count:  # the snapshot is the same for every variant: the counts of this pass
                    write_snapshot(catalog, archive.vocabulary, archive.df)
                    for model in self._keywords.values():
                        model.reset()
                count += self._refresh_variant(archive, name)
            catalog.set_meta("related_seq", str(seq))
            catalog.set_meta("lists_version", str(lists_version(catalog) + 1))
        self.reload()
        return count

    def remove_variant(self, variant: str) -> bool:
        """Stop an A/B variant: its policy and lists are dropped. False when there was no such variant."""
        if variant == DEFAULT_VARIANT or variant not in self.policies:
            return False
        with self.catalog.transaction():
            self.policies = {name: p for name, p in self.policies.items() if name != variant}
            _write_policies(self.catalog, self.policies)
            self.catalog.conn.execute("DELETE FROM related WHERE variant = ?", (variant,))
            self.catalog.conn.execute("DELETE FROM related_refs WHERE variant = ?", (variant,))
            self.catalog.set_meta("lists_version", str(lists_version(self.catalog) + 1))
        self.reload()
        return True

    def _refresh_variant(self, archive: bulk.Archive, variant: str) -> int:
        """Every list of one variant from :func:`recommender.ranking.bulk.rank_all`, written in batches (inside
        the caller's transaction, on emptied tables). The reverse table is written last, sorted by its primary
        key, with its ``src`` index built afterwards: inserted in list order, each row landed at a random place
        of a 20M-row B-tree (18 % of a 1M build's list time)."""
        catalog = self.catalog
        log.info(
            "related lists (%s): %d stories (%.0f MB of arrays)",
            variant or "policy",
            len(archive.keys),
            archive.nbytes / 1e6,
        )
        ranker = self.ranker(variant)
        policy = self.policy(variant)
        rows: list[tuple[str, int, str, int]] = []
        dst: list[np.ndarray] = []
        src: list[np.ndarray] = []
        count = slow = 0

        def flush() -> None:
            catalog.conn.executemany("INSERT INTO related(variant, key, items, short) VALUES (?, ?, ?, ?)", rows)
            rows.clear()

        search = self.store.search_many
        total = int(self.store.index.ntotal)
        for row, ranked, pool in bulk.rank_all(archive, search, total, policy, DEPTH, ranker.reads):
            key = int(archive.keys[row])
            if ranked.complete:
                entries = [
                    Entry(int(pool.keys[i]), float(pool.sims[i]), float(s))
                    for i, s in zip(ranked.picks, ranked.scores, strict=True)
                ]
                short = ranked.short
            else:  # the first candidate pool was not enough: search further, one story
                slow += 1
                article_id = catalog.conn.execute("SELECT id FROM articles WHERE key = ?", (key,)).fetchone()[0]
                full = ranker.rank(ranker.subject(article_id), DEPTH)
                entries, short = full.entries, full.short
            rows.append((variant, key, items_json(entries), int(short)))
            dst.append(np.fromiter((e.key for e in entries), dtype=np.int64, count=len(entries)))
            src.append(np.full(len(entries), key, dtype=np.int64))
            count += 1
            if len(rows) >= 5000:
                flush()
        flush()
        _write_refs(
            catalog,
            variant,
            np.concatenate(dst) if dst else np.zeros(0, np.int64),
            np.concatenate(src) if src else np.zeros(0, np.int64),
        )
        if slow:
            log.info("related lists: %d of %d needed a deeper search", slow, count)
        return count

    def update(self, keys: Sequence[int]) -> None:
        """Bring every variant's lists up to date after the articles with these catalog keys were added,
        edited or deleted. The in-memory index must already include the change (``store.catch_up()``)."""
        catalog = self.catalog
        keys = list(dict.fromkeys(keys))
        present = {k: s.article.id for k, s in catalog.get_many(keys).items()}
        # one thread for FAISS and BLAS: the neighbours' small searches and products pay for waking a team.
        # Not waiting for the disk: lists are made from the catalog, whose write was durable before this, and
        # lists lost to a power cut are behind `related_seq`, which the next catch-up redoes (readers meanwhile
        # rank live: a stored list is read only when it is current)
        with catalog.transaction(durable=False), single_thread():
            for key in keys:
                if key not in present:
                    _drop(catalog, key)
            for variant in sorted(self.policies):
                ranker = self.ranker(variant)
                stale: set[int] = set()
                for key in keys:
                    stale.update(_referrers(catalog, key, variant))  # lists that showed the old version
                searches: dict[int, tuple[Subject, Searched]] = {}
                for key, article_id in present.items():
                    subject = ranker.subject(article_id)
                    ranked, searched = ranker.rank_searched(subject, DEPTH)
                    _store(catalog, key, ranked, variant)
                    searches[key] = (subject, searched)
                stale -= set(keys)
                for key, stored in catalog.get_many(sorted(stale)).items():
                    _store(catalog, key, ranker.rank(ranker.subject(stored.article.id), DEPTH), variant)
                for key, (subject, searched) in searches.items():
                    self._offer_to_neighbours(ranker, key, subject, searched, set(keys) | stale, variant)
            catalog.set_meta("related_seq", str(catalog.last_seq()))

    def _offer_to_neighbours(
        self, ranker: Ranker, key: int, newcomer: Subject, searched: Searched, skip: set[int], variant: str
    ) -> None:
        """Let the nearest stories of a new or edited story take it into their lists.

        The neighbours are the first :data:`NEIGHBOURS` of the search that ranked the newcomer's own list
        (``searched``), and the newcomer's score in each neighbour's list comes from that pool (the same numbers
        a search from the neighbour would give); the neighbour's stored entries plus the newcomer are
        re-selected by the pipeline. A neighbour is ranked afresh instead when the policy diversifies (an item's
        place depends on the others), when the model does not read its language (its selection reads keyword
        cosines, which a stored list does not keep), or when a full list would shrink (the newcomer is a copy of
        a listed story and outranks it). What the listed stories are is read once for all neighbours.
        """
        catalog = self.catalog
        policy = ranker.policy
        near = {k for k in searched.found[: NEIGHBOURS + 1] if k != key and k not in skip}
        own_pool = searched.pool  # the newcomer's cosines and keyword cosines to each candidate
        position = {int(k): i for i, k in enumerate(own_pool.keys) if int(k) in near}
        neighbours = {k: searched.rows[k] for k in sorted(position)}
        current_lists = load_many(catalog, list(neighbours), variant)
        has_terms = ranker.has_terms(list(neighbours), list(neighbours.values()))
        copies, pages, languages = Codes(), Codes(), Codes()  # one set of codes for every pool below
        newcomer_codes = (copies(newcomer.copy_key), pages(_url(newcomer.url)), languages(newcomer.language))
        offers: list[tuple[int, Query, StoredList, float]] = []
        for n_key, facts in neighbours.items():
            current = current_lists.get(n_key)
            language = language_of(facts.language)
            reads = ranker.reads is None or language is None or language in ranker.reads
            if current is None or policy.diversity > 0 or not reads:
                _store(catalog, n_key, ranker.rank(ranker.subject_by_key(n_key), DEPTH), variant)
                continue
            i = position[n_key]
            # the neighbour as the query, the newcomer as its one candidate
            query = Query(
                key=n_key,
                copy_code=copies(facts.copy_key),
                url_code=pages(facts.url_key),
                days=days_of(published(facts.published_at)),
                language=languages(language),
                has_terms=has_terms[n_key],
            )
            single = Pool(
                keys=np.asarray([key], dtype=np.int64),
                sims=own_pool.sims[i : i + 1],
                keyword=own_pool.keyword[i : i + 1],
                copy_codes=np.asarray(newcomer_codes[:1], dtype=np.int64),
                url_codes=np.asarray(newcomer_codes[1:2], dtype=np.int64),
                days=np.asarray([days_of(newcomer.published)]),
                languages=np.asarray(newcomer_codes[2:], dtype=np.int64),
                pairwise=np.ones((1, 1)),
            )
            score = float(scores(query, single, policy)[0])
            if current.entries and len(current.entries) >= DEPTH:
                last = current.entries[-1]
                if (score, -key) < (last.score, -last.key):
                    continue  # ranks below everything listed: it cannot enter, nor push anything out
            offers.append((n_key, query, current, score))
        if not offers:
            return
        wanted = {e.key for _, _, current, _ in offers for e in current.entries}
        rows = {k: searched.rows[k] for k in wanted if k in searched.rows}
        rows.update(catalog.pool_rows(sorted(wanted - rows.keys())))
        table = _Listed.of(rows, newcomer, key, (copies, pages, languages))
        for n_key, query, current, score in offers:
            sim = float(own_pool.sims[position[n_key]])
            merged = _reselect(query, current, sim, score, policy, table)
            if merged is None:
                _store(catalog, n_key, ranker.rank(ranker.subject_by_key(n_key), DEPTH), variant)
            else:
                _store(catalog, n_key, merged, variant, stored=current)

    def catch_up(self) -> int:
        """Finish list updates a crash interrupted (catalog changes newer than ``related_seq``), or recompute
        every list when much changed. Returns the keys done."""
        catalog = self.catalog
        done = related_seq(catalog)
        last = catalog.last_seq()
        if done is not None and done >= last:
            return 0
        oldest = catalog.conn.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
        pending = last - done if done is not None else 0
        # the archive's size matters only while it is under pending / share: counting further would not change
        # the answer (and a whole count is the slowest part of a one-article update at 100,000 articles)
        count = max(catalog.count(at_most=int(pending / FULL_REFRESH_SHARE) + 1), 1)
        if done is None or oldest is None or oldest > done + 1 or pending > FULL_REFRESH_SHARE * count:
            return self.refresh_all()
        keys = [key for _, key, _ in catalog.changes_since(done)]
        self.update(keys)
        return len(set(keys))


@dataclass
class _Listed:
    """The stories the neighbours' lists hold, plus the newcomer (last row), as arrays: their codes and the
    cosines between all of them (one product for every neighbour's re-selection)."""

    row_of: dict[int, int]
    newcomer: int  # its catalog key
    copy_codes: np.ndarray
    url_codes: np.ndarray
    languages: np.ndarray
    pairwise: np.ndarray

    @classmethod
    def of(
        cls, rows: dict[int, PoolRow], subject: Subject, newcomer: int, codes: tuple[Codes, Codes, Codes]
    ) -> _Listed:
        copies, pages, languages = codes
        keys = sorted(rows)
        facts = [rows[k] for k in keys]
        matrix = np.vstack([f.vector for f in facts] + [subject.vector]).astype(np.float64)
        return cls(
            row_of={k: i for i, k in enumerate(keys)},
            newcomer=newcomer,
            copy_codes=np.asarray([copies(f.copy_key) for f in facts] + [copies(subject.copy_key)], dtype=np.int64),
            url_codes=np.asarray([pages(f.url_key) for f in facts] + [pages(_url(subject.url))], dtype=np.int64),
            languages=np.asarray(
                [languages(language_of(f.language)) for f in facts] + [languages(subject.language)], dtype=np.int64
            ),
            pairwise=matrix @ matrix.T,
        )


def _reselect(
    query: Query, current: StoredList, similarity: float, score: float, policy: RankingPolicy, table: _Listed
) -> RankedList | None:
    """A neighbour's stored entries plus the newcomer through :func:`select`; None when that cannot be trusted
    (something listed was deleted meanwhile, or a full list would shrink)."""
    listed = [e.key for e in current.entries]
    if any(k not in table.row_of for k in listed):
        return None
    at = np.asarray([table.row_of[k] for k in listed] + [len(table.row_of)], dtype=np.int64)
    keys = listed + [table.newcomer]
    pool = Pool(
        keys=np.asarray(keys, dtype=np.int64),
        sims=np.asarray([e.similarity for e in current.entries] + [similarity], dtype=np.float64),
        keyword=np.zeros(len(keys)),  # read only for a story the model does not read: those are ranked afresh
        copy_codes=table.copy_codes[at],
        url_codes=table.url_codes[at],
        days=np.full(len(keys), np.nan),
        languages=table.languages[at],
        pairwise=table.pairwise[np.ix_(at, at)],
    )
    given = np.asarray([e.score for e in current.entries] + [score], dtype=np.float64)
    ranked = select(query, pool, given, policy, DEPTH, exhausted=True)
    if not current.short and len(ranked.picks) < DEPTH:
        return None  # the newcomer pushed a listed copy out: the next story down is not stored here
    picks = ranked.picks.tolist()
    sims, scored = pool.sims.tolist(), given.tolist()
    entries = [Entry(keys[i], sims[i], scored[i]) for i in picks]
    return RankedList(entries, current.short and len(entries) < DEPTH)


def _url(url: str | None) -> str | None:
    return url_key(url) if url else None


def _write_refs(catalog: Catalog, variant: str, dst: np.ndarray, src: np.ndarray, chunk: int = 100_000) -> None:
    """Fill the emptied reverse table in primary-key order, then (re)build its ``src`` index in one pass."""
    order = np.lexsort((src, dst))
    dst, src = dst[order], src[order]
    conn = catalog.conn
    conn.execute("DROP INDEX IF EXISTS related_refs_src")
    for start in range(0, len(dst), chunk):
        rows = zip(
            [variant] * len(dst[start : start + chunk]),
            dst[start : start + chunk].tolist(),
            src[start : start + chunk].tolist(),
            strict=True,
        )
        conn.executemany("INSERT OR IGNORE INTO related_refs(variant, dst, src) VALUES (?, ?, ?)", rows)
    conn.execute("CREATE INDEX related_refs_src ON related_refs(variant, src)")
