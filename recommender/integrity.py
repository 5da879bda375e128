"""A full integrity check of an index folder, for operators (``recommender check``) and crash tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recommender.errors import RecommenderError
from recommender.ranking import lists as related_lists
from recommender.storage.faults import STORAGE_EXCEPTIONS, storage_error
from recommender.storage.store import IndexStore
from recommender.storage.vector_index import supports_remove


@dataclass
class IntegrityReport:
    """What was checked and what is wrong (``problems`` empty = healthy)."""

    articles: int = 0
    index_entries: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "articles": self.articles,
            "index_entries": self.index_entries,
            "problems": self.problems,
            "notes": self.notes,
        }


def check_index(index_dir: Path | str) -> IntegrityReport:
    """Open the index (manifest, FAISS checksum, catch-up) and check every invariant the writers keep.

    - SQLite's own integrity check passes;
    - the FAISS index holds one entry per catalog article (plus tombstones for graphs that cannot delete);
    - every article has a vector of the index's dimension;
    - precomputed lists point only at existing articles (a list may still show a story deleted after the
      change the lists are current to: the writer that deleted it updates the lists next, a note not a problem).

    Everything is read in one snapshot of the catalog, so a write committed by another process meanwhile is seen
    whole or not at all: a check running next to a server taking PUTs reports no damage that is not there. An
    I/O failure (a damaged catalog, an unreadable file) is a problem line, never an exception.
    """
    report = IntegrityReport()
    folder = Path(index_dir)
    try:
        store = IndexStore.open(folder)
    except RecommenderError as exc:
        report.problems.append(str(exc))
        return report
    except STORAGE_EXCEPTIONS as exc:
        report.problems.append(str(storage_error(exc, str(folder))))
        return report
    try:
        with store.catalog.snapshot():
            _check_open_store(store, report)
    except STORAGE_EXCEPTIONS as exc:
        report.problems.append(str(storage_error(exc, str(folder))))
    finally:
        store.close()
    return report


def _check_open_store(store: IndexStore, report: IntegrityReport) -> None:
    store.catch_up()  # (inside the snapshot: the FAISS side and the counts below agree)
    conn = store.catalog.conn
    damage = store.catalog.quick_check()
    if damage is not None:
        report.problems.append(f"SQLite integrity check: {damage}")
    report.articles = store.catalog.count()
    report.index_entries = int(store.index.ntotal)
    expected = report.articles + (0 if supports_remove(store.index) else store.tombstones)
    if report.index_entries != expected:
        report.problems.append(f"{report.index_entries} FAISS entries for {report.articles} articles")
    missing = conn.execute(
        "SELECT COUNT(*) FROM articles a LEFT JOIN vectors v ON v.content_hash = a.content_hash "
        "WHERE v.content_hash IS NULL"
    ).fetchone()[0]
    if missing:
        report.problems.append(f"{missing} article(s) without a vector")
    wrong_size = conn.execute(
        "SELECT COUNT(*) FROM vectors WHERE length(vector) != ?", (store.manifest.dimension * 4,)
    ).fetchone()[0]
    if wrong_size:
        report.problems.append(f"{wrong_size} vector(s) of the wrong dimension")
    done = related_lists.related_seq(store.catalog)
    last = store.catalog.last_seq()
    # A list may show a story deleted by a change the lists have not reached yet (its writer updates them next);
    # pointing at a story deleted before that is damage.
    dangling, pending = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE NOT later), COUNT(*) FILTER (WHERE later) FROM ("
        " SELECT EXISTS (SELECT 1 FROM changes c WHERE c.key = r.dst AND c.seq > ?) AS later"
        " FROM related_refs r LEFT JOIN articles a ON a.key = r.dst WHERE a.key IS NULL)",
        (done if done is not None else -1,),
    ).fetchone()
    if dangling:
        report.problems.append(f"{dangling} related-list entries point at deleted articles")
    if pending:
        report.notes.append(f"{pending} related-list entries show stories deleted since the lists were updated")
    if done is None or done < last:
        report.notes.append("related lists are behind the catalog (finished by the next write or server start)")
    if store.manifest.catalog_seq < last:
        report.notes.append(
            f"the FAISS file is {last - store.manifest.catalog_seq} change(s) behind the "
            "catalog (replayed from the change log at open)"
        )
