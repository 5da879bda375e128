"""The event store: append-only NDJSON segment files in one folder, rotated by size and by day.

Kept apart from the catalog on purpose: recording clicks must never wait for (or hold up) the index's write
lock, and a flood of events must never grow the file every read opens. Each process writes its own segments
(``events-<UTC start>-<pid>-<n>.ndjson``), so several server workers never share a file; a segment is never
appended to after it is closed, so a line torn by a crash can only be the last line of a segment, and readers
skip it.

Acknowledged means stored: :meth:`EventLog.append` returns once the lines are written to the file (one
``write`` of whole lines), so a crash of the server -- ``kill -9`` included -- loses no acknowledged event; the
operating system holds them. Syncing to the disk (against a power cut) is done by a background thread every
``sync_interval`` seconds, not on the request path: a write costs microseconds, a sync milliseconds. With
``sync_interval=0`` every append is synced before it returns instead (nothing is lost even to a power cut, at the
cost of one sync per request).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from recommender.when import iso

log = logging.getLogger(__name__)

#: A segment is closed and a new one started past this size (and at each UTC midnight).
SEGMENT_BYTES = 64 * 1024 * 1024
#: Seconds between syncs of the current segment to the disk (0: sync on every append).
SYNC_INTERVAL = 1.0
PREFIX, SUFFIX = "events-", ".ndjson"


def _next_midnight(now: datetime) -> float:
    """The POSIX time of the UTC midnight after ``now``."""
    return datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() + 86400


class EventLogClosed(RuntimeError):
    """The store was closed (the server is shutting down); the events were not stored."""


class EventLog:
    """One process's appender to the store in ``folder`` (created on the first event). Thread-safe."""

    def __init__(
        self, folder: Path | str, *, segment_bytes: int = SEGMENT_BYTES, sync_interval: float = SYNC_INTERVAL
    ) -> None:
        self.folder = Path(folder)
        self.segment_bytes = segment_bytes
        self.sync_interval = sync_interval
        self._lock = threading.Lock()
        self._closed = False
        self._fd: int | None = None
        self._size = 0
        self._day_ends = 0.0  # POSIX time the current segment's UTC day ends
        self._segments = 0
        self._dirty = False
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self.stored = 0  # events written by this process

    def append(self, records: Sequence[dict[str, Any]]) -> int:
        """Write ``records`` (one JSON line each) to the current segment; returns their count once written.
        Raises :class:`EventLogClosed` after :meth:`close`, :class:`OSError` when the disk refuses."""
        data = b"".join([to_json(r) + b"\n" for r in records])  # compact UTF-8 JSON, as json.dumps writes it
        with self._lock:
            if self._closed:
                raise EventLogClosed("the event store is closed")
            self._write(data)
            self.stored += len(records)
            if self.sync_interval <= 0:
                os.fdatasync(self._fd)  # type: ignore[arg-type]
            else:
                self._dirty = True
                if self._syncer is None:
                    self._syncer = threading.Thread(target=self._sync_loop, name="recommender-events", daemon=True)
                    self._syncer.start()
        return len(records)

    def sync(self) -> None:
        """Sync what was written to the disk now."""
        with self._lock:
            if self._fd is not None and self._dirty:
                os.fdatasync(self._fd)
            self._dirty = False

    def close(self) -> None:
        """Sync and close (later appends raise :class:`EventLogClosed`)."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(timeout=30)
        self.sync()
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            try:
                self.sync()
            except OSError as exc:  # pragma: no cover - logged; the next round tries again
                log.error("could not sync the event store: %s", exc)

    def _write(self, data: bytes) -> None:
        now = time.time()
        if (
            self._fd is None
            or now >= self._day_ends
            or (self._size and self._size + len(data) > self.segment_bytes)
            or os.fstat(self._fd).st_nlink == 0  # the segment was deleted (a clean-up while serving): start anew
        ):
            self._open_segment(datetime.fromtimestamp(now, UTC))
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _open_segment(self, now: datetime) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)  # a closed segment is complete on disk
            os.close(self._fd)
            self._fd = None
        self.folder.mkdir(parents=True, exist_ok=True)
        self._segments += 1
        name = f"{PREFIX}{now:%Y%m%dT%H%M%S}-{os.getpid()}-{self._segments:06d}{SUFFIX}"
        self._fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._size = 0
        self._day_ends = _next_midnight(now)
        directory = os.open(self.folder, os.O_RDONLY)  # the new file's name must survive a power cut too
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
