"""Publication dates with their time and zone, and where on a page they came from.

Time proximity in the ranking needs real timestamps: ``2026-06-12T18:11:51+03:00`` must not become midnight
UTC. Every reader turns its date into an aware datetime here and stores it in UTC (the article shape compares
dates as strings); the article's ``published_at_source`` metadata says which field or tag gave it.

On a page, the publisher's structured metadata comes first (``article:published_time`` and its kin, then
JSON-LD ``datePublished``, then a ``<time datetime>`` of the article itself, never one in a sidebar), then a
date in the title beside the site's name (``... | DW | 10.06.2013``); htmldate's heuristics are the last resort.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any

#: ``<meta>`` names/properties/itemprops that hold the publication time, most trusted first.
PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "date.issued",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date",
    "sailthru.date",
    "parsely-pub-date",
    "article.published",
    "date",
)
_NON_ARTICLE_ANCESTORS = ("aside", "nav", "footer", "header")
_EPOCH_RE = re.compile(r"\d{9,10}(?:\.\d+)?|\d{12,13}")
_NAIVE_SPACE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$")
#: Zone abbreviations news sites print; ambiguous ones take the reading news pages mean most (IST: India).
ZONE_ABBREVIATIONS = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "BST": 3600,
    "CET": 3600,
    "CEST": 7200,
    "MEZ": 3600,
    "MESZ": 7200,
    "EET": 7200,
    "EEST": 10800,
    "MSK": 10800,
    "IST": 19800,
    "PKT": 18000,
    "SGT": 28800,
    "HKT": 28800,
    "JST": 32400,
    "KST": 32400,
    "AEST": 36000,
    "AEDT": 39600,
    "EST": -18000,
    "EDT": -14400,
    "CST": -21600,
    "CDT": -18000,
    "MST": -25200,
    "MDT": -21600,
    "PST": -28800,
    "PDT": -25200,
}


def parse_date(value: Any, default_tz: tzinfo | None = None) -> datetime | None:
    """An aware datetime from what sources write: ISO 8601 (``Z``, ``+03:00``, a space for ``T``), RFC 822
    (``Mon, 04 Mar 2024 10:00:00 +0100``), Unix seconds or milliseconds, or a free form with a zone name
    (``Jun 12, 2026 13:39 IST``). A value without a zone is in ``default_tz`` (UTC when None); None when it is
    not a date. WordPress's ``0000-00-00 00:00:00`` (never published) is not a date."""
    zone = default_tz or UTC
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    text = str(value).strip()
    if not text or text.startswith("0000-00-00"):
        return None
    if _EPOCH_RE.fullmatch(text):
        return _from_epoch(float(text))
    parsed = _iso(text) or _rfc822(text) or _free_form(text)
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def to_utc_iso(moment: datetime) -> str:
    """The stored form: ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


def _from_epoch(seconds: float) -> datetime | None:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(text: str) -> datetime | None:
    candidate = text[:-1] + "+00:00" if text.endswith(("z", "Z")) else text
    match = _NAIVE_SPACE_RE.match(candidate)
    if match:
        candidate = f"{match[1]}T{match[2]}"
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None


def _rfc822(text: str) -> datetime | None:
    if not re.search(r"\d{4}", text) or not re.search(r"[A-Za-z]{3}", text):
        return None
    zone = re.search(r"([A-Za-z]{2,5})\s*$", text)
    if zone and zone.group(1).upper() not in ("GMT", "UT", "UTC", "Z"):
        return None  # a zone name (IST, CEST): email.utils would read an unknown one as UTC; dateutil uses our table
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _free_form(text: str) -> datetime | None:
    from dateutil import parser as date_parser

    if not re.search(r"\d", text):
        return None
    try:
        return date_parser.parse(text, tzinfos=ZONE_ABBREVIATIONS, fuzzy=False)
    except (ValueError, OverflowError, TypeError):
        return None


# -- dates on a page ------------------------------------------------------------------------------------------


def page_date(tree: Any, default_tz: tzinfo | None = None) -> tuple[datetime, str] | None:
    """The page's own structured publication time and where it came from (``meta article:published_time``,
    ``json-ld datePublished``, ``time datetime``), or None. A time written without a zone is in ``default_tz``
    (``--timezone``; UTC when None)."""
    for source, value in _page_candidates(tree):
        moment = parse_date(value, default_tz)
        if moment is not None:
            return moment, source
    return None


def _page_candidates(tree: Any) -> Iterator[tuple[str, str]]:
    metas: dict[str, str] = {}
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        content = (meta.get("content") or "").strip()
        if key and content and key not in metas:
            metas[key] = content
    for key in PUBLISHED_META[:-1]:
        if key in metas:
            yield f"meta {key}", metas[key]
    for value in _json_ld_dates(tree):
        yield "json-ld datePublished", value
    for element in tree.iter("time"):
        value = element.get("datetime")
        if value and _is_article_time(element):
            yield "time datetime", value
    if "date" in metas:
        yield "meta date", metas["date"]


def _is_article_time(element: Any) -> bool:
    """A ``<time>`` that dates the article: marked as the publication date, or inside the page's ``<article>``
    / ``<main>`` and not in an aside, a navigation, a header or a footer (where related stories' dates sit)."""
    if (element.get("itemprop") or "").lower() == "datepublished" or element.get("pubdate") is not None:
        return True
    inside_article = False
    for ancestor in element.iterancestors():
        tag = ancestor.tag.lower() if isinstance(ancestor.tag, str) else ""
        if tag in _NON_ARTICLE_ANCESTORS:
            return False
        if tag in ("article", "main"):
            inside_article = True
    return inside_article


_ARTICLE_TYPES = ("article", "newsarticle", "blogposting", "reportagenewsarticle", "webpage", "liveblogposting")


def _json_ld_dates(tree: Any) -> Iterator[str]:
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json" or not script.text:
            continue
        try:
            data = json.loads(script.text)
        except (ValueError, RecursionError):
            continue
        for item in _json_ld_items(data):
            types = item.get("@type")
            names = [str(t).lower() for t in (types if isinstance(types, list) else [types])]
            value = item.get("datePublished") or item.get("dateCreated")
            if isinstance(value, str) and any(n in _ARTICLE_TYPES or n.endswith("article") for n in names):
                yield value


def _json_ld_items(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _json_ld_items(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _json_ld_items(data["@graph"], depth + 1)
        if isinstance(data.get("mainEntity"), dict | list):
            yield from _json_ld_items(data["mainEntity"], depth + 1)


def title_date(text: str) -> datetime | None:
    """A date printed in a title beside the site's name: ``10.06.2013`` is day first (as European sites print
    it); other forms are left to dateutil."""
    from dateutil import parser as date_parser

    try:
        return date_parser.parse(text, dayfirst="." in text).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
