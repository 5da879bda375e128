"""RSS, Atom and RDF feeds (feedparser), from a file or fetched from a site.

The id is the entry's guid, else its link. A relative link resolves against the feed's own address or its
channel ``<link>``; the language is the entry's ``xml:lang``, else the channel's ``<language>``; the feed's
title is the site's name, cut from entry titles that repeat it.
"""

from __future__ import annotations

import hashlib
from calendar import timegm
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommender.errors import InvalidArticle
from recommender.ingest.dates import parse_date, to_utc_iso
from recommender.ingest.records import IngestOptions, Loaded, to_record
from recommender.ingest.text import clean_tags


def read_feed(
    source: Path | bytes, where: str | None = None, options: IngestOptions | None = None, *, feed_url: str | None = None
) -> Iterator[Loaded]:
    """Entries of one feed (a file, or a document fetched from ``feed_url``); ``where`` names it in locations."""
    import feedparser

    if isinstance(source, Path):
        data, where = source.read_bytes(), where or str(source)
    else:
        data, where = source, where or feed_url or "feed"
    headers = {"content-location": feed_url} if feed_url else None
    parsed = feedparser.parse(data, response_headers=headers)
    if parsed.get("bozo") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        yield InvalidArticle(where, f"not a readable RSS/Atom feed ({reason}); file skipped")
        return
    channel = parsed.get("feed", {})
    base = feed_url or dict.get(channel, "link") or None
    channel_language = dict.get(channel, "language") or None
    site_name = dict.get(channel, "title") or None
    stem = where.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for number, entry in enumerate(parsed.entries, start=1):
        yield _entry_record(entry, f"{where} entry {number}", options, base, channel_language, site_name, stem)


def _entry_record(
    entry: Any,
    location: str,
    options: IngestOptions | None,
    base: str | None,
    channel_language: str | None,
    site_name: str | None,
    stem: str,
) -> Loaded:
    # plain dict lookups: FeedParserDict.get() maps missing keys to others and warns about it
    content = dict.get(entry, "content") or []
    body = content[0].get("value", "") if content else dict.get(entry, "summary", "")
    title = dict.get(entry, "title", "")
    link = dict.get(entry, "link") or None
    entry_id = dict.get(entry, "id") or link
    if not entry_id:
        digest = hashlib.sha1(f"{title}\n{body}".encode()).hexdigest()[:12]
        entry_id = f"{stem}:{digest}"
    terms = [t.get("term") for t in dict.get(entry, "tags", []) or [] if t.get("term")]
    tags = clean_tags(terms)
    raw: dict[str, Any] = {
        "id": entry_id,
        "title": title,
        "body": body,
        "url": link,
        "section": tags[0] if tags else None,
        "tags": tags or None,
        "language": _entry_language(entry, content) or channel_language,
    }
    for key in ("published", "updated"):
        value = dict.get(entry, key)
        if not value:
            continue
        moment = parse_date(value) or _struct_time(dict.get(entry, f"{key}_parsed"))
        raw["published_at"] = to_utc_iso(moment) if moment else value
        raw["published_at_source"] = f"feed {key}"
        break
    if dict.get(entry, "author"):
        raw["author"] = entry["author"]
    return to_record(raw, location, options, site_name=site_name, base_url=base)


def _entry_language(entry: Any, content: list[Any]) -> str | None:
    """An Atom entry's ``xml:lang`` (feedparser keeps it on each text construct)."""
    for detail in (dict.get(entry, "title_detail"), *(content or []), dict.get(entry, "summary_detail")):
        if detail and detail.get("language"):
            return str(detail["language"])
    return None


def _struct_time(value: Any) -> datetime | None:
    """feedparser's own parse (UTC struct_time) of a date our parser did not read."""
    if not value:
        return None
    return datetime.fromtimestamp(timegm(value), tz=UTC)
