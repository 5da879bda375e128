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
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on any exception, Ctrl-C included)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
