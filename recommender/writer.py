"""Writing to an index: build, add (upsert) and delete, each all-or-nothing on the catalog.

A write runs in phases so that nothing is lost and nothing is half-done:

1. read and validate every SOURCE into a staging table (a rejected article is listed, or with ``strict`` the
   whole batch is refused before anything is embedded);
2. embed only texts whose content hash has no vector yet, committing vectors as they come (an interrupted
   build resumes where it stopped);
3. upsert the staged articles in one catalog transaction (the commit point);
4. save the FAISS file and switch the manifest to it atomically.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.articles import Article, article_from_json
from recommender.embedding import DEFAULT_MODEL, Embedder, load_embedder
from recommender.embedding.base import default_backend
from recommender.errors import (
    BatchRejected,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    InvalidArticle,
    SourceError,
    StorageError,
    StorageFull,
)
from recommender.ingest.records import IngestOptions, Loaded, Record, to_record, with_languages
from recommender.ingest.sources import Source, check_sources, read_source
from recommender.ranking.lists import DEFAULT_VARIANT, Lists
from recommender.ranking.policy import RankingPolicy
from recommender.reports import Progress, WriteReport
from recommender.storage.catalog import CLAIM_TTL_SECONDS, Catalog
from recommender.storage.faults import STORAGE_EXCEPTIONS, storage_error, translated
from recommender.storage.sql import keyset_pages
from recommender.storage.store import IndexStore, Manifest, acquire_write_lock, create_store, utcnow
from recommender.storage.vector_index import new_index

if TYPE_CHECKING:
    from recommender.distributed import RayOptions

log = logging.getLogger(__name__)

EMBED_CHUNK = 256
#: Articles produced once the store is open: ``(store, model, backend, report) -> records`` (a build on Ray
#: commits vectors to the store's catalog while it reads; see :mod:`recommender.distributed`).
LoadedFor = Callable[[IndexStore, str, str, "WriteReport"], Iterable[Loaded]]


def read_batch(sources: Iterable[Source], options: IngestOptions | None = None) -> Iterable[Loaded]:
    """Every record of every SOURCE, duplicates of an id already seen in this batch turned into rejections."""
    paths = check_sources(sources, fetch_check=False)  # checked (and URLs probed) before the write began
    seen: dict[str, str] = {}
    deferred = replace(options or IngestOptions(), defer_language=True)  # languages a batch at a time
    for path in paths:
        for item in with_languages(read_source(path, deferred)):
            if isinstance(item, Record):
                first = seen.get(item.article.id)
                if first is not None:
                    yield InvalidArticle(
                        item.location, f"duplicate id {item.article.id!r} (first at {first}); kept the first"
                    )
                    continue
                seen[item.article.id] = item.location
            yield item


def records_from_articles(articles: Iterable[Article | dict[str, Any]]) -> Iterable[Loaded]:
    """Records for articles handed over in Python (a CMS hook, a notebook); dicts go through the same ingest
    step as files (clean text, dates with zones, language) and are validated here."""
    seen: set[str] = set()
    for number, item in enumerate(articles, start=1):
        location = f"article {number}"
        loaded = Record(location, item) if isinstance(item, Article) else to_record(item, location)
        if isinstance(loaded, InvalidArticle):
            yield loaded
            continue
        article = loaded.article
        if article.id in seen:
            yield InvalidArticle(location, f"duplicate id {article.id!r} in this batch; kept the first")
            continue
        seen.add(article.id)
        yield Record(location, article)


class _Staging:
    """Validated articles of one batch, kept in a temp table of the catalog connection (disk-backed, not in RAM)."""

    def __init__(self, catalog: Catalog) -> None:
        self.conn = catalog.conn
        self.conn.execute("DROP TABLE IF EXISTS temp.staging")
        self.conn.execute(
            "CREATE TEMP TABLE staging (n INTEGER PRIMARY KEY, id TEXT, data TEXT, content_hash TEXT, status TEXT)"
        )

    def stage(self, catalog: Catalog, records: Sequence[Record], report: WriteReport) -> None:
        existing = catalog.record_hashes([r.article.id for r in records])
        rows = []
        for record in records:
            article = record.article
            known = existing.get(article.id)
            if known is not None and known[1] == article.record_hash:
                report.skipped += 1
                continue
            status = "update" if known is not None else "add"
            rows.append((article.id, json.dumps(article.to_dict(), ensure_ascii=False), article.content_hash, status))
        self.conn.executemany("INSERT INTO staging(id, data, content_hash, status) VALUES (?, ?, ?, ?)", rows)

    def hashes(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT content_hash FROM staging")]

    def hashes_to_embed(self, catalog: Catalog) -> list[str]:
        hashes = self.hashes()
        missing = catalog.missing_vectors(hashes)
        return [h for h in hashes if h in missing]

    def _rows(self, page: int = 1000) -> Iterable[tuple[str, str, str]]:
        """``(content_hash, data, status)`` of every staged article in order, read a page at a time."""
        sql = "SELECT n, content_hash, data, status FROM staging WHERE n > ? ORDER BY n LIMIT ?"
        for rows in keyset_pages(self.conn, sql, 0, page):
            for _, content_hash, data, status in rows:
                yield content_hash, data, status

    def iter_texts(self) -> Iterable[tuple[str, str]]:
        for content_hash, data, _ in self._rows():
            yield content_hash, article_from_json(data).text

    def articles(self) -> Iterable[tuple[Article, str]]:
        for _, data, status in self._rows():
            yield article_from_json(data), status

    def drop(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS temp.staging")


def _embed_missing(
    catalog: Catalog,
    staging: _Staging,
    get_embedder: Callable[[], Embedder],
    report: WriteReport,
    progress: Progress | None,
    owner: str | None = None,
) -> None:
    todo = set(staging.hashes_to_embed(catalog))
    if not todo:
        return
    total = len(todo)
    embedder = get_embedder()
    if progress:
        progress(0, total)
    hashes: list[str] = []
    texts: list[str] = []
    refreshed = time.monotonic()  # the claims were just made

    def flush() -> None:
        nonlocal refreshed
        vectors = embedder.embed(texts)
        catalog.store_vectors(hashes, vectors)  # committed: an interrupted build keeps this work
        if owner is not None and time.monotonic() - refreshed > CLAIM_TTL_SECONDS / 4:
            # still alive: other writers' sweeps leave our vectors alone. Not after every chunk: the update
            # rewrites every claim of the batch (a build of 100k articles spent 30 s on it)
            catalog.refresh_claims(owner)
            refreshed = time.monotonic()
        report.embedded += len(hashes)
        hashes.clear()
        texts.clear()
        if progress:
            progress(report.embedded, total)

    for content_hash, text in staging.iter_texts():
        if content_hash not in todo:
            continue
        todo.discard(content_hash)
        hashes.append(content_hash)
        texts.append(text)
        if len(hashes) >= EMBED_CHUNK:
            flush()
    if hashes:
        flush()


def apply_batch(
    store: IndexStore,
    loaded: Iterable[Loaded],
    report: WriteReport,
    get_embedder: Callable[[], Embedder],
    *,
    strict: bool = False,
    progress: Progress | None = None,
    sweep: bool = False,
    lock: AbstractContextManager[Any] | None = None,
) -> None:
    """Phases 1-3 of a write on an open store: stage and embed (no lock needed), then commit under ``lock``.

    Embedding, the slow part, runs before the lock is taken, so a long ``add`` does not hold up a server's
    PUTs; vectors are cached by content hash and committed as they come. ``lock`` (the folder's write lock)
    is taken only for the commit; pass None when the caller already holds it. The FAISS side is not touched:
    ``store.catch_up()`` applies the committed changes in memory and ``store.save()`` persists them.
    ``sweep`` also drops every orphaned vector (without it, only the ones this batch replaced).

    The batch's vectors are claimed (:meth:`Catalog.claim_vectors`) from staging to commit, so another writer's
    sweep, which may run in between, never deletes a vector this batch embedded and is about to use.
    """
    staging = _Staging(store.catalog)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    try:
        batch: list[Record] = []
        for item in loaded:
            if isinstance(item, InvalidArticle):
                report.rejected.append(item)
                continue
            batch.append(item)
            if len(batch) >= 1000:
                staging.stage(store.catalog, batch, report)
                batch = []
        staging.stage(store.catalog, batch, report)
        if strict and report.rejected:
            raise BatchRejected(report.rejected)
        store.catalog.claim_vectors(staging.hashes(), owner)
        _embed_missing(store.catalog, staging, get_embedder, report, progress, owner)
        with lock if lock is not None else nullcontext():
            # A vector this batch needs may be gone since it was embedded (claims expire, a hand-made sweep):
            # embed it again.
            _embed_missing(store.catalog, staging, get_embedder, report, None)
            replaced: list[str | None] = []
            with store.catalog.transaction():
                for article, _status in staging.articles():
                    _, old_hash = store.catalog.upsert(article)
                    replaced.append(old_hash)
                    if old_hash is None:
                        report.added += 1
                    else:
                        report.updated += 1
                store.catalog.release_claims(owner)
                store.catalog.prune_vectors(None if sweep else [h for h in replaced if h])
    except BaseException:
        _release_quietly(store.catalog, owner)  # (a committed batch released its claims with its articles)
        raise
    finally:
        staging.drop()


def _release_quietly(catalog: Catalog, owner: str) -> None:
    """Drop a failed batch's claims if the catalog can still be written (else they expire on their own)."""
    try:
        catalog.release_claims(owner)
    except STORAGE_EXCEPTIONS as exc:
        log.warning("could not release vector claims (they expire by themselves): %s", exc)


def write(
    index_dir: Path,
    loaded: Iterable[Loaded] | LoadedFor,
    *,
    create: bool,
    model: str | None,
    backend: str | None,
    strict: bool,
    embedder: Embedder | None,
    progress: Progress | None,
    rebuild: bool,
    max_memory_bytes: int | None,
    lock_timeout: float,
    build_info: dict[str, Any] | None = None,
    embedder_factory: Callable[[str, str], Embedder] | None = None,
    policy: RankingPolicy | None = None,
) -> WriteReport:
    """One write, in the phases of this module's docstring; ``loaded`` is the records, or a function of the open
    store that produces them (a build on Ray). ``policy``, when given and not the index's, is recorded and
    every list recomputed with it."""
    started = time.monotonic()
    report = WriteReport()
    store: IndexStore | None = None
    try:
        if IndexStore.exists(index_dir):
            store = IndexStore.open(index_dir, model=model)
            if backend and backend != store.manifest.backend:
                log.warning("index was built with backend %s; embedding with %s", store.manifest.backend, backend)
        elif not create:
            raise IndexNotFound(
                f"no index in {index_dir} (create one with: recommender build SOURCE --index {index_dir})"
            )

        model_name = store.manifest.model if store else (model or DEFAULT_MODEL)
        backend_name = backend or (store.manifest.backend if store else default_backend(model_name))
        cached: list[Embedder] = [embedder] if embedder is not None else []

        def get_embedder() -> Embedder:
            if not cached:
                cached.append((embedder_factory or load_embedder)(model_name, backend_name))
            if cached[0].name != model_name:
                raise IndexMismatch(f"embedder {cached[0].name!r} does not match the index's model {model_name!r}")
            return cached[0]

        if store is None:
            emb = get_embedder()
            with acquire_write_lock(index_dir, lock_timeout):
                store = create_store(index_dir, model=model_name, backend=backend_name, dimension=emb.dimension)

        lock = acquire_write_lock(index_dir, lock_timeout)
        if callable(loaded):
            loaded = loaded(store, model_name, backend_name, report)
        apply_batch(store, loaded, report, get_embedder, strict=strict, progress=progress, sweep=True, lock=lock)
        with acquire_write_lock(index_dir, lock_timeout), after_commit(report, report.added + report.updated):
            changed = report.added + report.updated
            if changed or not store.manifest.index_file or store.catalog.last_seq() > store.seq:
                report.manifest = store.save(
                    rebuild=rebuild and changed > 0, max_memory_bytes=max_memory_bytes, build_info=build_info
                )
            else:
                report.manifest = store.manifest
            update_related_lists(store, policy)
    finally:
        if store is not None:
            store.close()
    report.seconds = time.monotonic() - started
    return report


@contextmanager
def after_commit(report: WriteReport, committed: int) -> Iterator[None]:
    """The steps after the catalog commit (FAISS file, manifest, related lists): when one fails on I/O (a full
    disk) and the commit wrote something, the write is still done -- the catalog is the source of truth, the
    FAISS file is replayed from its change log at the next open and the lists are finished by the next write --
    so the failure is reported in ``report.incomplete`` instead of claiming that nothing was written."""
    try:
        yield
    except (*STORAGE_EXCEPTIONS, StorageFull, StorageError) as exc:
        if not committed:
            raise
        reason = storage_error(exc, "the index")
        report.incomplete = (
            f"the catalog has the {committed} change(s), but saving the index file or the related lists failed "
            f"({reason}); they are finished at the next open or write, or with recommender reindex"
        )
        log.error("%s", report.incomplete)


def update_related_lists(store: IndexStore, policy: RankingPolicy | None = None) -> bool:
    """Precomputed lists follow the catalog (a lookup at serving time); see :mod:`recommender.ranking.lists`.

    With a ``policy`` other than the one the index records, it is recorded and every list recomputed (in one
    transaction: readers see the old lists until the new ones are all there). Returns whether that happened.
    The caller holds the write lock.
    """
    lists = Lists(store)
    if policy is not None and policy != lists.policy():
        lists.refresh_all(policy)
        store.record_policy(lists.policies)
        return True
    lists.catch_up()
    return False


def apply_policy(
    index_dir: Path | str,
    policy: RankingPolicy | None,
    *,
    variant: str = DEFAULT_VARIANT,
    lock_timeout: float = 10.0,
) -> bool:
    """Record ``policy`` for ``variant`` (``""``: the site's policy; another name: an A/B variant with lists of
    its own) and recompute every stored list. ``policy=None`` with a variant name removes that variant. Returns
    False when nothing changed."""
    index_dir = Path(index_dir)
    with acquire_write_lock(index_dir, lock_timeout):
        store = IndexStore.open(index_dir)
        try:
            lists = Lists(store)
            lists.catch_up()
            if policy is None:
                changed = lists.remove_variant(variant)
            elif lists.policies.get(variant) == policy:
                changed = False
            else:
                lists.refresh_all(policy, variant)
                changed = True
            if changed:
                store.record_policy(lists.policies)
            return changed
        finally:
            store.close()


def refresh_lists(index_dir: Path | str, *, lock_timeout: float = 10.0) -> int:
    """Recompute every stored list and re-take the keyword snapshot (what a large build does by itself).
    Returns how many lists were written."""
    index_dir = Path(index_dir)
    with acquire_write_lock(index_dir, lock_timeout):
        store = IndexStore.open(index_dir)
        try:
            return Lists(store).refresh_all()
        finally:
            store.close()


def _source_list(sources: Iterable[Source], ingest: IngestOptions | None = None) -> list[Source]:
    """SOURCEs checked before anything is created (a path exists, a URL answers): a typo must not leave a
    folder or half an index."""
    if isinstance(sources, str | Path):
        raise TypeError(f"sources must be a list of paths, not one {type(sources).__name__}: use [{str(sources)!r}]")
    return check_sources(sources, fetch=ingest.fetch if ingest else None)


def _loaded_for(
    paths: Sequence[Source], articles: Iterable[Article | dict[str, Any]], options: IngestOptions | None
) -> LoadedFor:
    """The records of a write, read once the store is open: a sitemap page whose ``lastmod`` the catalog
    already holds is not fetched again, and counts as skipped."""

    def loaded(store: IndexStore, _model: str, _backend: str, report: WriteReport) -> Iterable[Loaded]:
        def known_lastmod(url: str) -> str | None:
            stored = store.catalog.get(url) or store.catalog.get_by_url(url)
            value = stored.article.metadata.get("sitemap_lastmod") if stored else None
            return value if isinstance(value, str) else None

        def on_unchanged(count: int) -> None:
            report.skipped += count

        base = options or IngestOptions()
        reading = replace(base, known_lastmod=known_lastmod, on_unchanged=on_unchanged)
        return _loaded(paths, articles, reading)

    return loaded


def build_index(
    sources: Iterable[Source] = (),
    index_dir: Path | str = "index",
    *,
    articles: Iterable[Article | dict[str, Any]] = (),
    model: str | None = None,
    backend: str | None = None,
    strict: bool = False,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    max_memory_bytes: int | None = None,
    lock_timeout: float = 10.0,
    policy: RankingPolicy | None = None,
    ray_address: str | None = None,
    ray_options: RayOptions | None = None,
    ingest: IngestOptions | None = None,
) -> WriteReport:
    """Create (or bring up to date) the index in ``index_dir`` from SOURCE files and/or ``articles`` (dicts in
    the article shape, or :class:`Article`); re-running embeds nothing new.

    A SOURCE is a file or folder, or an http(s) URL (a sitemap, a feed, a WordPress REST listing, a list of
    URLs); ``ingest`` (:class:`IngestOptions`) carries ``--map``, ``--timezone`` and how pages are fetched.

    ``policy`` (:class:`RankingPolicy`) is recorded with a new index; for an existing one, a different policy
    is recorded and every list recomputed. None keeps the index's (the defaults for a new one).

    Invalid articles are listed in the report and the rest is indexed; with ``strict`` any invalid article
    refuses the whole batch (:class:`BatchRejected`) and nothing is written.

    ``ray_address`` reads and embeds on Ray instead of in this process: ``local`` (a Ray started for the job),
    ``auto`` or ``ray://HOST:PORT`` (an existing cluster); see :mod:`recommender.distributed`. The result is the
    same index. Needs the ``ray`` extra (:class:`DistributedError` says so when it is missing).
    """
    index_dir = Path(index_dir)
    paths = _source_list(sources, ingest)
    if ray_address is not None or ray_options is not None:
        if embedder is not None:
            raise ValueError(
                "a build on Ray loads its embedder on each worker: pass model= and backend=, not embedder="
            )
        from recommender.distributed import ray_job

        started = time.monotonic()
        if articles:
            raise ValueError("a build on Ray reads SOURCE files; add in-memory articles with add_articles()")
        if ingest is not None and (ingest.field_map or ingest.timezone or ingest.base_url):
            raise SourceError("--map, --timezone and --base-url are not applied on Ray yet: build without --ray")
        with ray_job(paths, address=ray_address, options=ray_options, strict=strict, progress=progress) as job:
            report = write(
                index_dir,
                job.loaded,
                create=True,
                model=model,
                backend=backend,
                strict=strict,
                embedder=None,
                embedder_factory=job.embedder_factory,
                progress=None,
                rebuild=True,
                max_memory_bytes=max_memory_bytes,
                lock_timeout=lock_timeout,
                build_info=job.info,
                policy=policy,
            )
        report.seconds = time.monotonic() - started  # the whole job, Ray's start included
        return report
    return write(
        index_dir,
        _loaded_for(paths, articles, ingest),
        create=True,
        model=model,
        backend=backend,
        strict=strict,
        embedder=embedder,
        progress=progress,
        rebuild=True,
        max_memory_bytes=max_memory_bytes,
        lock_timeout=lock_timeout,
        build_info={"method": "local"},
        policy=policy,
    )


def add_articles(
    index_dir: Path | str,
    sources: Iterable[Source] = (),
    *,
    articles: Iterable[Article | dict[str, Any]] = (),
    backend: str | None = None,
    strict: bool = False,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 10.0,
    policy: RankingPolicy | None = None,
    ingest: IngestOptions | None = None,
) -> WriteReport:
    """Upsert articles (from SOURCEs -- files, folders, URLs -- and/or Python objects) into an existing index,
    without a rebuild."""
    index_dir = Path(index_dir)
    paths = _source_list(sources, ingest)
    return write(
        index_dir,
        _loaded_for(paths, articles, ingest),
        create=False,
        model=None,
        backend=backend,
        strict=strict,
        embedder=embedder,
        progress=progress,
        rebuild=False,
        max_memory_bytes=None,
        lock_timeout=lock_timeout,
        policy=policy,
    )


def _loaded(
    paths: Sequence[Source], articles: Iterable[Article | dict[str, Any]], options: IngestOptions | None = None
) -> Iterable[Loaded]:
    """Records of SOURCEs, then of in-memory articles (an id seen in a SOURCE is a duplicate in both)."""
    seen: dict[str, str] = {}
    for item in read_batch(paths, options):
        if isinstance(item, Record):
            seen[item.article.id] = item.location
        yield item
    for item in records_from_articles(articles):
        if isinstance(item, Record) and item.article.id in seen:
            first = seen[item.article.id]
            yield InvalidArticle(item.location, f"duplicate id {item.article.id!r} (first at {first}); kept the first")
            continue
        yield item


def remove(store: IndexStore, ids: Sequence[str], report: WriteReport) -> None:
    """Delete articles from the catalog in one transaction (the caller holds the write lock)."""
    with store.catalog.transaction():
        hashes = []
        for article_id in ids:
            gone = store.catalog.delete(article_id)
            if gone is None:
                report.not_found.append(article_id)
            else:
                report.deleted += 1
                hashes.append(gone[1])
        store.catalog.prune_vectors(hashes)


def delete_articles(
    index_dir: Path | str, ids: Sequence[str], *, lock_timeout: float = 10.0, policy: RankingPolicy | None = None
) -> WriteReport:
    """Remove articles by id (unknown ids are reported, not an error for the others)."""
    index_dir = Path(index_dir)
    started = time.monotonic()
    report = WriteReport()
    with acquire_write_lock(index_dir, lock_timeout):
        store = IndexStore.open(index_dir)
        try:
            remove(store, ids, report)
            with after_commit(report, report.deleted):
                report.manifest = store.save() if report.deleted else store.manifest
                update_related_lists(store, policy)
        finally:
            store.close()
    report.seconds = time.monotonic() - started
    return report


def reindex(index_dir: Path | str, *, lock_timeout: float = 10.0, max_memory_bytes: int | None = None) -> Manifest:
    """Rebuild the FAISS file and the manifest from the catalog's vectors (the catalog is the source of truth;
    the FAISS file is a cache): the way back from a damaged, missing or mismatched index file or a hand-edited
    manifest. Nothing is embedded. The catalog itself must be sound (a damaged one is :class:`IndexCorrupt`:
    restore it from a backup)."""
    index_dir = Path(index_dir)
    path = index_dir / Catalog.FILENAME
    if not path.exists():
        raise IndexNotFound(f"no catalog in {index_dir}: nothing to rebuild from (build one with recommender build)")
    with acquire_write_lock(index_dir, lock_timeout), translated(str(index_dir)):
        catalog = Catalog(path)
        try:
            damage = catalog.quick_check()
            if damage is not None:
                raise IndexCorrupt(f"{path}: the catalog is damaged ({damage}); restore it from a backup")
            model, dimension = catalog.get_meta("model"), catalog.get_meta("dimension")
            if model is None or dimension is None or not dimension.isdigit() or int(dimension) <= 0:
                raise IndexCorrupt(f"{path}: the catalog records no model and dimension; build the index again")
            try:
                previous: Manifest | None = Manifest.load(index_dir)
            except IndexCorrupt:
                previous = None
            now = utcnow()
            manifest = Manifest(
                model=model,
                backend=previous.backend if previous else default_backend(model),
                dimension=int(dimension),
                articles=0,
                index_type="rebuilt",  # never the wanted type: save() rebuilds from the catalog
                built_at=now,
                updated_at=now,
                catalog_seq=0,
                index_file="",  # (stray FAISS files, the damaged one too, are removed by save())
                index_sha256="",
                index_bytes=0,
                index_entries=0,
                max_memory_bytes=previous.max_memory_bytes if previous else None,
                build=previous.build if previous else {},
            )
            store = IndexStore(index_dir, catalog, new_index("flat", int(dimension)), manifest)
            saved = store.save(rebuild=True, max_memory_bytes=max_memory_bytes)
        finally:
            catalog.close()
    log.info("rebuilt %s from the catalog: %d articles", saved.index_file, saved.articles)
    return saved
