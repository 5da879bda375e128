"""SQLite helpers every module that talks to a catalog uses: bounded ``IN (...)`` lists, keyset pages, and
``BEGIN IMMEDIATE`` transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

#: Values bound per ``IN (...)`` query: under SQLite's default limit of 999 parameters.
MAX_BOUND = 900


def in_chunks(values: Sequence[Any], size: int = MAX_BOUND) -> Iterator[tuple[list[Any], str]]:
    """``values`` in slices small enough to bind, each with its ``?,?,...`` placeholder list."""
    for start in range(0, len(values), size):
        chunk = list(values[start : start + size])
        yield chunk, ",".join("?" * len(chunk))


def keyset_pages(conn: sqlite3.Connection, sql: str, start: Any, size: int) -> Iterator[list[Any]]:
    """Every row of ``sql`` a page at a time by keyset pagination: ``sql`` takes ``(after, limit)`` and orders by
    its first column, whose last value starts the next page (memory stays flat, no OFFSET rescans)."""
    last = start
    while True:
        rows = conn.execute(sql, (last, size)).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


class Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on any exception, Ctrl-C included).

    ``durable=False`` commits without waiting for the disk (``synchronous=NORMAL`` for this one transaction, in
    WAL mode): the commit survives a crash of the process, not a power cut, until the next durable commit syncs
    the log (which holds it). For what can be made again from durable data: cached vectors, stored lists
    (the next write's catch-up redoes lists behind the catalog). The connection's setting is restored after.
    """

    def __init__(self, conn: sqlite3.Connection, *, durable: bool = True) -> None:
        self.conn = conn
        self.durable = durable

    def __enter__(self) -> sqlite3.Connection:
        if not self.durable:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._restore()
            raise
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.conn.execute("COMMIT")
            else:
                self.conn.execute("ROLLBACK")
        finally:
            self._restore()

    def _restore(self) -> None:
        if not self.durable:
            self.conn.execute("PRAGMA synchronous=FULL")
