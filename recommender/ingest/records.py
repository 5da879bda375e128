"""What every reader yields, and the one step that turns a reader's raw fields into an article.

:func:`to_record` is where every source meets: titles and bodies go through the one HTML-to-text step, the
site's name leaves the title, links are resolved against the page or channel they came from, dates are parsed
with their zones (a naive one in ``--timezone``), and the language is taken from the source or detected. Then
:func:`recommender.articles.validate_article` checks the shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from recommender.articles import (
    Article,
    clean_url,
    compose_text,
    normalise_language,
    reject_lone_surrogates,
    validate_article,
)
from recommender.errors import InvalidArticle, SourceError
from recommender.ingest.dates import parse_date, to_utc_iso
from recommender.ingest.fields import UTC_DATE_COLUMNS
from recommender.ingest.language import batch_classifier, detect_languages, language_of
from recommender.ingest.text import clean_title, html_to_text

if TYPE_CHECKING:
    from recommender.ingest.fetch import FetchSettings
    from recommender.reports import Progress


@dataclass(frozen=True)
class Record:
    """A valid article and the place it was read from (``file:line``, ``file entry N``, a URL, or a file)."""

    location: str
    article: Article
    #: the title and body to detect the language of, when ``IngestOptions.defer_language`` left it to
    #: :func:`with_languages` (None otherwise)
    language_text: str | None = None


Loaded = Record | InvalidArticle


@dataclass
class IngestOptions:
    """How SOURCEs are read: the CLI's ``--map`` and ``--timezone``, how pages are fetched, and what the index
    already holds (so a sitemap page with an unchanged ``lastmod`` is not fetched again)."""

    field_map: dict[str, str] = field(default_factory=dict)
    timezone: tzinfo | None = None
    #: ``--base-url``: the site's address, for site-relative links in exports (``/politik/neue-bruecke``)
    base_url: str | None = None
    fetch: FetchSettings | None = None
    #: ``known_lastmod(url)``: the sitemap ``lastmod`` stored with the article at ``url``, if any.
    known_lastmod: Callable[[str], str | None] | None = None
    #: called with 1 for each page not fetched because it is unchanged (the writer counts them as skipped)
    on_unchanged: Callable[[int], None] | None = None
    #: ``progress(done, total)`` of page fetches
    fetch_progress: Progress | None = None
    #: leave the detection of undeclared languages to :func:`with_languages` (which does a batch at a time)
    defer_language: bool = False


def parse_timezone(name: str | None) -> tzinfo | None:
    """``--timezone`` (an IANA name such as ``Europe/Berlin``, or ``UTC``) as a tzinfo; None for None."""
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceError(f"--timezone {name!r}: not a time zone (use an IANA name such as Europe/Berlin)") from None


def to_record(
    raw: Any,
    location: str,
    options: IngestOptions | None = None,
    *,
    site_name: str | None = None,
    base_url: str | None = None,
) -> Loaded:
    """One raw record (fields named as in the article shape) as a :class:`Record`, or the rejection naming
    ``location``. ``site_name`` (``og:site_name``, a feed's title) is cut from the title; ``base_url`` resolves a
    relative ``url``."""
    if not isinstance(raw, dict):
        return _validated(raw, location, None)
    try:
        reject_lone_surrogates(raw, location)  # before any cleaning: no step below can hold one
    except InvalidArticle as exc:
        return exc
    raw = dict(raw)
    if isinstance(raw.get("title"), str):
        section = raw.get("section") if isinstance(raw.get("section"), str) else None
        raw["title"] = clean_title(raw["title"], site_name, section)
    if isinstance(raw.get("body"), str):
        raw["body"] = html_to_text(raw["body"])
    if isinstance(raw.get("section"), str):
        raw["section"] = html_to_text(raw["section"], one_line=True)
    if isinstance(raw.get("url"), str) and raw["url"].strip():
        raw["url"] = clean_url(raw["url"], base_url or (options.base_url if options else None))
    timezone = options.timezone if options else None
    published = raw.get("published_at")
    if published not in (None, ""):
        source = str(raw.get("published_at_source") or "")
        moment = parse_date(published, None if source.lower() in UTC_DATE_COLUMNS else timezone)
        if moment is not None:
            try:
                raw["published_at"] = to_utc_iso(moment)
            except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
                reason = f"published_at {published!r} is outside the years 1-9999 in UTC"
                return InvalidArticle(f"{location} (id {raw.get('id')!r})", reason)
        elif not isinstance(published, str):
            raw["published_at"] = str(published)  # let the validator name what is wrong
    if isinstance(raw.get("title"), str | None) and isinstance(raw.get("body"), str | None):
        declared = raw.get("language") if isinstance(raw.get("language"), str) else None
        text = compose_text(raw.get("title") or "", raw.get("body") or "")
        if options is not None and options.defer_language and normalise_language(declared) is None:
            if declared is not None:
                raw["language"] = None
            loaded = _validated(raw, location, timezone)
            return Record(loaded.location, loaded.article, text) if isinstance(loaded, Record) else loaded
        language, _ = language_of(declared, text)
        if language is not None or declared is not None:
            raw["language"] = language
    return _validated(raw, location, timezone)


#: Records :func:`with_languages` holds back at a time: the batch walk's arrays stay a few MB.
LANGUAGE_BATCH = 512


def with_languages(items: Iterable[Loaded], batch: int = LANGUAGE_BATCH) -> Iterator[Loaded]:
    """``items`` in order, each record whose language detection was deferred given the detector's answer, a batch
    at a time (the same answers as :func:`to_record` without ``defer_language``, several times faster)."""
    classifier = None
    pending: list[Loaded] = []

    def flush() -> Iterator[Loaded]:
        nonlocal classifier
        texts = [item.language_text for item in pending if isinstance(item, Record) and item.language_text is not None]
        if texts and classifier is None:
            classifier = batch_classifier()
        answers = iter(detect_languages(texts, classifier))
        for item in pending:
            if isinstance(item, Record) and item.language_text is not None:
                language = next(answers)
                article = replace(item.article, language=language) if language is not None else item.article
                yield Record(item.location, article)
            else:
                yield item
        pending.clear()

    for item in items:
        pending.append(item)
        if len(pending) >= batch:
            yield from flush()
    yield from flush()


def _validated(raw: Any, location: str, timezone: tzinfo | None) -> Loaded:
    try:
        return Record(location, validate_article(raw, location, default_tz=timezone))
    except InvalidArticle as exc:
        return exc
