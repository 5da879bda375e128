"""A full integrity check of an index folder, for operators (``recommender check``) and crash tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recommender.errors import RecommenderError
from recommender.ranking import lists as related_lists
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
    - precomputed lists point only at existing articles.
    """
    report = IntegrityReport()
    try:
        store = IndexStore.open(Path(index_dir))
    except RecommenderError as exc:
        report.problems.append(str(exc))
        return report
    try:
        conn = store.catalog.conn
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            report.problems.append(f"SQLite integrity check: {result}")
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
        dangling = conn.execute(
            "SELECT COUNT(*) FROM related_refs r LEFT JOIN articles a ON a.key = r.dst WHERE a.key IS NULL"
        ).fetchone()[0]
        if dangling:
            report.problems.append(f"{dangling} related-list entries point at deleted articles")
        done = related_lists.related_seq(store.catalog)
        if done is None or done < store.catalog.last_seq():
            report.notes.append("related lists are behind the catalog (finished by the next write or server start)")
        if store.manifest.catalog_seq < store.catalog.last_seq():
            report.notes.append(
                f"the FAISS file is {store.catalog.last_seq() - store.manifest.catalog_seq} change(s) behind the "
                "catalog (replayed from the change log at open)"
            )
    finally:
        store.close()
    return report
