"""One index folder on disk: the catalog, the FAISS file and the manifest that ties them together.

Layout (see ``index/README.md``)::

    DIR/catalog.sqlite        articles, vectors (by content hash), change log   -- the source of truth
    DIR/vectors-<seq>.faiss   FAISS index of the catalog at change <seq>        -- a cache, rebuildable
    DIR/manifest.json         model, dimension, counts, index type, file name + sha256 of the FAISS file
    DIR/.lock                 held by the one process that writes

Crash safety: the catalog changes in SQLite transactions; a FAISS file is written under a new name, fsynced,
then the manifest is replaced atomically to point at it, and only then is the old file removed. A crash at any
point leaves a manifest that names a complete file; catalog changes the file does not include yet are replayed
from the change log when the index is opened.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock, Timeout

from recommender.errors import IndexBusy, IndexCorrupt, IndexMismatch, IndexNotFound, StorageError
from recommender.storage.catalog import Catalog
from recommender.storage.faults import translated
from recommender.storage.vector_index import (
    choose_index_type,
    fsync_dir,
    measure_recall,
    new_index,
    read_index,
    single_thread,
    supports_remove,
    write_index,
)

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Compact (rebuild) an index that cannot delete once this share of its entries are tombstones.
TOMBSTONE_COMPACT_RATIO = 0.2
#: Queries used to measure recall@10 against exact search after an approximate index is built.
RECALL_QUERIES = 200
#: Changes kept in the log after a save, for readers that hold an older index in memory.
CHANGE_LOG_KEEP = 100_000


_INDEX_FILE = re.compile(r"vectors-\d+-\d+\.faiss")
#: The largest integer SQLite stores (a manifest number above it cannot be compared with the catalog).
MAX_SQLITE_INT = 2**63 - 1
REINDEX_HINT = "rebuild the index file and manifest from the catalog with: recommender reindex --index {folder}"
_MANIFEST_INTS = ("dimension", "articles", "catalog_seq", "index_bytes", "index_entries", "tombstones")
_MANIFEST_STRS = ("model", "backend", "index_type", "built_at", "updated_at", "index_file", "index_sha256")


def manifest_problem(raw: dict[str, Any]) -> str | None:
    """What is wrong with the values of a manifest (None when each has its type and range)."""

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SQLITE_INT

    for key in _MANIFEST_INTS:
        if key in raw and not whole(raw[key]):
            return f"{key} = {str(raw[key])[:40]!r} is not a whole number from 0 to {MAX_SQLITE_INT}"
    for key in _MANIFEST_STRS:
        if key in raw and not isinstance(raw[key], str):
            return f"{key} = {str(raw[key])[:40]!r} is not a string"
    if "format_version" in raw and not whole(raw["format_version"]):
        return f"format_version = {str(raw['format_version'])[:40]!r} is not a whole number"
    if raw.get("max_memory_bytes") is not None and not whole(raw["max_memory_bytes"]):
        return f"max_memory_bytes = {str(raw['max_memory_bytes'])[:40]!r} is not a whole number"
    recall = raw.get("recall_at_10")
    if recall is not None and (isinstance(recall, bool) or not isinstance(recall, int | float)):
        return f"recall_at_10 = {str(recall)[:40]!r} is not a number"
    for key in ("build", "ranking"):
        if key in raw and not isinstance(raw[key], dict):
            return f"{key} is not an object"
    if raw.get("dimension") == 0:
        return "dimension = 0"
    return None


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """What ``manifest.json`` records about the saved index."""

    model: str
    backend: str
    dimension: int
    articles: int
    index_type: str
    built_at: str
    updated_at: str
    catalog_seq: int
    index_file: str
    index_sha256: str
    index_bytes: int
    index_entries: int
    tombstones: int = 0
    recall_at_10: float | None = None
    max_memory_bytes: int | None = None  # the budget the index type was chosen for (kept for later saves)
    build: dict[str, Any] = field(default_factory=dict)
    #: The ranking policy the lists were computed with, and A/B variants' (copies: the catalog's meta rules).
    ranking: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """The manifest of ``folder``, every value checked (a hand-edited ``"catalog_seq": "abc"``, a number too
        large for SQLite or ``"index_file": null`` is :class:`IndexCorrupt` naming the key, not a traceback)."""
        path = folder / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"{path}: unreadable manifest ({exc}); {REINDEX_HINT.format(folder=folder)}") from None
        if not isinstance(raw, dict):
            raise IndexCorrupt(f"{path}: the manifest is not a JSON object; {REINDEX_HINT.format(folder=folder)}")
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        problem = manifest_problem(known)
        if problem is not None:
            raise IndexCorrupt(f"{path}: {problem}; {REINDEX_HINT.format(folder=folder)}")
        try:
            return cls(**known)
        except TypeError as exc:  # a required key is missing
            raise IndexCorrupt(f"{path}: {exc}; {REINDEX_HINT.format(folder=folder)}") from None

    def save(self, folder: Path) -> None:
        path = folder / MANIFEST_NAME
        tmp = folder / f".{MANIFEST_NAME}.tmp-{os.getpid()}"
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)


def write_lock(folder: Path, timeout: float = 10.0) -> FileLock:
    """The folder's writer lock; acquiring it raises :class:`IndexBusy` after ``timeout`` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".lock"), timeout=timeout)


