"""A site that has only a website: its sitemap, a list of its URLs, or any URL of it (a feed, a WordPress REST
endpoint, one page, or its home page, whose robots.txt names its sitemaps).

``recommender build https://site/sitemap.xml`` reads the sitemap (a sitemap index is followed, ``.xml.gz``
unpacked, Google News entries give ``news:title``, ``news:publication_date`` and ``news:language``), then
fetches and extracts every page (:mod:`recommender.ingest.fetch`, :mod:`recommender.ingest.pages`). A page
already in the index with the same ``lastmod`` is not fetched again, so a second run (or ``watch``) fetches only
what changed. A page that cannot be fetched or read is one rejection naming its URL and why.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from recommender.errors import InvalidArticle
from recommender.ingest.feeds import read_feed
from recommender.ingest.fetch import Fetcher, FetchError, Page, is_url
from recommender.ingest.jsonl import read_json_items
from recommender.ingest.pages import PageHints, page_record
from recommender.ingest.records import IngestOptions, Loaded

log = logging.getLogger(__name__)

#: Sitemap files followed from one index at most (a guard against loops and runaway indexes).
MAX_SITEMAPS = 1000
#: Pages of a WordPress REST listing read at most (100 posts each).
MAX_REST_PAGES = 10_000
_XML_KIND_RE = re.compile(rb"<(?:[\w.-]+:)?(urlset|sitemapindex|rss|feed|RDF)\b")


@dataclass(frozen=True)
class SitemapEntry:
    """One ``<url>`` of a sitemap."""

    loc: str
    lastmod: str | None = None
    news_title: str | None = None
    news_published: str | None = None
    news_language: str | None = None

    def hints(self) -> PageHints:
        return PageHints(self.news_title, self.news_published, self.news_language, self.lastmod)


def document_kind(data: bytes, url: str = "") -> str:
    """What a fetched (or saved) document is: ``sitemap``, ``sitemapindex``, ``feed``, ``json``, ``html`` or
    ``urls`` (a plain list of URLs)."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    match = _XML_KIND_RE.search(head)
    if match:
        kind = match.group(1).decode()
        return {"urlset": "sitemap", "sitemapindex": "sitemapindex"}.get(kind, "feed")
    if head[:1] in (b"[", b"{") or "/wp-json/" in url:
        return "json"
    lowered = head.lower()
    if b"<html" in lowered or b"<!doctype html" in lowered or b"<head" in lowered or b"<body" in lowered:
        return "html"
    return "urls"


def parse_sitemap(data: bytes) -> tuple[list[SitemapEntry], list[str]]:
    """``(pages, child sitemaps)`` of one sitemap or sitemap index document."""
    from lxml import etree

    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    entries: list[SitemapEntry] = []
    children: list[str] = []
    for element in root:
        if not isinstance(element.tag, str):
            continue
        kind = etree.QName(element).localname
        values = _child_texts(element)
        loc = values.get("loc")
        if not loc:
            continue
        if kind == "sitemap":
            children.append(loc)
        elif kind == "url":
            entries.append(
                SitemapEntry(
                    loc,
                    values.get("lastmod"),
                    values.get("news/title"),
                    values.get("news/publication_date"),
                    values.get("news/publication/language"),
                )
            )
    return entries, children


def _child_texts(element: Any, prefix: str = "") -> dict[str, str]:
    """Texts of an element's descendants by their local-name path (``loc``, ``news/title``)."""
    from lxml import etree

    out: dict[str, str] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = prefix + etree.QName(child).localname
        if len(child):
            for key, value in _child_texts(child, name + "/").items():
                out.setdefault(key, value)
        elif child.text and child.text.strip():
            out.setdefault(name, child.text.strip())
    return out


def _unpacked(page: Page) -> bytes:
    data = page.data
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_url_source(url: str, options: IngestOptions | None = None) -> Iterator[Loaded]:
    """Every article a URL leads to: the pages of a sitemap (or sitemap index, or text list of URLs), the
    entries of a feed, the posts of a WordPress REST listing (all its pages), or the one page it is."""
    options = options or IngestOptions()
    fetcher = Fetcher(options.fetch)
    try:
        page = fetcher.get(url, check_robots=False)  # the operator named it; robots.txt governs the pages
    except FetchError as exc:
        yield InvalidArticle(url, exc.reason)
        return
    data = _unpacked(page)
    kind = document_kind(data, page.url)
    if kind in ("sitemap", "sitemapindex"):
        yield from fetch_pages(_sitemap_entries(fetcher, url, data), fetcher, options, site=url)
    elif kind == "feed":
        yield from read_feed(data, url, options, feed_url=page.url)
    elif kind == "json":
        yield from _read_json_api(fetcher, url, page, options)
    elif kind == "html" and urlsplit(url).path in ("", "/"):
        yield from _read_site(fetcher, url, page, options)
    elif kind == "html":
        yield _page_to_record(page, url, None, options)
    else:
        entries = (SitemapEntry(u) for u in url_lines(page.text, base=page.url))
        yield from fetch_pages(entries, fetcher, options)


