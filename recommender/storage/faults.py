"""I/O failures of the index folder as domain errors: one translation for SQLite's and the operating system's.

A full disk, a damaged catalog or an unreadable file otherwise reaches the user as a traceback (CLI) or a bare
500 (HTTP). :func:`storage_error` names what happened in one line; the edges call it (``handle_errors`` in the
CLI, the exception handlers of the HTTP app) and so do the library's own checks (``recommender check``).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from recommender.errors import IndexBusy, IndexCorrupt, RecommenderError, StorageError, StorageFull

#: errno values that mean "no room": the disk, the user's quota, or the process's file size limit.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Exceptions :func:`storage_error` translates.
STORAGE_EXCEPTIONS = (sqlite3.Error, OSError)


def storage_error(exc: BaseException, where: str = "the index") -> RecommenderError | None:
    """The domain error for an I/O failure (None when ``exc`` is not one): full -> :class:`StorageFull`,
    damaged -> :class:`IndexCorrupt`, locked -> :class:`IndexBusy`, anything else -> :class:`StorageError`."""
    if isinstance(exc, RecommenderError):
        return exc
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        name = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in FULL_ERRNOS:
            return StorageFull(f"{where}: no space left to write{name}: {reason}")
        return StorageError(f"{where}: {reason}{name}")
    if not isinstance(exc, sqlite3.Error):
        return None
    message = str(exc)
    code = getattr(exc, "sqlite_errorname", "") or ""
    lowered = message.lower()
    if code.startswith("SQLITE_FULL") or "disk is full" in lowered:
        return StorageFull(f"{where}: no space left to write the catalog ({message})")
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in lowered or "not a database" in lowered:
        return IndexCorrupt(f"{where}: the catalog is damaged ({message}); restore catalog.sqlite from a backup")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lowered:
        return IndexBusy(f"{where}: the catalog is busy ({message}); try again")
    return StorageError(f"{where}: the catalog could not be read or written ({message})")


@contextmanager
def translated(where: str = "the index") -> Iterator[None]:
    """``with translated(...):`` raises the domain error of any I/O failure inside the block."""
    try:
        yield
    except STORAGE_EXCEPTIONS as exc:
        raise storage_error(exc, where) from exc  # type: ignore[misc]


__all__ = ["STORAGE_EXCEPTIONS", "storage_error", "translated"]
