"""The event store: append-only NDJSON segment files in one folder, rotated by size and by day.

Kept apart from the catalog on purpose: recording clicks must never wait for (or hold up) the index's write
lock, and a flood of events must never grow the file every read opens. Each process writes its own segments
(``events-<UTC start>-<pid>-<n>.ndjson``), so several server workers never share a file; a segment is never
appended to after it is closed, so a line torn by a crash can only be the last line of a segment, and readers
skip it.

Acknowledged means stored: :meth:`EventLog.append` returns a future that resolves only after the bytes are
written and ``fdatasync``-ed. Concurrent requests are committed together (one write and one sync for everything
queued while the previous sync ran), so durability costs one sync per batch of requests, not per request, and
the request path itself never touches the disk.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommender.when import iso

log = logging.getLogger(__name__)

#: A segment is closed and a new one started past this size (and at each UTC midnight).
SEGMENT_BYTES = 64 * 1024 * 1024
PREFIX, SUFFIX = "events-", ".ndjson"


class EventLogClosed(RuntimeError):
    """The store was closed (the server is shutting down); the events were not stored."""


class EventLog:
    """One process's appender to the store in ``folder`` (created if needed). Thread-safe."""

    def __init__(self, folder: Path | str, *, segment_bytes: int = SEGMENT_BYTES, sync: bool = True) -> None:
        self.folder = Path(folder)
        self.segment_bytes = segment_bytes
        self.sync = sync
        self._queue: list[tuple[bytes, int, Future[int]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._size = 0
        self._day = ""
        self._segments = 0
        self.stored = 0  # events made durable by this process

    # -- writing ------------------------------------------------------------------------------------------------
    def append(self, records: Sequence[dict[str, Any]]) -> Future[int]:
        """Queue ``records`` (one JSON line each); the future gives their count once they are durable, or the
        error that kept them from being stored."""
        data = b"".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n" for r in records
        )
        done: Future[int] = Future()
        with self._cond:
            if self._closed:
                raise EventLogClosed("the event store is closed")
            self._queue.append((data, len(records), done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="recommender-events", daemon=True)
                self._thread.start()
            self._cond.notify()
        return done

    def write(self, records: Sequence[dict[str, Any]], timeout: float | None = 30.0) -> int:
        """:meth:`append` and wait until the records are durable."""
        return self.append(records).result(timeout)

    def close(self) -> None:
        """Store what is queued, then stop (later appends raise :class:`EventLogClosed`)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                if not batch:
                    return  # closed and drained
            try:
                self._write(b"".join(data for data, _, _ in batch))
            except OSError as exc:
                log.error("could not store %d event(s): %s", sum(n for _, n, _ in batch), exc)
                for _, _, done in batch:
                    done.set_exception(exc)
                continue
            for _, count, done in batch:
                self.stored += count
                done.set_result(count)

    def _write(self, data: bytes) -> None:
        now = datetime.now(UTC)
        day = now.strftime("%Y%m%d")
        if self._fd is None or day != self._day or (self._size and self._size + len(data) > self.segment_bytes):
            self._open_segment(now)
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        if self.sync:
            os.fdatasync(self._fd)

    def _open_segment(self, now: datetime) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.folder.mkdir(parents=True, exist_ok=True)
        self._segments += 1
        name = f"{PREFIX}{now:%Y%m%dT%H%M%S}-{os.getpid()}-{self._segments:06d}{SUFFIX}"
        self._fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._size = 0
        self._day = now.strftime("%Y%m%d")
        if self.sync:  # the new file's name must survive a power cut too
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


# -- reading ---------------------------------------------------------------------------------------------------------
class EventReader:
    """Every stored event (as the dict written), oldest segment first; ``since`` skips older ones. Lines that
    are not JSON (a line torn by a crash, a damaged file) are counted in :attr:`bad_lines` and skipped."""

    def __init__(self, folder: Path | str, since: datetime | None = None) -> None:
        self.folder = Path(folder)
        self.since = since
        self.bad_lines = 0
        self.segments = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        since = iso(self.since) if self.since is not None else None
        cutoff = self.since.timestamp() if self.since is not None else None
        for path in segments(self.folder):
            try:
                if cutoff is not None and path.stat().st_mtime < cutoff:
                    continue  # last written before `since`
                handle = path.open("rb")
            except FileNotFoundError:  # removed meanwhile (a site's own clean-up)
                continue
            self.segments += 1
            with handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        self.bad_lines += 1
                        continue
                    if not isinstance(record, dict):
                        self.bad_lines += 1
                        continue
                    if since is None or str(record.get("ts", "")) >= since:
                        yield record


def segments(folder: Path) -> list[Path]:
    """The store's segment files in the order they were started."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX))
