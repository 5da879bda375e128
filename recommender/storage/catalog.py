"""The SQLite catalog: the source of truth for articles, their vectors and the change log.

The FAISS file is a cache of the ``vectors`` table; it can always be rebuilt from here. Every change to the
article set is one transaction that also appends to ``changes``, so an index saved at change ``seq`` N can be
brought up to date by replaying the changes after N.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from recommender.articles import Article, article_from_json, url_key
from recommender.storage.faults import translated
from recommender.storage.sql import Transaction, in_chunks, keyset_pages

SCHEMA_VERSION = 1
#: A claim on vectors (see :meth:`Catalog.claim_vectors`) not refreshed for this long is from a writer that died.
CLAIM_TTL_SECONDS = 3600.0
#: Parsed articles kept per connection (see :meth:`Catalog.get_many`).
PARSED_CACHE_SIZE = 4096
_CARD_COLUMNS = "key, id, title, url, published_at, section, language, tags"
_BARE_CARD_COLUMNS = "key, id, NULL, url, published_at, section, language, NULL"
_LINK_COLUMNS = "key, id, title, url, published_at, section"
#: What a catalog written before the ``title`` and ``tags`` columns is read with (read-only: not migrated).
_EXTRACTED = {"title": "json_extract(data, '$.title')", "tags": "json_extract(data, '$.tags')"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    key INTEGER PRIMARY KEY AUTOINCREMENT,  -- the FAISS id; never reused
    id TEXT NOT NULL UNIQUE,
    url TEXT,
    url_key TEXT,                           -- normalised URL: scheme, www, query and slash variants agree
    published_at TEXT,
    section TEXT,
    language TEXT,
    title TEXT,                             -- the link card's, from data (read for every link served)
    tags TEXT,                              -- JSON list, from data (editors' rules match on it)
    data TEXT NOT NULL,                     -- the whole article as JSON
    content_hash TEXT NOT NULL,             -- sha256 of the embedded text
    copy_key TEXT NOT NULL,                 -- hash of the normalised text: equal = copies
    record_hash TEXT NOT NULL,              -- hash of every field
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_url ON articles(url_key);
CREATE INDEX IF NOT EXISTS articles_content ON articles(content_hash);
CREATE TABLE IF NOT EXISTS vectors (content_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS related (
    variant TEXT NOT NULL,                  -- '' = the ranking policy; else a named variant (A/B)
    key INTEGER NOT NULL,                   -- the article whose "Also Read" list this is
    items TEXT NOT NULL,                    -- JSON [[key, similarity, score], ...], best first
    short INTEGER NOT NULL,                 -- 1: fewer related stories than the list depth exist
    PRIMARY KEY (variant, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS related_refs (   -- reverse of related.items: which lists show dst
    variant TEXT NOT NULL,
    dst INTEGER NOT NULL,
    src INTEGER NOT NULL,
    PRIMARY KEY (variant, dst, src)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS related_refs_src ON related_refs(variant, src);  -- rewriting one list deletes by src
CREATE TABLE IF NOT EXISTS terms (           -- keyword snapshot: articles of a language containing each term
    language TEXT NOT NULL,                 -- primary subtag ('en'), '' = unknown
    term TEXT NOT NULL,
    df INTEGER NOT NULL,
    PRIMARY KEY (language, term)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rules (           -- editors' rules: pins, blocks, exclusions (recommender.controls.rules)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('pin', 'block', 'exclude')),
    target_type TEXT NOT NULL,              -- story, section, tag or all: what is pinned or never shown
    target TEXT,
    scope_type TEXT NOT NULL,               -- all, story, section or tag: under which stories it applies
    scope TEXT,
    position INTEGER,                       -- a pin's place in the list, from 1
    until TEXT,                             -- ISO 8601 UTC; the rule stops applying then (no rebuild needed)
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vector_claims (  -- vectors a writer embedded and is about to use: never swept
    content_hash TEXT NOT NULL,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (content_hash, owner)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete'))
);
"""


@dataclass(frozen=True)
class StoredArticle:
    """An article as the catalog holds it, with its integer key (the FAISS id)."""

    key: int
    article: Article
    content_hash: str
    copy_key: str
    record_hash: str


@dataclass(frozen=True)
class PoolRow:
    """What ranking reads of a candidate without its text (:meth:`Catalog.pool_rows`)."""

    copy_key: str
    url_key: str | None
    published_at: str | None
    language: str | None
    content_hash: str
    vector: np.ndarray