class acquire_write_lock:
    """``with acquire_write_lock(folder):`` -- one writer at a time, a clear error for the second."""

    def __init__(self, folder: Path, timeout: float = 10.0) -> None:
        self.folder = folder
        self.lock = write_lock(folder, timeout)

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except Timeout:
            raise IndexBusy(
                f"index busy: another process is writing to {self.folder}; try again when it is done"
            ) from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class IndexStore:
    """A catalog plus its FAISS index, loaded in memory and kept consistent with each other."""

    def __init__(self, folder: Path, catalog: Catalog, index: faiss.Index, manifest: Manifest) -> None:
        self.folder = folder
        self.catalog = catalog
        self.index = index
        self.manifest = manifest
        self.seq = manifest.catalog_seq
        self.tombstones = manifest.tombstones

    # -- opening ----------------------------------------------------------------------------------------------
    @staticmethod
    def exists(folder: Path) -> bool:
        return (folder / Catalog.FILENAME).exists() and (folder / MANIFEST_NAME).exists()

    @classmethod
    def open(cls, folder: Path, *, model: str | None = None, check_same_thread: bool = True) -> IndexStore:
        """Open the index in ``folder``: checksum-verify the FAISS file, then catch up with the catalog.

        Another process may be writing meanwhile: a save that replaces the FAISS file between our reading the
        manifest and the file is retried with the new manifest, and the change log, the counts and the checks
        are read in one snapshot of the catalog, so a reader never reports half of a write as damage.
        """
        if not cls.exists(folder):
            if (folder / Catalog.FILENAME).exists():
                raise IndexNotFound(
                    f"{folder} has a catalog but no {MANIFEST_NAME}; {REINDEX_HINT.format(folder=folder)}"
                )
            raise IndexNotFound(f"no index in {folder} (build one with: recommender build SOURCE --index {folder})")
        manifest, index = _read_saved_index(folder, model)
        catalog = Catalog(folder / Catalog.FILENAME, check_same_thread=check_same_thread)
        try:
            store = cls(folder, catalog, index, manifest)
            with catalog.snapshot(), translated(str(folder)):
                last = catalog.last_seq()
                if manifest.catalog_seq > last:
                    raise IndexCorrupt(
                        f"{folder}: the manifest says the index file holds change {manifest.catalog_seq}, but the "
                        f"catalog has only {last}; {REINDEX_HINT.format(folder=folder)}"
                    )
                store.catch_up()
                store.check()
        except BaseException:
            catalog.close()
            raise
        return store

    def close(self) -> None:
        self.catalog.close()

    # -- consistency ------------------------------------------------------------------------------------------
    def catch_up(self) -> int:
        """Apply catalog changes newer than the in-memory index (after a crash, or another writer). Returns count.
        The change log and the vectors are read in one snapshot, so a concurrent write is applied whole or not
        at all (the next catch-up takes it)."""
        with self.catalog.snapshot():
            changes = self.catalog.changes_since(self.seq)
            if not changes:
                return 0
            keys = list(dict.fromkeys(key for _, key, _ in changes))
            present = self.catalog.vectors_for_keys(keys)
        self._remove(keys)
        live = [k for k in keys if k in present]
        if live:
            self.index.add_with_ids(np.vstack([present[k] for k in live]), np.asarray(live, dtype=np.int64))
        self.seq = changes[-1][0]
        log.info("applied %d catalog change(s) to the in-memory index", len(changes))
        return len(changes)

    def _remove(self, keys: list[int]) -> None:
        if not keys:
            return
        if supports_remove(self.index):
            self.index.remove_ids(np.asarray(keys, dtype=np.int64))  # type: ignore[arg-type]  # faiss takes arrays
        else:
            self.tombstones += len(keys)  # stale entries are dropped at query time (their key is gone or rescored)

    def check(self) -> None:
        """Vector count must equal catalog rows (plus tombstones for graphs that cannot delete)."""
        rows = self.catalog.count()
        entries = int(self.index.ntotal)
        expected = rows if supports_remove(self.index) else None
        if expected is not None and entries != expected:
            raise IndexCorrupt(
                f"{self.folder}: {entries} vectors in the FAISS index but {rows} articles in the catalog"
            )
        if expected is None and entries < rows:
            raise IndexCorrupt(
                f"{self.folder}: {entries} vectors in the FAISS index but {rows} articles in the catalog"
            )

    # -- searching --------------------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` nearest entries: ``(scores, keys)``; keys may include stale entries (tombstones)."""
        n = max(1, min(n, int(self.index.ntotal)))
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        self._tune_search(n)
        with single_thread():
            scores, keys = self.index.search(query, n)
        mask = keys[0] >= 0
        return scores[0][mask], keys[0][mask]

    def search_many(self, vectors: np.ndarray, n: int) -> np.ndarray:
        """Keys of the ``n`` nearest entries of each row of ``vectors`` (-1 where fewer exist): one FAISS call
        on every thread, for batch work such as precomputing every list. Keys may include tombstones."""
        n = max(1, min(n, int(self.index.ntotal)))
        self._tune_search(n)
        _, keys = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), n)
        return keys

    def _tune_search(self, n: int) -> None:
        import faiss

        inner = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap) else self.index
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = max(128, n)

    # -- saving -----------------------------------------------------------------------------------------------
    def save(
        self, *, rebuild: bool = False, max_memory_bytes: int | None = None, build_info: dict[str, Any] | None = None
    ) -> Manifest:
        """Write the in-memory index as a new FAISS file and switch the manifest to it atomically.

        Rebuilds from the catalog when asked, when the archive size calls for another index type, or when
        tombstones pile up. ``max_memory_bytes`` (else the budget recorded at the last build) caps the index's RAM.
        """
        count = self.catalog.count()
        if max_memory_bytes is None:
            max_memory_bytes = self.manifest.max_memory_bytes
        wanted = choose_index_type(count, self.manifest.dimension, max_memory_bytes)
        if not (rebuild or wanted != self.manifest.index_type):
            self.catch_up()  # (a rebuild reads every vector from the catalog anyway: no point adding them here)
        entries = int(self.index.ntotal)
        too_many_tombstones = entries and self.tombstones / entries > TOMBSTONE_COMPACT_RATIO
        recall = self.manifest.recall_at_10
        if rebuild or wanted != self.manifest.index_type or too_many_tombstones:
            seq = self.catalog.last_seq()  # read first: a change committed during the rebuild is replayed later
            self.index, recall = build_faiss(self.catalog, wanted, self.manifest.dimension)
            self.seq = seq
            self.tombstones = 0
            self.manifest.index_type = wanted
            self.manifest.built_at = utcnow()
        old_file = self.manifest.index_file
        new_file = f"vectors-{self.seq}-{os.getpid()}.faiss"
        checksum = write_index(self.index, self.folder / new_file)
        self.manifest.index_file = new_file
        self.manifest.index_sha256 = checksum
        self.manifest.index_bytes = (self.folder / new_file).stat().st_size
        self.manifest.index_entries = int(self.index.ntotal)
        self.manifest.articles = count
        self.manifest.catalog_seq = self.seq
        self.manifest.tombstones = self.tombstones
        self.manifest.recall_at_10 = recall
        self.manifest.max_memory_bytes = max_memory_bytes
        self.manifest.updated_at = utcnow()
        if build_info:
            self.manifest.build = build_info
        self.manifest.ranking, self.manifest.variants = self.recorded_policies()
        self.manifest.save(self.folder)  # the commit point for the FAISS side
        if old_file and old_file != new_file:
            (self.folder / old_file).unlink(missing_ok=True)
        # keep a tail of the log so open readers (servers, replicas) can catch up without reloading
        self.catalog.forget_changes(self.seq - CHANGE_LOG_KEEP)
        remove_stray_files(self.folder, keep=new_file)
        return self.manifest

    def recorded_policies(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ranking policy and the A/B variants' that the catalog records (empty: the defaults, none)."""
        policy = self.catalog.get_meta("ranking_policy")
        variants = self.catalog.get_meta("ranking_variants")
        return (dict(json.loads(policy)) if policy else {}), (dict(json.loads(variants)) if variants else {})

    def record_policy(self, policies: Mapping[str, Any]) -> None:
        """Mirror newly recorded policies in the manifest (the catalog already holds them)."""
        self.manifest.ranking, self.manifest.variants = self.recorded_policies()
        self.manifest.save(self.folder)


def _read_saved_index(folder: Path, model: str | None, attempts: int = 5) -> tuple[Manifest, faiss.Index]:
    """The manifest and the FAISS file it names, read together: when another process's save replaces both
    between the two reads (the old file is gone or no longer matches), read them again."""
    for attempt in range(attempts):
        manifest = Manifest.load(folder)
        if manifest.format_version != FORMAT_VERSION:
            raise IndexMismatch(
                f"{folder}: index format {manifest.format_version}, this version reads {FORMAT_VERSION}"
            )
        if model is not None and model != manifest.model:
            raise IndexMismatch(
                f"{folder} was built with model {manifest.model!r}, not {model!r}; "
                "rebuild it into another folder to change models"
            )
        if not _INDEX_FILE.fullmatch(manifest.index_file):  # never follow a manifest out of the folder
            raise IndexCorrupt(
                f"{folder}: manifest names {manifest.index_file!r}, not an index file of this folder; "
                + REINDEX_HINT.format(folder=folder)
            )
        try:
            with translated(str(folder)):
                index = read_index(folder / manifest.index_file, manifest.index_sha256)
        except (IndexCorrupt, StorageError) as exc:
            if attempt + 1 < attempts and Manifest.load(folder).index_file != manifest.index_file:
                continue  # a save switched the manifest meanwhile: read the new pair
            raise IndexCorrupt(f"{exc}; {REINDEX_HINT.format(folder=folder)}") from None
        if index.d != manifest.dimension:
            raise IndexCorrupt(
                f"{folder}: FAISS dimension {index.d} differs from the manifest's {manifest.dimension}; "
                + REINDEX_HINT.format(folder=folder)
            )
        return manifest, index
    raise AssertionError("unreachable")  # pragma: no cover


def remove_stray_files(folder: Path, keep: str) -> None:
    """Delete FAISS files and temp files left by an interrupted writer."""
    for path in folder.glob("vectors-*.faiss"):
        if path.name != keep:
            path.unlink(missing_ok=True)
    for path in folder.glob(".*.tmp-*"):
        path.unlink(missing_ok=True)


def build_faiss(catalog: Catalog, index_type: str, dimension: int) -> tuple[faiss.Index, float | None]:
    """A fresh FAISS index over every catalog vector; returns it with its recall@10 (None for exact search)."""
    count = catalog.count()
    index = new_index(index_type, dimension, count)
    if not index.is_trained:
        sample = []
        for _, vectors in catalog.iter_vectors():
            sample.append(vectors)
            if sum(len(s) for s in sample) >= 100_000:
                break
        index.train(np.vstack(sample))
    queries: list[np.ndarray] = []
    for keys, vectors in catalog.iter_vectors():
        index.add_with_ids(vectors, keys)
        if sum(len(q) for q in queries) < RECALL_QUERIES:
            queries.append(vectors[:: max(1, count // RECALL_QUERIES)])
    if index_type == "flat" or not queries:
        return index, None
    probe = np.vstack(queries)[:RECALL_QUERIES]
    recall = measure_recall(index, probe, (v for _, v in catalog.iter_vectors()), k=10)
    return index, round(recall, 4)


def create_store(folder: Path, *, model: str, backend: str, dimension: int) -> IndexStore:
    """A new, empty index in ``folder`` (catalog + empty FAISS file + manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(folder / Catalog.FILENAME, create=True)
    existing_model = catalog.get_meta("model")
    if existing_model is not None and existing_model != model:
        raise IndexMismatch(f"{folder} was built with model {existing_model!r}, not {model!r}")
    catalog.set_meta("model", model)
    catalog.set_meta("dimension", str(dimension))
    index = new_index("flat", dimension)
    now = utcnow()
    manifest = Manifest(
        model=model,
        backend=backend,
        dimension=dimension,
        articles=0,
        index_type="flat",
        built_at=now,
        updated_at=now,
        catalog_seq=0,
        index_file="",
        index_sha256="",
        index_bytes=0,
        index_entries=0,
    )
    return IndexStore(folder, catalog, index, manifest)
