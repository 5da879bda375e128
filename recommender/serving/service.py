"""The serving core: one index held open for a long-lived process, safe to call from many threads.

The HTTP app (:mod:`recommender.serving.http.app`) is a thin layer over this. It keeps answering from the index it
has while it loads a rebuilt one in the background, follows writes from other processes (``recommender add``) by
replaying the catalog's change log in a background thread, and persists its own writes to the catalog before
acknowledging them; the FAISS file is saved in the background (a crash loses nothing: the change log is replayed
on the next open).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.articles import Article, is_safe_link
from recommender.controls.rules import Rule, remove_rules, save_rule
from recommender.embedding import Embedder
from recommender.errors import IndexBusy, IndexCorrupt, InvalidArticle, NotReady, Overloaded, RecommenderError
from recommender.events.variants import DEFAULT_VARIANT, lists_variant
from recommender.ingest.language import warm_up_in_background
from recommender.ingest.records import Record, to_record
from recommender.ranking.lists import related_seq
from recommender.ranking.policy import NO_FILTERS, Filters
from recommender.recommender import Recommender, RelatedList
from recommender.reports import WriteReport
from recommender.settings import Settings
from recommender.storage.faults import STORAGE_EXCEPTIONS, translated
from recommender.storage.store import MANIFEST_NAME, Manifest, acquire_write_lock
from recommender.writer import apply_batch, remove

log = logging.getLogger(__name__)

#: More catalog changes than this from another process: reload in the background instead of replaying inline.
INLINE_CATCH_UP_LIMIT = 1000


@dataclass(frozen=True)
class Served:
    """A list as served: the index version and model it was computed with (both read under the index lock
    together with the list, so an answer and its ETag always agree)."""

    version: str
    model: str
    related: RelatedList
    variant: str | None = None  # the ranking variant the list was read with (A/B tests), when one was asked for

    def body(self, article_id: str | None) -> dict[str, Any]:
        """The JSON shape of the HTTP API and the static export. A URL that is not a safe link (a catalog
        written before links were checked at the edge) is sent as null: pages render these links."""
        out = {
            "article_id": article_id,
            "related": [_safe_url(s.to_dict()) for s in self.related.items],
            "short": self.related.short,
            "model": self.model,
            "index_version": self.version,
        }
        if self.variant is not None:
            out["variant"] = self.variant
        return out


def _safe_url(item: dict[str, Any]) -> dict[str, Any]:
    if not is_safe_link(item.get("url")):
        item["url"] = None
    return item


class Busy:
    """The index lock is held right now (see :meth:`Service.related_nowait`)."""


#: What :meth:`Service.related_nowait` answers while the index lock is held.
BUSY = Busy()


class Service:
    """A loaded index plus everything needed to serve it: reads, writes, hot reload, periodic saves."""

    def __init__(
        self,
        settings: Settings | Path | str,
        *,
        embedder: Embedder | None = None,
        check_interval: float = 0.5,
        autosave_seconds: float = 30.0,
    ) -> None:
        if not isinstance(settings, Settings):
            settings = Settings(index=str(settings))
        self.settings = settings
        self.index_dir = settings.index_dir
        self.backend = settings.backend
        self.lock_timeout = settings.lock_timeout
        self.check_interval = check_interval
        self.autosave_seconds = autosave_seconds
        self._embedder = embedder
        self._lock = threading.RLock()  # guards the Recommender (SQLite connection + FAISS index)
        self._embed_lock = threading.Lock()
        self._rec: Recommender | None = None
        self._identity: tuple[int, str] | None = None
        self._catalog_path = str(self.index_dir / "catalog.sqlite")
        self._manifest_path = str(self.index_dir / MANIFEST_NAME)
        self._manifest_seen: tuple[tuple[int, int, int], str] | None = None  # (file signature, built_at)
        self._data_version: int | None = None  # the open catalog's data_version when last looked (None: not yet)
        self._last_check = 0.0
        self._reloading = False
        self._dirty = False
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self._follower: threading.Thread | None = None
        self.last_error: str | None = None
        #: Set when serving hit a damaged catalog: ``/readyz`` refuses until a good index is loaded.
        self.damaged: str | None = None
        self.reloads = 0
        #: Live searches (a list no stored list can answer, free text) running at once; more are shed at once
        #: (:class:`Overloaded`) so that they never queue in front of stored-list reads.
        self._live = threading.BoundedSemaphore(settings.max_live_searches)
        if settings.api_key:  # a PUT without a language detects it: the model (10 MB) loads before the first one
            warm_up_in_background()  # (a server without a key takes no writes: it never needs the model)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Open the index (raises on failure; the caller decides whether that is fatal)."""
        rec = self._open()
        with self._lock:
            old, self._rec = self._rec, rec
            self._identity = self._read_identity()
            self._data_version = None  # a new connection counts from its own start
        if old is not None:
            old.close()
        self.last_error = None
        self.damaged = None

    def _open(self) -> Recommender:
        """Open and check the index: a damaged catalog is refused here (``serve`` does not start, ``/readyz``
        says why) rather than answering some requests with errors later."""
        with translated(str(self.index_dir)):
            rec = Recommender.open(
                self.index_dir, embedder=self._embedder, backend=self.backend, check_same_thread=False
            )
            try:
                damage = rec.store.catalog.quick_check()
                if damage is not None:
                    raise IndexCorrupt(
                        f"{self.index_dir}: the catalog is damaged ({damage}); restore catalog.sqlite from a backup"
                    )
                self._finish_list_updates(rec)
            except BaseException:
                rec.close()
                raise
        return rec

    def _finish_list_updates(self, rec: Recommender) -> None:
        """Lists left behind by a crashed writer are finished now, if no other writer is active."""
        if related_seq(rec.store.catalog) == rec.store.catalog.last_seq():
            return
        try:
            with acquire_write_lock(self.index_dir, timeout=0):
                rec.lists.catch_up()
        except IndexBusy:
            log.info("another writer is active; it will bring the related lists up to date")

    def start(self, warm_up: bool = True, *, follow: bool = True) -> None:
        """Start the background saver (FAISS file persisted every ``autosave_seconds`` when dirty), and load
        the embedding model in the background so the first PUT or free-text query does not wait for it.
        ``follow``: a thread picks up other processes' writes every ``check_interval`` (the HTTP app follows
        from its event loop instead: :meth:`looks_changed` there, :meth:`follow` in a thread when it does)."""
        if warm_up and self._rec is not None and self._embedder is None:
            rec = self._rec
            threading.Thread(target=self._warm_up, args=(rec,), name="recommender-warm-up", daemon=True).start()
        if self._saver is None and self.autosave_seconds > 0:
            self._saver = threading.Thread(target=self._autosave_loop, name="recommender-autosave", daemon=True)
            self._saver.start()
        if follow and self._follower is None and self.check_interval > 0:
            self._follower = threading.Thread(target=self._follow_loop, name="recommender-follow", daemon=True)
            self._follower.start()

    def _warm_up(self, rec: Recommender) -> None:
        try:
            with self._embed_lock:
                rec.embedder.embed(["warm up"])
        except RecommenderError as exc:
            log.error("embedding model unavailable: PUT and free-text queries will fail: %s", exc)

    def close(self) -> None:
        self._stop.set()
        for thread in (self._saver, self._follower):
            if thread is not None:
                thread.join(timeout=10)
        self.save_if_dirty(timeout=self.lock_timeout)
        with self._lock:
            if self._rec is not None:
                self._rec.close()
                self._rec = None

    @property
    def ready(self) -> bool:
        return self._rec is not None

    def _current(self) -> Recommender:
        rec = self._rec
        if rec is None:
            raise NotReady(self.last_error or "index not loaded yet")
        return rec

    def failed(self, error: RecommenderError) -> None:
        """An I/O failure while serving: a damaged catalog takes the service out of rotation (``/readyz`` 503
        with the reason) until a good index is loaded; other failures (a full disk) are only remembered."""
        self.last_error = str(error)
        if isinstance(error, IndexCorrupt):
            self.damaged = str(error)
            log.error("the index is damaged, /readyz now refuses: %s", error)

    # -- keeping current --------------------------------------------------------------------------------------
    def _read_identity(self) -> tuple[int, str]:
        """What identifies one build of the index: the catalog file and the manifest's build time."""
        identity = self._identity_if_built()
        return (0, "") if identity is None else identity

    def _identity_if_built(self) -> tuple[int, str] | None:
        """:meth:`_read_identity` while the folder holds an index (a manifest); None while it does not. Two
        file stats: the manifest is parsed again only when its file changed (it is replaced whole: a new inode,
        time and size), since this is looked at every ``check_interval``."""
        try:
            st = os.stat(self._manifest_path)
        except FileNotFoundError:
            return None
        except OSError:
            return (0, "")
        try:
            inode = os.stat(self._catalog_path).st_ino
            signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            seen = self._manifest_seen
            if seen is not None and seen[0] == signature:
                return (inode, seen[1])
            built_at = Manifest.load(self.index_dir).built_at
        except (OSError, RecommenderError):
            return (0, "")
        self._manifest_seen = (signature, built_at)
        return (inode, built_at)

    def _maybe_refresh(self, identity: tuple[int, str] | None = None) -> None:
        """At most every ``check_interval``: pick up other processes' writes, or a rebuilt index (``identity``:
        :meth:`_read_identity`, when the caller read it already)."""
        now = time.monotonic()
        if now - self._last_check < self.check_interval:
            return
        self._last_check = now
        rec = self._current()
        if identity is None:
            identity = self._identity_if_built()
        if identity is not None and identity != self._identity:
            self._reload_in_background()
            return
        rec.follow_lists()  # another process recomputed every list (a policy change, a full refresh)
        rec.follow_rules()  # another process changed the editors' rules
        pending = rec.store.catalog.last_seq() - rec.store.seq
        if 0 < pending <= INLINE_CATCH_UP_LIMIT:
            rec.store.catch_up()
        elif pending > INLINE_CATCH_UP_LIMIT:
            self._reload_in_background()

    def _reload_in_background(self) -> None:
        if self._reloading:
            return
        self._reloading = True
        threading.Thread(target=self._reload, name="recommender-reload", daemon=True).start()

    def _reload(self) -> None:
        """Load and check the new index while the old one keeps answering; swap only when it is good."""
        try:
            identity = self._read_identity()
            rec = self._open()
            with self._lock:
                old, self._rec = self._rec, rec
                self._identity = identity
                self._data_version = None
            if old is not None:
                old.close()
            self.reloads += 1
            self.last_error = None
            self.damaged = None
            log.info("loaded the rebuilt index in %s", self.index_dir)
        except RecommenderError as exc:
            self.last_error = f"kept the previous index: {exc}"
            log.error("could not load the rebuilt index, still serving the previous one: %s", exc)
            with self._lock:
                self._identity = self._read_identity()  # do not retry the same broken build on every request
        finally:
            self._reloading = False

    # -- reads ------------------------------------------------------------------------------------------------
    def _served(self, rec: Recommender, related: RelatedList, variant: str | None = None) -> Served:
        return Served(rec.index_version, rec.manifest.model, related, variant)

    def variants(self) -> tuple[str, ...]:
        """The ranking variants a reader can be assigned to (A/B tests): ``default`` (the index's policy) and the
        named policies recorded with ``recommender policy set --variant NAME`` (``Recommender.variants``), each
        with precomputed lists of its own."""
        rec = self._current()
        return (DEFAULT_VARIANT, *sorted(name for name in rec.variants if name != DEFAULT_VARIANT))

    @contextmanager
    def _live_search(self) -> Iterator[None]:
        """A slot for a live search, or :class:`Overloaded` at once when all are taken."""
        if not self._live.acquire(blocking=False):
            raise Overloaded(
                f"{self.settings.max_live_searches} live searches are running; stored lists and cached answers "
                "are still served: retry shortly"
            )
        try:
            yield
        finally:
            self._live.release()

    def related(
        self,
        article_id: str,
        k: int = 5,
        filters: Filters = NO_FILTERS,
        *,
        explain: bool = False,
        variant: str | None = None,
    ) -> Served:
        """The article's list (:meth:`Recommender.related`: the stored list, filtered; a live search only when
        it cannot answer), editors' rules applied. Live searches have a budget of their own
        (``max_live_searches``): when it is spent they are refused, and stored-list reads go on. ``variant`` (one
        of :meth:`variants`) picks an A/B variant's lists and labels the answer for the events."""
        key = lists_variant(variant)
        with self._lock:
            self._maybe_refresh()
            rec = self._current()
            stored = rec.stored_related(article_id, k, filters, key, explain=explain)
            if stored is not None:
                return self._served(rec, stored, variant)
        with self._live_search(), self._lock:
            rec = self._current()
            return self._served(rec, rec.related(article_id, k, filters, key, explain=explain), variant)

    def related_nowait(
        self,
        article_id: str,
        k: int = 5,
        filters: Filters = NO_FILTERS,
        *,
        explain: bool = False,
        variant: str | None = None,
    ) -> Served | Busy | None:
        """:meth:`related` if it cannot wait: the index is free right now and the stored list answers it (a
        lookup of well under a millisecond, cheaper on the event loop than a thread hop). Else at once
        :data:`BUSY` when the index lock is held (the caller may try again shortly), None when the stored list
        cannot answer (a live search is needed). Neither a write holding the lock nor a live search may stall
        the event loop."""
        if self._rec is None:
            return None
        if not self._lock.acquire(blocking=False):
            return BUSY
        try:
            rec = self._current()
            related = rec.stored_related(article_id, k, filters, lists_variant(variant), explain=explain)
            return None if related is None else self._served(rec, related, variant)
        finally:
            self._lock.release()

    def related_to_url(self, url: str, k: int = 5, filters: Filters = NO_FILTERS) -> tuple[str, Served]:
        with self._lock:
            article = self._current().find(url)
        return article.id, self.related(article.id, k, filters)

    def related_to_text(self, text: str, k: int = 5, filters: Filters = NO_FILTERS) -> Served:
        """Free text is always a live search (embedding + search): it takes a slot of the live budget."""
        with self._live_search():
            rec = self._current()
            with self._embed_lock:
                vector = rec.embedder.embed([text])[0]
            with self._lock:
                self._maybe_refresh()
                rec = self._current()
                return self._served(rec, rec.related_to_vector(text, vector, k, filters))

    def get(self, article_id: str) -> Article:
        with self._lock:
            return self._current().get(article_id)

    def info(self) -> dict[str, Any]:
        with self._lock:
            return self._current().info()

    @property
    def index_version(self) -> str:
        """Read without the lock: two attribute reads, and a request racing a write may see either version."""
        return self._current().index_version

    @property
    def model(self) -> str:
        return self._current().manifest.model

    # -- writes -----------------------------------------------------------------------------------------------
    def upsert(self, article_id: str, payload: dict[str, Any]) -> str:
        """Validate, embed, commit (durable before this returns), then update the index and the lists.

        Returns ``added``, ``updated`` or ``unchanged``.
        """
        raw = dict(payload)
        body_id = raw.get("id")
        location = f"PUT /v1/articles/{article_id}"
        if body_id is not None and str(body_id) != article_id:
            raise InvalidArticle(location, f"body id {body_id!r} differs from the URL's {article_id!r}")
        raw["id"] = article_id
        loaded = to_record(raw, location)  # the ingest step every source takes: clean text, dates, language
        if isinstance(loaded, InvalidArticle):
            raise loaded
        article = loaded.article
        rec = self._current()
        with self._lock:
            needs_vector = bool(rec.store.catalog.missing_vectors([article.content_hash]))
        vector = None
        if needs_vector:
            with self._embed_lock:  # outside the read lock: reads go on while a story is embedded
                vector = rec.embedder.embed([article.text])
        report = WriteReport()
        with acquire_write_lock(self.index_dir, self.lock_timeout), translated(str(self.index_dir)):
            with self._lock:
                rec = self._current()
                if vector is not None:
                    rec.store.catalog.store_vectors([article.content_hash], vector)

                def no_embedder() -> Embedder:  # the vector was stored above
                    raise RuntimeError("unexpected embedding inside the write lock")

                try:
                    apply_batch(rec.store, [Record(location, article)], report, no_embedder)
                except BaseException:
                    if vector is not None:  # the story was not written: its new vector would be an orphan
                        _prune_quietly(rec, article.content_hash)
                    raise
                self._after_write(rec)
        if report.added:
            return "added"
        return "updated" if report.updated else "unchanged"

    def delete(self, article_id: str) -> bool:
        """Remove an article from the catalog, the index and every list. False when it was not there."""
        report = WriteReport()
        with acquire_write_lock(self.index_dir, self.lock_timeout), translated(str(self.index_dir)):
            with self._lock:
                rec = self._current()
                remove(rec.store, [article_id], report)
                self._after_write(rec)
        return report.deleted == 1

    # -- editors' rules ----------------------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        with self._lock:
            rec = self._current()
            rec.follow_rules()
            return list(rec.rules.rules)

    def add_rule(self, rule: Rule) -> Rule:
        """Store an editor's rule (durable before this returns); it applies to this process's answers at once
        and to other processes' within their check interval."""
        with acquire_write_lock(self.index_dir, self.lock_timeout):
            with self._lock:
                rec = self._current()
                stored = save_rule(rec.store.catalog, rule)
                rec.follow_rules()
        return stored

    def delete_rules(self, ids: list[int]) -> list[int]:
        with acquire_write_lock(self.index_dir, self.lock_timeout):
            with self._lock:
                rec = self._current()
                gone = remove_rules(rec.store.catalog, ids)
                rec.follow_rules()
        return gone

    def _after_write(self, rec: Recommender) -> None:
        """The committed write in memory and in the lists (a failure here leaves the write durable: the lists
        are finished by the next write, the in-memory index by the next catch-up)."""
        rec.store.catch_up()
        rec.lists.catch_up()
        self._dirty = True

    # -- persistence ------------------------------------------------------------------------------------------
    def save_if_dirty(self, timeout: float = 0.5) -> bool:
        """Write the FAISS file if this process changed the index since the last save (skipped when busy)."""
        if not self._dirty or self._rec is None:
            return False
        try:
            with acquire_write_lock(self.index_dir, timeout):
                with self._lock:
                    rec = self._current()
                    rec.store.catch_up()
                    rec.store.save()
                    self._dirty = False
                    self._identity = self._read_identity()
            return True
        except (IndexBusy, NotReady):
            return False

    def looks_changed(self) -> bool:
        """Whether :meth:`follow` has anything to do: a rebuilt index, or a commit to the catalog by another
        connection since the last look (another process's write, recomputed lists, changed rules: SQLite's
        ``data_version``). Two file stats and a one-row pragma, without waiting: while the index lock is held
        (a write or a live search of this process) it answers False, and the next look sees the change. Cheap
        enough for an event loop's timer, where a polling thread would take the GIL from the requests every
        ``check_interval``."""
        identity = self._identity_if_built()
        if identity is not None and identity != self._identity:
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            rec = self._rec
            if rec is None:
                return False
            try:
                version = int(rec.store.catalog.conn.execute("PRAGMA data_version").fetchone()[0])
            except STORAGE_EXCEPTIONS:
                return True  # follow() reports what is wrong
            if version == self._data_version:
                return False
            self._data_version = version  # read before following: a commit after this is seen next time
            return True
        finally:
            self._lock.release()

    def follow(self) -> None:
        """Pick up other processes' writes and a rebuilt index now (replays the catalog's changes: blocking
        work, for a thread); errors are logged, and a damaged catalog takes the service out of rotation."""
        try:
            identity = self._identity_if_built()  # file reads: outside the lock, which readers wait for
            with self._lock, translated(str(self.index_dir)):
                if self._rec is not None:
                    self._last_check = 0.0
                    self._maybe_refresh(identity)
        except RecommenderError as exc:  # logged, retried next round
            log.error("following the index failed: %s", exc)
            if isinstance(exc, IndexCorrupt):
                self.failed(exc)

    def _follow_loop(self) -> None:
        """Pick up other processes' writes and rebuilt indexes in the background, so that the version answers
        are cached under moves without any request waiting for it (the event loop never replays changes)."""
        while not self._stop.wait(self.check_interval):
            if self.looks_changed():
                self.follow()

    def _autosave_loop(self) -> None:
        while not self._stop.wait(self.autosave_seconds):
            try:
                with translated(str(self.index_dir)):
                    self.save_if_dirty()
            except RecommenderError as exc:  # logged, retried next round (a full disk, a busy folder)
                log.error("background save failed: %s", exc)


def _prune_quietly(rec: Recommender, content_hash: str) -> None:
    try:
        with rec.store.catalog.transaction():
            rec.store.catalog.prune_vectors([content_hash])
    except STORAGE_EXCEPTIONS as exc:
        log.warning("could not drop the vector of a failed write (a later sweep will): %s", exc)