def _read_site(fetcher: Fetcher, url: str, home: Page, options: IngestOptions) -> Iterator[Loaded]:
    """A site's home page: its sitemaps, as its robots.txt lists them (trafilatura's reading of robots.txt);
    without any, the home page itself."""
    from trafilatura.sitemaps import extract_robots_sitemaps

    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    try:
        robots = fetcher.get(f"{base}/robots.txt", check_robots=False).text
    except FetchError:
        robots = None
    sitemaps = extract_robots_sitemaps(robots, base)
    if not sitemaps:
        yield _page_to_record(home, url, None, options)
        return
    log.info("%s: reading the sitemaps its robots.txt lists: %s", url, ", ".join(sitemaps))
    for sitemap in sitemaps:
        yield from read_url_source(sitemap, options)


def read_url_list(path: Path, options: IngestOptions | None = None) -> Iterator[Loaded]:
    """A file of URLs (one a line; blank lines and ``#`` comments ignored): every page fetched and read."""
    options = options or IngestOptions()
    fetcher = Fetcher(options.fetch)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    yield from fetch_pages((SitemapEntry(u) for u in url_lines(text)), fetcher, options)


def url_lines(text: str, base: str | None = None) -> list[str]:
    """The URLs of a text list, in order, each once."""
    from recommender.articles import resolve_url

    urls: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not line:
            continue
        candidate = resolve_url(line.split()[0], base)
        if is_url(candidate):
            urls.append(candidate)
    return list(dict.fromkeys(urls))


def _sitemap_entries(fetcher: Fetcher, url: str, data: bytes) -> Iterator[SitemapEntry]:
    """Entries of a sitemap, following a sitemap index breadth-first; a child that fails is logged and skipped."""
    queue: list[tuple[str, bytes | None]] = [(url, data)]
    seen: set[str] = set()
    while queue and len(seen) < MAX_SITEMAPS:
        current, content = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if content is None:
            try:
                content = _unpacked(fetcher.get(current, check_robots=False))
            except FetchError as exc:
                log.warning("sitemap %s skipped: %s", current, exc.reason)
                continue
        entries, children = parse_sitemap(content)
        yield from entries
        queue.extend((child, None) for child in children if child not in seen)


def _same_site(url: str, site: str) -> bool:
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    home = (urlsplit(site).hostname or "").removeprefix("www.")
    return host == home or host.endswith("." + home) or home.endswith("." + host)


def fetch_pages(
    entries: Iterable[SitemapEntry], fetcher: Fetcher, options: IngestOptions, *, site: str | None = None
) -> Iterator[Loaded]:
    """Fetch and read every entry's page (``concurrency`` at a time, in order). An entry whose ``lastmod`` is
    the one stored with its article is not fetched; a page outside the sitemap's site is refused."""
    todo: list[SitemapEntry] = []
    unchanged = 0
    for entry in entries:
        if options.known_lastmod is not None and entry.lastmod and options.known_lastmod(entry.loc) == entry.lastmod:
            unchanged += 1
            continue
        todo.append(entry)
    if unchanged:
        log.info("%d pages unchanged since they were indexed (same lastmod): not fetched", unchanged)
        if options.on_unchanged is not None:
            options.on_unchanged(unchanged)
    total = len(todo)
    progress = options.fetch_progress
    if progress and total:
        progress(0, total)

    def work(entry: SitemapEntry) -> Loaded:
        if site is not None and not _same_site(entry.loc, site):
            return InvalidArticle(entry.loc, f"not on the site of {site}; not fetched")
        try:
            page = fetcher.get(entry.loc)
        except FetchError as exc:
            return InvalidArticle(entry.loc, exc.reason)
        return _page_to_record(page, entry.loc, entry.hints(), options)

    for done, item in enumerate(fetcher.map(work, todo), start=1):
        if progress:
            progress(done, total)
        yield item


def _page_to_record(page: Page, location: str, hints: PageHints | None, options: IngestOptions) -> Loaded:
    return page_record(page.data, location, None, options, page_url=page.url, hints=hints)


def _read_json_api(fetcher: Fetcher, url: str, first: Page, options: IngestOptions) -> Iterator[Loaded]:
    """A JSON document; a WordPress REST listing is read page after page (``X-WP-TotalPages``)."""
    try:
        items = json.loads(_unpacked(first).decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        yield InvalidArticle(url, f"not readable JSON ({exc})")
        return
    yield from read_json_items(items, url, options)
    if "/wp-json/" not in url and "rest_route=" not in url:
        return
    total = _int(first.headers.get("x-wp-totalpages"))
    number = 1
    while isinstance(items, list) and items and number < min(total or MAX_REST_PAGES, MAX_REST_PAGES):
        number += 1
        next_url = with_query(url, page=str(number))
        try:
            page = fetcher.get(next_url, check_robots=False)
            items = json.loads(_unpacked(page).decode("utf-8-sig"))
        except FetchError as exc:
            if exc.reason != "HTTP 400":  # WordPress's answer past the last page
                yield InvalidArticle(next_url, exc.reason)
            return
        except (UnicodeDecodeError, ValueError) as exc:
            yield InvalidArticle(next_url, f"not readable JSON ({exc})")
            return
        yield from read_json_items(items, next_url, options)


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters set (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
