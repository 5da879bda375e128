"""Readers for every SOURCE a newsroom has: JSONL/JSON exports, CSV, a folder of HTML pages, RSS/Atom feeds.

Each reader yields :class:`Record` (an article and where it came from) or :class:`InvalidArticle` (what was
wrong and where), so a caller can keep the good articles and list the bad ones, or refuse the whole batch.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from recommender.articles import MAX_BODY_CHARS, Article, parse_datetime, validate_article
from recommender.errors import InvalidArticle, SourceError

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
CSV_SUFFIXES = {".csv", ".tsv"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".feed"}
HTML_SUFFIXES = {".html", ".htm"}


@dataclass(frozen=True)
class Record:
    """A valid article and the place it was read from (``file:line``, ``file entry N``, or a file)."""

    location: str
    article: Article


Loaded = Record | InvalidArticle


def detect_format(path: Path) -> str:
    """Which reader a SOURCE needs: ``jsonl``, ``csv``, ``html`` or ``feed`` (by folder/suffix, then content)."""
    if path.is_dir():
        return "html"
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in FEED_SUFFIXES:
        return "feed"
    if suffix in HTML_SUFFIXES:
        return "html"
    head = path.read_bytes()[:512].lstrip(codecs.BOM_UTF8).lstrip()
    if head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
        return "feed"
    if head.startswith(b"{"):
        return "jsonl"
    raise SourceError(f"{path}: unknown source format (expected .jsonl, .csv, .xml/.rss/.atom, .html or a folder)")


def check_sources(paths: Iterable[Path]) -> list[Path]:
    """Refuse the command up front when a SOURCE does not exist: a typo must not half-update an index."""
    checked = []
    for path in paths:
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        checked.append(path)
    return checked


def read_source(path: Path) -> Iterator[Loaded]:
    """Yield every article (or rejection) of one SOURCE."""
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from read_jsonl(path)
    elif fmt == "csv":
        yield from read_csv(path)
    elif fmt == "feed":
        yield from read_feed(path)
    elif path.is_dir():
        yield from read_html_folder(path)
    else:
        yield read_html_file(path, path.stem)


def _record(raw: Any, location: str) -> Loaded:
    try:
        return Record(location, validate_article(raw, location))
    except InvalidArticle as exc:
        return exc


def _decode_error(location: str, exc: UnicodeDecodeError, data: bytes) -> InvalidArticle:
    line = data.count(b"\n", 0, exc.start) + 1
    return InvalidArticle(f"{location}:{line}", f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); file skipped")


def read_jsonl(path: Path) -> Iterator[Loaded]:
    """One JSON object per line (a ``.json`` file holding one array of objects is read too)."""
    if jsonl_is_array(path):
        yield from _read_json_array(path, path.read_bytes())
        return
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            item = _jsonl_line(path, number, raw_line)
            if item is not None:
                yield item


def jsonl_is_array(path: Path) -> bool:
    """Whether a JSON SOURCE is one array (read whole): only a ``.json`` file; ``.jsonl`` is always by line."""
    if path.suffix.lower() != ".json":
        return False
    with path.open("rb") as handle:
        return handle.read(64).lstrip(codecs.BOM_UTF8).lstrip().startswith(b"[")


def read_jsonl_range(path: Path, start: int, end: int, first_line: int) -> Iterator[Loaded]:
    """The lines of a JSONL file between byte offsets ``start`` and ``end`` (both at line starts), numbered from
    ``first_line``: one shard of a large file, read in parallel with the others (see :mod:`recommender.distributed`)."""
    with path.open("rb") as handle:
        handle.seek(start)
        number = first_line
        while handle.tell() < end:
            raw_line = handle.readline()
            if not raw_line:
                return
            item = _jsonl_line(path, number, raw_line)
            if item is not None:
                yield item
            number += 1


def _jsonl_line(path: Path, number: int, raw_line: bytes) -> Loaded | None:
    """One line of a JSONL file as a record or a rejection; ``None`` for a blank line."""
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
    return _record(raw, location)


def _read_json_array(path: Path, data: bytes) -> Iterator[Loaded]:
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        yield _decode_error(str(path), exc, data)
        return
    except json.JSONDecodeError as exc:
        yield InvalidArticle(f"{path}:{exc.lineno}", f"malformed JSON ({exc.msg}); file skipped")
        return
    except RecursionError:
        yield InvalidArticle(str(path), "JSON nested too deeply; file skipped")
        return
    for number, raw in enumerate(items, start=1):
        yield _record(raw, f"{path} item {number}")


def read_csv(path: Path) -> Iterator[Loaded]:
    """A CSV (or TSV) export with a header row; ``tags`` may be comma-separated. Empty cells are absent."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield _decode_error(str(path), exc, data)
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(MAX_BODY_CHARS * 4)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield InvalidArticle(f"{path}:1", f"malformed CSV header ({exc}); file skipped")
        return
    header = [name.strip() for name in header]
    if "id" not in header:
        yield InvalidArticle(f"{path}:1", "the header row has no 'id' column; file skipped")
        return
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield InvalidArticle(f"{path}:{start}", f"malformed CSV ({exc}); rest of file skipped")
            return
        if not any(cell.strip() for cell in row):
            continue
        location = f"{path}:{start}"
        if len(row) > len(header):
            yield InvalidArticle(location, f"row has {len(row)} fields but the header has {len(header)}")
            continue
        raw = {name: cell for name, cell in zip(header, row, strict=False) if cell.strip()}
        yield _record(raw, location)