def _row_to_stored(row: sqlite3.Row) -> StoredArticle:
    return StoredArticle(
        key=row["key"],
        article=article_from_json(row["data"]),
        content_hash=row["content_hash"],
        copy_key=row["copy_key"],
        record_hash=row["record_hash"],
    )


class Catalog:
    """A connection to one index folder's ``catalog.sqlite`` (WAL mode: readers never block the writer)."""

    FILENAME = "catalog.sqlite"

    def __init__(
        self, path: Path, *, create: bool = False, check_same_thread: bool = True, read_only: bool = False
    ) -> None:
        self.path = path
        self._parsed: OrderedDict[int, StoredArticle] = OrderedDict()
        if not create and not path.exists():
            raise FileNotFoundError(path)
        self.conn = sqlite3.connect(path, timeout=30, check_same_thread=check_same_thread, isolation_level=None)
        try:
            with translated(str(path)):
                self.conn.row_factory = sqlite3.Row
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss
                if create or not read_only:
                    self._migrate_lists()
                    self.conn.executescript(_SCHEMA)  # idempotent; also adds tables new in this version
                    self._migrate_cards()
                self._card_columns, self._link_columns = _CARD_COLUMNS, _LINK_COLUMNS
                if not self._has_card_columns():  # an older catalog opened read-only: extract as it was
                    self._card_columns = _extracted(_CARD_COLUMNS)
                    self._link_columns = _extracted(_LINK_COLUMNS)
                if create:
                    self.conn.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    # -- consistent reads ---------------------------------------------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside the block sees one committed state of the catalog (one read transaction; WAL lets
        writers go on meanwhile). A reader that counts articles, replays the change log and reads related lists
        in one snapshot never sees half of another process's write. Inside a transaction already, a no-op."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")  # a read transaction: nothing to commit, it only ends the snapshot

    def quick_check(self) -> str | None:
        """What SQLite's quick integrity check finds wrong with the file (None when nothing): a damaged catalog
        is refused by ``serve`` and reported by ``check`` instead of answering some requests with errors."""
        with translated(str(self.path)):
            rows = [str(r[0]) for r in self.conn.execute("PRAGMA quick_check(5)")]
        return None if rows == ["ok"] else "; ".join(rows)

    # -- meta -------------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _migrate_lists(self) -> None:
        """Lists stored by an older version (no variant column) are dropped: the next write or server start
        recomputes every list (``related_seq`` is cleared), and keyword counts are re-taken with them."""
        columns = [row[1] for row in self.conn.execute("PRAGMA table_info(related)")]
        terms = [row[1] for row in self.conn.execute("PRAGMA table_info(terms)")]
        if (columns and "variant" not in columns) or (terms and "language" not in terms):
            with self.transaction():
                self.conn.execute("DROP TABLE IF EXISTS related")
                self.conn.execute("DROP TABLE IF EXISTS related_refs")
                self.conn.execute("DROP TABLE IF EXISTS terms")
                self.conn.execute("DELETE FROM meta WHERE key IN ('related_seq', 'terms_version', 'terms_docs')")

    def _has_card_columns(self) -> bool:
        return {"title", "tags"} <= {row[1] for row in self.conn.execute("PRAGMA table_info(articles)")}

    def _migrate_cards(self) -> None:
        """A catalog from before the ``title`` and ``tags`` columns gets them, filled from each article's JSON
        (once; another process may be doing it at the same moment, so it is checked again inside the write)."""
        if self._has_card_columns():
            return
        with self.transaction():
            if self._has_card_columns():
                return
            self.conn.execute("ALTER TABLE articles ADD COLUMN title TEXT")
            self.conn.execute("ALTER TABLE articles ADD COLUMN tags TEXT")
            self.conn.execute(
                "UPDATE articles SET title = json_extract(data, '$.title'), tags = json_extract(data, '$.tags')"
            )

    # -- reads ------------------------------------------------------------------------------------------------
    def doc_freqs(self, terms: Iterable[str], language: str | None = None) -> dict[str, int]:
        """How many articles of the keyword snapshot contain each term (absent terms are left out): among the
        articles in ``language`` (``''`` = of unknown language), or in every language when it is None."""
        out: dict[str, int] = {}
        wanted = list(set(terms))
        for chunk, marks in in_chunks(wanted):
            if language is None:
                sql, args = f"SELECT term, SUM(df) FROM terms WHERE term IN ({marks}) GROUP BY term", chunk
            else:
                sql, args = f"SELECT term, df FROM terms WHERE language = ? AND term IN ({marks})", [language, *chunk]
            try:
                rows = self.conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:  # a read-only open of a catalog older than the terms table
                return {}
            out.update((term, int(df)) for term, df in rows)
        return out

    def count(self, at_most: int | None = None) -> int:
        """How many articles there are; with ``at_most``, counted up to that many (a whole count reads an index
        of every row: 4 ms at 100,000 articles)."""
        if at_most is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])
        sql = "SELECT COUNT(*) FROM (SELECT 1 FROM articles LIMIT ?)"
        return int(self.conn.execute(sql, (max(0, at_most),)).fetchone()[0])

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def get(self, article_id: str) -> StoredArticle | None:
        row = self.conn.execute("SELECT * FROM articles WHERE id = ?", (article_id,)).fetchone()
        return _row_to_stored(row) if row else None

    def get_by_url(self, url: str) -> StoredArticle | None:
        row = self.conn.execute(
            "SELECT * FROM articles WHERE url_key = ? ORDER BY url = ? DESC, key LIMIT 1", (url_key(url), url)
        ).fetchone()
        return _row_to_stored(row) if row else None

    def get_many(self, keys: Sequence[int]) -> dict[int, StoredArticle]:
        """Articles by key; keys no longer in the catalog (deleted) are simply absent.

        Parsed articles are kept in a small LRU keyed by (key, record hash): ranking looks at the same
        neighbours again and again, and parsing their JSON was most of a ranking call's time. The record hash
        is read every time, so an edited or deleted article is never served from the cache.
        """
        out: dict[int, StoredArticle] = {}
        cache = self._parsed
        for chunk, marks in in_chunks([int(k) for k in keys]):
            misses = []
            for key, record_hash in self.conn.execute(
                f"SELECT key, record_hash FROM articles WHERE key IN ({marks})", chunk
            ):
                hit = cache.get(key)
                if hit is not None and hit.record_hash == record_hash:
                    cache.move_to_end(key)
                    out[key] = hit
                else:
                    misses.append(key)
            if misses:
                marks = ",".join("?" * len(misses))
                for row in self.conn.execute(f"SELECT * FROM articles WHERE key IN ({marks})", misses):
                    stored = out[row["key"]] = cache[row["key"]] = _row_to_stored(row)
                    cache.move_to_end(stored.key)
                while len(cache) > PARSED_CACHE_SIZE:
                    cache.popitem(last=False)
        return out

    def pool_rows(self, keys: Sequence[int]) -> dict[int, PoolRow]:
        """What ranking reads of each candidate -- copy key, normalised URL, date, language, content hash and
        vector -- in one query, without reading (or parsing) the article. Keys no longer in the catalog, or
        without a vector, are left out."""
        out: dict[int, PoolRow] = {}
        for chunk, marks in in_chunks([int(k) for k in keys]):
            sql = (
                "SELECT a.key, a.copy_key, a.url_key, a.published_at, a.language, a.content_hash, v.vector "
                f"FROM articles a JOIN vectors v ON v.content_hash = a.content_hash WHERE a.key IN ({marks})"
            )
            for key, copy_key, ukey, published_at, language, content_hash, blob in self.conn.execute(sql, chunk):
                vector = np.frombuffer(blob, dtype=np.float32)
                out[int(key)] = PoolRow(copy_key, ukey, published_at, language, content_hash, vector)
        return out

    def texts(self, keys: Sequence[int]) -> dict[int, str]:
        """The embedded text (title and body, :attr:`Article.text`) of each key; absent keys are left out."""
        out: dict[int, str] = {}
        for chunk, marks in in_chunks([int(k) for k in keys]):
            for key, data in self.conn.execute(f"SELECT key, data FROM articles WHERE key IN ({marks})", chunk):
                out[int(key)] = article_from_json(data).text
        return out

    def key_of(self, article_id: str) -> int | None:
        """The catalog key of an article id (None when absent): an index lookup, no parsing."""
        row = self.conn.execute("SELECT key FROM articles WHERE id = ?", (article_id,)).fetchone()
        return int(row[0]) if row else None

    def links(self, keys: Sequence[int]) -> dict[int, LinkCard]:
        """What an "Also Read" link shows of each key (:class:`LinkCard`: one JSON field extracted, no
        :class:`Article` made: this is read for every list served). Absent (deleted) keys are left out."""
        out: dict[int, LinkCard] = {}
        for chunk, marks in in_chunks([int(k) for k in keys]):
            for key, *card in self.conn.execute(
                f"SELECT {self._link_columns} FROM articles WHERE key IN ({marks})", chunk
            ):
                out[int(key)] = LinkCard(*card)
        return out

    def cards(self, keys: Sequence[int]) -> dict[int, Article]:
        """What an "Also Read" link shows and editors filter on -- id, title, URL, date, section, language, tags
        -- for each key, without the body: SQLite extracts the title, so serving a stored list never parses
        whole articles. Absent (deleted) keys are left out."""
        out: dict[int, Article] = {}
        for chunk, marks in in_chunks([int(k) for k in keys]):
            for row in self.conn.execute(f"SELECT {self._card_columns} FROM articles WHERE key IN ({marks})", chunk):
                out[int(row[0])] = _card(row)
        return out

    def card_of(self, article_id: str, *, text: bool = True) -> tuple[int, Article] | None:
        """An article's key and link card by id (one indexed read); None when absent. ``text=False`` leaves the
        title and tags out (empty): they are in the article's JSON, which SQLite must parse whole to extract
        them."""
        columns = self._card_columns if text else _BARE_CARD_COLUMNS
        row = self.conn.execute(f"SELECT {columns} FROM articles WHERE id = ?", (article_id,)).fetchone()
        return (int(row[0]), _card(row)) if row else None

    def sections(self, ids: Iterable[str]) -> dict[str, str | None]:
        """``id -> section`` for those of ``ids`` in the catalog (absent ids are left out)."""
        out: dict[str, str | None] = {}
        for chunk, marks in in_chunks(list(set(ids))):
            for article_id, section in self.conn.execute(
                f"SELECT id, section FROM articles WHERE id IN ({marks})", chunk
            ):
                out[str(article_id)] = section
        return out

    def copy_keys(self, keys: Sequence[int]) -> dict[int, tuple[str, str | None, str | None]]:
        """``key -> (copy key, normalised URL, language)``: what the copy and language rules compare, without
        reading the article."""
        out: dict[int, tuple[str, str | None, str | None]] = {}
        for chunk, marks in in_chunks([int(k) for k in keys]):
            for key, copy_key, ukey, language in self.conn.execute(
                f"SELECT key, copy_key, url_key, language FROM articles WHERE key IN ({marks})", chunk
            ):
                out[int(key)] = (copy_key, ukey, language)
        return out

    def record_hashes(self, ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """``id -> (key, record_hash)`` for the ids already in the catalog."""
        out: dict[str, tuple[int, str]] = {}
        for chunk, marks in in_chunks(ids):
            for row in self.conn.execute(f"SELECT id, key, record_hash FROM articles WHERE id IN ({marks})", chunk):
                out[row["id"]] = (row["key"], row["record_hash"])
        return out

    def missing_vectors(self, content_hashes: Iterable[str]) -> set[str]:
        """The hashes that have no stored vector yet (the only texts that need embedding)."""
        wanted = list(dict.fromkeys(content_hashes))
        have: set[str] = set()
        for chunk, marks in in_chunks(wanted):
            have.update(
                r[0]
                for r in self.conn.execute(f"SELECT content_hash FROM vectors WHERE content_hash IN ({marks})", chunk)
            )
        return set(wanted) - have

    def vector_for(self, content_hash: str) -> np.ndarray | None:
        row = self.conn.execute("SELECT vector FROM vectors WHERE content_hash = ?", (content_hash,)).fetchone()
        return np.frombuffer(row[0], dtype=np.float32) if row else None

    def iter_vectors(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(keys, vectors)`` for every article, in key order, in batches (memory stays flat)."""
        sql = (
            "SELECT a.key, v.vector FROM articles a JOIN vectors v ON v.content_hash = a.content_hash "
            "WHERE a.key > ? ORDER BY a.key LIMIT ?"
        )
        for rows in keyset_pages(self.conn, sql, -1, batch):
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield keys, vectors

    def changes_since(self, seq: int) -> list[tuple[int, int, str]]:
        """``(seq, key, op)`` of every change after ``seq``."""
        return [
            tuple(r) for r in self.conn.execute("SELECT seq, key, op FROM changes WHERE seq > ? ORDER BY seq", (seq,))
        ]

    def vectors_for_keys(self, keys: Sequence[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for chunk, marks in in_chunks([int(k) for k in keys]):
            sql = (
                "SELECT a.key, v.vector FROM articles a JOIN vectors v ON v.content_hash = a.content_hash "
                f"WHERE a.key IN ({marks})"
            )
            for row in self.conn.execute(sql, chunk):
                out[row[0]] = np.frombuffer(row[1], dtype=np.float32)
        return out

    def iter_articles(self) -> Iterator[StoredArticle]:
        for row in self.conn.execute("SELECT * FROM articles ORDER BY key"):
            yield _row_to_stored(row)

    # -- writes -----------------------------------------------------------------------------------------------
    def store_vectors(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Cache embeddings by content hash (committed at once, so an interrupted build resumes; not waiting for
        the disk: the article written after them syncs them, and a vector lost to a power cut is embedded again)."""
        rows = [(h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors, strict=True)]
        with self.transaction(durable=False):
            self.conn.executemany("INSERT OR REPLACE INTO vectors(content_hash, vector) VALUES (?, ?)", rows)

    def transaction(self, *, durable: bool = True) -> Transaction:
        """A write transaction (:class:`~recommender.storage.sql.Transaction`; ``durable=False``: for what can be
        made again)."""
        return Transaction(self.conn, durable=durable)

    def upsert(self, article: Article) -> tuple[int, str | None]:
        """Insert or replace one article (inside a transaction); logs the change.

        Returns its key and the content hash it had before (None for a new article), so the caller can drop a
        vector nothing uses any more.
        """
        now = datetime.now(UTC).isoformat()
        before = self.conn.execute("SELECT content_hash FROM articles WHERE id = ?", (article.id,)).fetchone()
        row = self.conn.execute(
            """
            INSERT INTO articles(id, url, url_key, published_at, section, language, title, tags, data, content_hash,
                                 copy_key, record_hash, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET url = excluded.url, url_key = excluded.url_key,
                published_at = excluded.published_at, section = excluded.section, language = excluded.language,
                title = excluded.title, tags = excluded.tags, data = excluded.data,
                content_hash = excluded.content_hash, copy_key = excluded.copy_key,
                record_hash = excluded.record_hash, updated_at = excluded.updated_at
            RETURNING key
            """,
            (
                article.id,
                article.url,
                url_key(article.url) if article.url else None,
                article.published_at,
                article.section,
                article.language,
                article.title,
                json.dumps(list(article.tags), ensure_ascii=False),
                json.dumps(article.to_dict(), ensure_ascii=False),
                article.content_hash,
                article.copy_key,
                article.record_hash,
                now,
            ),
        ).fetchone()
        key = int(row[0])
        self.conn.execute("INSERT INTO changes(key, op) VALUES (?, 'upsert')", (key,))
        return key, (before[0] if before else None)

    def delete(self, article_id: str) -> tuple[int, str] | None:
        """Remove one article (inside a transaction); returns its key and content hash, or None when absent."""
        row = self.conn.execute(
            "DELETE FROM articles WHERE id = ? RETURNING key, content_hash", (article_id,)
        ).fetchone()
        if row is None:
            return None
        self.conn.execute("INSERT INTO changes(key, op) VALUES (?, 'delete')", (int(row[0]),))
        return int(row[0]), str(row[1])

    def prune_vectors(self, hashes: Iterable[str] | None = None) -> int:
        """Drop cached vectors no article uses any more (inside a transaction), except those another writer has
        claimed (:meth:`claim_vectors`): it embedded them and is about to commit the articles that use them.

        With ``hashes``, only those are checked (cheap, per write); without, the whole table (a sweep, which also
        forgets the claims of writers that died).
        """
        fresh = time.time() - CLAIM_TTL_SECONDS
        unused = (
            "NOT EXISTS (SELECT 1 FROM articles a WHERE a.content_hash = vectors.content_hash) AND NOT EXISTS "
            "(SELECT 1 FROM vector_claims c WHERE c.content_hash = vectors.content_hash AND c.claimed_at > ?)"
        )
        if hashes is None:
            self.conn.execute("DELETE FROM vector_claims WHERE claimed_at <= ?", (fresh,))
            return self.conn.execute(f"DELETE FROM vectors WHERE {unused}", (fresh,)).rowcount
        rows = [(h, fresh) for h in set(hashes) if h]
        self.conn.executemany(f"DELETE FROM vectors WHERE content_hash = ? AND {unused}", rows)
        return len(rows)

    # -- editors' rules ----------------------------------------------------------------------------------------
    # Rules change no article, so they are not in ``changes`` (which the FAISS file replays); each write bumps
    # ``meta.rules_version`` in its transaction instead, which every serving process compares (see
    # :meth:`recommender.recommender.Recommender.follow_rules`).
    RULE_FIELDS = ("kind", "target_type", "target", "scope_type", "scope", "position", "until", "note", "created_at")

    def rules_version(self) -> int:
        """How many times the rules were changed (0: never)."""
        return int(self.get_meta("rules_version") or 0)

    def rule_rows(self) -> list[dict[str, object]]:
        """Every stored rule as a dict of the ``rules`` columns, oldest first."""
        try:
            rows = self.conn.execute(f"SELECT id, {', '.join(self.RULE_FIELDS)} FROM rules ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # a read-only open of a catalog older than the rules table
            return []
        return [dict(row) for row in rows]

    def insert_rule(self, values: dict[str, object]) -> int:
        """Store one rule (inside a transaction) and bump the rules version; returns its id."""
        row = self.conn.execute(
            f"INSERT INTO rules({', '.join(self.RULE_FIELDS)}) VALUES ({', '.join('?' * len(self.RULE_FIELDS))}) "
            "RETURNING id",
            [values.get(name) for name in self.RULE_FIELDS],
        ).fetchone()
        self.set_meta("rules_version", str(self.rules_version() + 1))
        return int(row[0])

    def delete_rules(self, ids: Sequence[int]) -> list[int]:
        """Remove rules by id (inside a transaction); returns the ids that existed. Bumps the rules version when
        anything was removed."""
        gone = [int(r[0]) for i in ids for r in self.conn.execute("DELETE FROM rules WHERE id = ? RETURNING id", (i,))]
        if gone:
            self.set_meta("rules_version", str(self.rules_version() + 1))
        return gone

    def claim_vectors(self, hashes: Iterable[str], owner: str) -> None:
        """Protect the vectors of ``hashes`` from other writers' sweeps until :meth:`release_claims` (or until
        the claim is :data:`CLAIM_TTL_SECONDS` old: its writer died). Committed at once, not waiting for the
        disk (a claim matters to writers running now: none outlives a power cut)."""
        now = time.time()
        with self.transaction(durable=False):
            self.conn.executemany(
                "INSERT OR REPLACE INTO vector_claims(content_hash, owner, claimed_at) VALUES (?, ?, ?)",
                [(h, owner, now) for h in dict.fromkeys(hashes)],
            )

    def refresh_claims(self, owner: str) -> None:
        """A long embedding run is still alive: its claims are not stale."""
        self.conn.execute("UPDATE vector_claims SET claimed_at = ? WHERE owner = ?", (time.time(), owner))

    def release_claims(self, owner: str) -> None:
        """The writer committed (or gave up): its vectors are ordinary cache entries again."""
        self.conn.execute("DELETE FROM vector_claims WHERE owner = ?", (owner,))

    def forget_changes(self, upto: int) -> None:
        """The index file now includes every change up to ``upto``: the log before it is no longer needed."""
        self.conn.execute("DELETE FROM changes WHERE seq <= ?", (upto,))


class LinkCard(NamedTuple):
    """What a link shows of a story (:meth:`Catalog.links`); the title is empty when the article has none."""

    id: str
    title: str | None
    url: str | None
    published_at: str | None
    section: str | None


def _extracted(columns: str) -> str:
    """``columns`` with the card columns read from each article's JSON instead (:data:`_EXTRACTED`)."""
    return ", ".join(_EXTRACTED.get(name, name) for name in columns.split(", "))


def _card(row: Sequence[Any]) -> Article:
    """A link card from a row of :data:`_CARD_COLUMNS`."""
    _, article_id, title, url, published_at, section, language, tags = row
    return Article(
        id=article_id,
        title=title or "",
        url=url,
        published_at=published_at,
        section=section,
        language=language,
        tags=tuple(json.loads(tags)) if tags and tags != "[]" else (),
    )
