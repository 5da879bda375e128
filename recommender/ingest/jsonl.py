"""JSON exports: one object per line (JSONL/NDJSON), or one array in a ``.json`` file.

Objects in the article shape are read as they are; a CMS's own names (``ID``, ``post_title``, ``nid``) are
mapped by :mod:`recommender.ingest.fields`, and WordPress REST API posts (``title.rendered``) are recognised
and read by :mod:`recommender.ingest.wordpress`.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommender.errors import InvalidArticle
from recommender.ingest.fields import ColumnPlan
from recommender.ingest.records import IngestOptions, Loaded, to_record
from recommender.ingest.wordpress import is_rest_post, rest_post_record


def read_jsonl(path: Path, options: IngestOptions | None = None) -> Iterator[Loaded]:
    """One JSON object per line (a ``.json`` file holding one array of objects is read too)."""
    if jsonl_is_array(path):
        yield from _read_json_array(path, path.read_bytes(), options)
        return
    reader = _ObjectReader(options)
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            item = _jsonl_line(path, number, raw_line, reader)
            if item is not None:
                yield item


def jsonl_is_array(path: Path) -> bool:
    """Whether a JSON SOURCE is one array (read whole): only a ``.json`` file; ``.jsonl`` is always by line."""
    if path.suffix.lower() != ".json":
        return False
    with path.open("rb") as handle:
        return handle.read(64).lstrip(codecs.BOM_UTF8).lstrip().startswith(b"[")


def read_jsonl_range(
    path: Path, start: int, end: int, first_line: int, options: IngestOptions | None = None
) -> Iterator[Loaded]:
    """The lines of a JSONL file between byte offsets ``start`` and ``end`` (both at line starts), numbered from
    ``first_line``: one shard of a large file, read in parallel with the others (see :mod:`recommender.distributed`)."""
    reader = _ObjectReader(options)
    with path.open("rb") as handle:
        handle.seek(start)
        number = first_line
        while handle.tell() < end:
            raw_line = handle.readline()
            if not raw_line:
                return
            item = _jsonl_line(path, number, raw_line, reader)
            if item is not None:
                yield item
            number += 1


class _ObjectReader:
    """One JSON object to a record: WordPress REST posts natively, anything else through the column plan of its
    keys (plans cached: the lines of one export share their keys)."""

    def __init__(self, options: IngestOptions | None) -> None:
        self.options = options
        self._plans: dict[tuple[str, ...], ColumnPlan] = {}

    def __call__(self, raw: Any, location: str) -> Loaded | None:
        if not isinstance(raw, dict):
            return to_record(raw, location, self.options)
        if is_rest_post(raw):
            return rest_post_record(raw, location, self.options)
        keys = tuple(raw)
        plan = self._plans.get(keys)
        if plan is None:
            field_map = self.options.field_map if self.options else None
            plan = self._plans[keys] = ColumnPlan.for_columns(keys, field_map, require_mapped=False)
        if not plan.is_story(raw):
            return None
        return to_record(plan.apply(raw), location, self.options)


def _jsonl_line(path: Path, number: int, raw_line: bytes, reader: _ObjectReader) -> Loaded | None:
    """One line of a JSONL file as a record or a rejection; ``None`` for a blank line or a draft."""
    location = f"{path}:{number}"
    if number == 1:
        raw_line = raw_line.removeprefix(codecs.BOM_UTF8)
    try:
        line = raw_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidArticle(location, f"not valid UTF-8 (byte 0x{raw_line[exc.start]:02x})")
    if not line.strip():
        return None
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return InvalidArticle(location, f"malformed JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        return InvalidArticle(location, "JSON nested too deeply")
    return reader(raw, location)


def decode_error(location: str, exc: UnicodeDecodeError, data: bytes) -> InvalidArticle:
    """A file that is not UTF-8, naming the line of its first bad byte."""
    line = data.count(b"\n", 0, exc.start) + 1
    return InvalidArticle(f"{location}:{line}", f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); file skipped")


def _read_json_array(path: Path | str, data: bytes, options: IngestOptions | None) -> Iterator[Loaded]:
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        yield decode_error(str(path), exc, data)
        return
    except json.JSONDecodeError as exc:
        yield InvalidArticle(f"{path}:{exc.lineno}", f"malformed JSON ({exc.msg}); file skipped")
        return
    except RecursionError:
        yield InvalidArticle(str(path), "JSON nested too deeply; file skipped")
        return
    yield from read_json_items(items, str(path), options)


def read_json_items(items: Any, where: str, options: IngestOptions | None = None) -> Iterator[Loaded]:
    """Records of a parsed JSON array (a file, or a page of a CMS's API), located as ``WHERE item N``."""
    if not isinstance(items, list):
        items = [items]
    reader = _ObjectReader(options)
    for number, raw in enumerate(items, start=1):
        item = reader(raw, f"{where} item {number}")
        if item is not None:
            yield item