def html_files(folder: Path) -> list[Path]:
    """The ``.html``/``.htm`` files under ``folder`` (recursively), in name order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in HTML_SUFFIXES and p.is_file())


def read_html_folder(folder: Path, files: Iterable[Path] | None = None) -> Iterator[Loaded]:
    """Every ``.html``/``.htm`` file under ``folder`` (or just ``files`` of it), one article each."""
    for path in html_files(folder) if files is None else files:
        yield read_html_file(path, path.relative_to(folder).with_suffix("").as_posix())


def read_html_file(path: Path, fallback_id: str) -> Loaded:
    """Main text, title, date and section of one page, extracted with trafilatura (not regexes).

    The id is the page's canonical URL when it declares one, else ``fallback_id`` (the file's path).
    """
    import trafilatura  # heavy; only needed for HTML

    location = str(path)
    data = path.read_bytes()
    html: str | bytes
    try:
        html = data.decode("utf-8")
    except UnicodeDecodeError:
        html = data  # trafilatura detects the declared charset itself
    try:
        doc = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False)
    except Exception as exc:  # noqa: BLE001 - a broken page is one rejected article, whatever broke
        return InvalidArticle(location, f"HTML could not be parsed ({type(exc).__name__})")
    if doc is None:
        return InvalidArticle(location, "no article text found in the page")
    meta = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    url = meta.get("url") or None
    title = (meta.get("title") or "").strip()
    body = (meta.get("text") or "").strip()
    if title and body.startswith(title):
        body = body[len(title) :].lstrip()  # the page's <h1> repeats the title
    raw: dict[str, Any] = {
        "id": url or fallback_id,
        "title": title,
        "body": body,
        "url": url,
        "section": _first(meta.get("categories")),
        "tags": list(meta.get("tags") or []) or None,
        "language": meta.get("language") or None,
        "source_file": path.name,
    }
    if meta.get("date"):
        raw["published_at"] = meta["date"]
    if meta.get("author"):
        raw["author"] = meta["author"]
    return _record(raw, location)


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value or None


def read_feed(path: Path) -> Iterator[Loaded]:
    """Entries of an RSS or Atom feed file (feedparser); the id is the entry's guid, else its link."""
    import feedparser

    data = path.read_bytes()
    parsed = feedparser.parse(data)
    if parsed.get("bozo") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        yield InvalidArticle(str(path), f"not a readable RSS/Atom feed ({reason}); file skipped")
        return
    for number, entry in enumerate(parsed.entries, start=1):
        location = f"{path} entry {number}"
        content = entry.get("content") or []
        html_body = content[0].get("value", "") if content else entry.get("summary", "")
        body = html_to_text(html_body) if html_body and "<" in html_body else (html_body or "")
        title = entry.get("title", "")
        entry_id = entry.get("id") or entry.get("link")
        if not entry_id:
            digest = hashlib.sha1(f"{title}\n{body}".encode()).hexdigest()[:12]
            entry_id = f"{path.stem}:{digest}"
        raw: dict[str, Any] = {
            "id": entry_id,
            "title": title,
            "body": body,
            "url": entry.get("link"),
            "tags": [t.get("term") for t in entry.get("tags", []) if t.get("term")] or None,
        }
        if entry.get("tags"):
            raw["section"] = entry["tags"][0].get("term")
        # plain dict lookups: FeedParserDict.get() maps missing keys to others and warns about it
        date = dict.get(entry, "published") or dict.get(entry, "updated")
        if date:
            raw["published_at"] = _feed_date(entry, date)
        if entry.get("author"):
            raw["author"] = entry["author"]
        yield _record(raw, location)


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment (a feed entry's content), block elements separated by spaces."""
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except Exception:  # noqa: BLE001 - unparsable markup is kept as text rather than lost
        return fragment
    return " ".join(" ".join(root.itertext()).split())


def _feed_date(entry: Any, fallback: str) -> str:
    """Feeds use RFC 822 dates; feedparser parses them to UTC struct_time."""
    parsed = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
    if parsed:
        from calendar import timegm
        from datetime import datetime

        return datetime.fromtimestamp(timegm(parsed), tz=UTC).isoformat()
    try:
        return parse_datetime(fallback)
    except ValueError:
        return fallback  # left for the validator to reject with its location
