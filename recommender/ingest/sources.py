"""SOURCEs: which reader each needs, and the check that refuses a missing one before anything is written.

A SOURCE is a file (JSONL/JSON, CSV/TSV, an RSS/Atom feed, a WordPress WXR export, a sitemap, a list of
URLs, one HTML page), a folder of HTML pages, or an http(s) URL (a sitemap, a feed, a WordPress REST listing,
a text list of URLs, one page). Each reader yields :class:`Record` (an article and where it came from) or
:class:`InvalidArticle` (what was wrong and where), so a caller can keep the good articles and list the bad
ones, or refuse the whole batch.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from pathlib import Path

from recommender.errors import SourceError
from recommender.ingest.csvfile import read_csv
from recommender.ingest.feeds import read_feed
from recommender.ingest.fetch import Fetcher, FetchError, FetchSettings, is_url
from recommender.ingest.jsonl import jsonl_is_array, read_jsonl, read_jsonl_range
from recommender.ingest.pages import html_files, read_html_file, read_html_folder
from recommender.ingest.records import IngestOptions, Loaded, Record
from recommender.ingest.sitemaps import document_kind, parse_sitemap, read_url_list, read_url_source
from recommender.ingest.wordpress import is_wxr, read_wxr

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
CSV_SUFFIXES = {".csv", ".tsv"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".feed"}
HTML_SUFFIXES = {".html", ".htm"}
URL_LIST_SUFFIXES = {".txt", ".urls", ".list"}

Source = Path | str

__all__ = [
    "Loaded",
    "Record",
    "Source",
    "check_sources",
    "detect_format",
    "html_files",
    "jsonl_is_array",
    "read_html_folder",
    "read_jsonl_range",
    "read_source",
]


def detect_format(path: Path) -> str:
    """Which reader a file SOURCE needs: ``jsonl``, ``csv``, ``html``, ``feed``, ``wxr``, ``sitemap`` or
    ``urls`` (by folder/suffix, then content)."""
    if path.is_dir():
        return "html"
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in HTML_SUFFIXES:
        return "html"
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(codecs.BOM_UTF8).lstrip()
    if suffix in FEED_SUFFIXES or head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf", b"<urlset", b"<sitemap")):
        if is_wxr(head):
            return "wxr"
        kind = document_kind(head)
        return "sitemap" if kind in ("sitemap", "sitemapindex") else "feed"
    if head.startswith(b"{"):
        return "jsonl"
    if suffix in URL_LIST_SUFFIXES or head.lower().startswith((b"http://", b"https://")):
        return "urls"
    raise SourceError(
        f"{path}: unknown source format (expected .jsonl, .csv, .xml/.rss/.atom, a WordPress export, a sitemap, "
        ".html, a folder, a file of URLs, or an http(s) URL)"
    )


def check_sources(
    sources: Iterable[Source], fetch_check: bool = True, fetch: FetchSettings | None = None
) -> list[Source]:
    """Refuse the command up front when a SOURCE does not exist or a URL does not answer (fetched with
    ``fetch``): a typo must not half-update an index, nor leave an empty one behind. Paths come back as
    :class:`Path`, URLs as strings."""
    checked: list[Source] = []
    fetcher: Fetcher | None = None
    for source in sources:
        if is_url(source):
            url = str(source).strip()
            if fetch_check:
                fetcher = fetcher or Fetcher(fetch)
                try:
                    fetcher.get(url, check_robots=False)
                except FetchError as exc:
                    raise SourceError(f"{url}: does not answer ({exc.reason})") from None
            checked.append(url)
            continue
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        require_file_or_folder(path)
        checked.append(path)
    return checked


def require_file_or_folder(path: Path) -> None:
    """Refuse a SOURCE that is neither a regular file nor a folder: reading a FIFO, a device or a socket would
    block or never end."""
    if not (path.is_file() or path.is_dir()):
        raise SourceError(f"{path}: not a regular file or a folder (a FIFO, device or socket is not a SOURCE)")


def read_source(source: Source, options: IngestOptions | None = None) -> Iterator[Loaded]:
    """Yield every article (or rejection) of one SOURCE."""
    if is_url(source):
        yield from read_url_source(str(source).strip(), options)
        return
    path = Path(source)
    require_file_or_folder(path)
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from read_jsonl(path, options)
    elif fmt == "csv":
        yield from read_csv(path, options)
    elif fmt == "feed":
        yield from read_feed(path, str(path), options)
    elif fmt == "wxr":
        yield from read_wxr(path, str(path), options)
    elif fmt == "urls":
        yield from read_url_list(path, options)
    elif fmt == "sitemap":
        yield from _read_sitemap_file(path, options)
    elif path.is_dir():
        yield from read_html_folder(path, options=options)
    else:
        yield read_html_file(path, path.stem, options)


def _read_sitemap_file(path: Path, options: IngestOptions | None) -> Iterator[Loaded]:
    """A saved sitemap: its pages are fetched (child sitemaps of an index must be URLs)."""
    from recommender.ingest.sitemaps import fetch_pages

    options = options or IngestOptions()
    entries, children = parse_sitemap(path.read_bytes())
    for child in children:
        yield from read_url_source(child, options)
    yield from fetch_pages(entries, Fetcher(options.fetch), options)
