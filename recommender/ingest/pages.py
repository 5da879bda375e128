"""Web pages -- saved ``.html`` files or pages fetched from a site -- as articles.

trafilatura finds the main text (not regexes); the page's own metadata gives the rest: the canonical URL, the
language (``<html lang>``, ``og:locale``), the publication time with its zone (:mod:`recommender.ingest.dates`),
and the site's name (``og:site_name``), which is cut from the title.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.articles import clean_url
from recommender.errors import InvalidArticle
from recommender.ingest.dates import page_date, parse_date, title_date, to_utc_iso
from recommender.ingest.records import IngestOptions, Loaded, to_record
from recommender.ingest.text import clean_tags, html_to_text, split_title

HTML_SUFFIXES = {".html", ".htm"}


@dataclass(frozen=True)
class PageHints:
    """What a sitemap says about a page before it is fetched (Google News sitemaps: its title, time and
    language), and the ``lastmod`` to store so an unchanged page is not fetched again."""

    title: str | None = None
    published: str | None = None
    language: str | None = None
    lastmod: str | None = None


def html_files(folder: Path) -> list[Path]:
    """The ``.html``/``.htm`` files under ``folder`` (recursively), in name order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in HTML_SUFFIXES and p.is_file())


def read_html_folder(
    folder: Path, files: Iterable[Path] | None = None, options: IngestOptions | None = None
) -> Iterator[Loaded]:
    """Every ``.html``/``.htm`` file under ``folder`` (or just ``files`` of it), one article each; a link to a
    file outside the folder is not read."""
    for path in html_files(folder) if files is None else files:
        if outside_folder(folder, path):
            yield InvalidArticle(str(path), "is a link to a file outside the folder; not read")
            continue
        yield read_html_file(path, path.relative_to(folder).with_suffix("").as_posix(), options)


def outside_folder(folder: Path, path: Path) -> bool:
    """Whether ``path`` (found under ``folder``) is a link that leads out of it: such a file is not read."""
    return not path.resolve().is_relative_to(folder.resolve())


def read_html_file(path: Path, fallback_id: str, options: IngestOptions | None = None) -> Loaded:
    """One saved page; the id is its canonical URL when it declares one, else ``fallback_id`` (its path)."""
    return page_record(path.read_bytes(), str(path), fallback_id, options, extra={"source_file": path.name})


def page_record(
    data: bytes | str,
    location: str,
    fallback_id: str | None,
    options: IngestOptions | None = None,
    *,
    page_url: str | None = None,
    hints: PageHints | None = None,
    extra: dict[str, Any] | None = None,
) -> Loaded:
    """The article of one page. ``page_url`` is where it was fetched from (relative links resolve against it;
    the id is the canonical URL, else this one), ``hints`` what its sitemap said."""
    import trafilatura
    from trafilatura.utils import load_html

    hints = hints or PageHints()
    try:
        tree = load_html(data)
    except Exception as exc:  # noqa: BLE001 - a broken page is one rejected article, whatever broke
        return InvalidArticle(location, f"HTML could not be parsed ({type(exc).__name__})")
    if tree is None:
        return InvalidArticle(location, "not an HTML page")
    meta = _page_meta(tree)
    found = page_date(tree, options.timezone if options else None)  # before trafilatura prunes the tree
    try:
        doc = trafilatura.bare_extraction(tree, url=page_url, with_metadata=True, include_comments=False)
    except Exception as exc:  # noqa: BLE001
        return InvalidArticle(location, f"HTML could not be parsed ({type(exc).__name__})")
    if doc is None:
        return InvalidArticle(location, "no article text found in the page")
    info = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    site_name = meta.get("og:site_name") or info.get("sitename") or None
    section = _first(info.get("categories"))
    title = hints.title or meta.get("og:title") or info.get("title") or meta.get("title") or ""
    headline, _ = split_title(html_to_text(title, one_line=True), site_name, section)
    title_dates = (split_title(t, site_name, section)[1] for t in (meta.get("og:title"), meta.get("title")) if t)
    title_date = next((d for d in title_dates if d), None)
    body = (info.get("text") or "").strip()
    if headline and body.startswith(headline):
        body = body[len(headline) :].lstrip()  # the page's <h1> repeats the title
    canonical = meta.get("canonical") or info.get("url") or None
    url = canonical or page_url
    raw: dict[str, Any] = {
        "id": None,
        "title": headline,
        "body": body,
        "url": url,
        "section": section,
        "tags": clean_tags(info.get("tags") or []) or None,
        "language": meta.get("lang") or hints.language,
    }
    raw.update(extra or {})
    _set_date(raw, found, hints, title_date, info.get("date"))
    if info.get("author"):
        raw["author"] = info["author"]
    if hints.lastmod:
        raw["sitemap_lastmod"] = hints.lastmod
    # the id is the stored (absolute, cleaned) URL when there is one, else the file's path
    stored_url = clean_url(url, page_url) if url else None
    absolute = stored_url if stored_url and stored_url.startswith(("http://", "https://")) else None
    raw["id"] = absolute or fallback_id or stored_url
    return to_record(raw, location, options, site_name=site_name, base_url=page_url)


def _set_date(
    raw: dict[str, Any],
    found: tuple[Any, str] | None,
    hints: PageHints,
    title_date: str | None,
    extracted: str | None,
) -> None:
    """The page's structured date first, then its sitemap's, then a date beside the site's name in the title,
    then htmldate's guess (day only); ``published_at_source`` says which."""
    if found is not None:
        raw["published_at"], raw["published_at_source"] = to_utc_iso(found[0]), found[1]
        return
    news = parse_date(hints.published) if hints.published else None
    if news is not None:
        raw["published_at"], raw["published_at_source"] = to_utc_iso(news), "sitemap news:publication_date"
        return
    titled = _title_date(title_date)
    if titled is not None:
        raw["published_at"], raw["published_at_source"] = titled, "title"
        return
    if extracted:
        moment = parse_date(extracted)
        if moment is not None:
            raw["published_at"], raw["published_at_source"] = to_utc_iso(moment), "htmldate"


def _title_date(text: str | None) -> str | None:
    moment = title_date(text) if text else None
    return to_utc_iso(moment) if moment else None


def _page_meta(tree: Any) -> dict[str, str]:
    """``lang``, ``canonical``, ``title`` and the ``og:``/``article:`` meta values of a page."""
    meta: dict[str, str] = {}
    root = tree.getroottree().getroot() if hasattr(tree, "getroottree") else tree
    lang = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    for element in tree.iter("meta"):
        key = (element.get("property") or element.get("name") or element.get("http-equiv") or "").strip().lower()
        content = (element.get("content") or "").strip()
        if key and content:
            meta.setdefault(key, content)
    for element in tree.iter("link"):
        if "canonical" in (element.get("rel") or "").lower().split() and element.get("href"):
            meta.setdefault("canonical", element.get("href").strip())
    for element in tree.iter("title"):
        if element.text and element.text.strip():
            meta.setdefault("title", element.text.strip())
            break
    meta_lang = meta.get("og:locale") or meta.get("content-language") or meta.get("language") or meta.get("dc.language")
    if lang or meta_lang:
        meta["lang"] = (lang or meta_lang or "").strip()
    else:
        meta.pop("lang", None)
    return meta


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value or None
