"""The article: the one shape every source is turned into, validated once at the edge."""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from recommender.errors import InvalidArticle

#: Documented size limits (characters). Longer text is refused, not silently cut:
#: a 1 MB body is a broken export, not an article.
MAX_ID_CHARS = 512
MAX_TITLE_CHARS = 2_000
MAX_BODY_CHARS = 1_000_000
MAX_SHORT_FIELD_CHARS = 2_048  # url, section, language, each tag

KNOWN_FIELDS = ("id", "title", "body", "url", "published_at", "section", "tags", "language")


@dataclass(frozen=True)
class Article:
    """A validated news article. ``metadata`` keeps every field the schema does not know."""

    id: str
    title: str = ""
    body: str = ""
    url: str | None = None
    published_at: str | None = None  # ISO 8601, normalised to UTC (metadata "published_at_source": where from)
    section: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The text that is embedded (see :func:`compose_text`)."""
        return compose_text(self.title, self.body)

    @property
    def content_hash(self) -> str:
        """Hash of the embedded text: equal hashes never need embedding twice."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def copy_key(self) -> str:
        """Hash of the normalised text: two articles with the same key are copies of one story."""
        return hashlib.sha256(normalise_for_copy(self.text).encode("utf-8")).hexdigest()[:32]

    @property
    def record_hash(self) -> str:
        """Hash of every field, so a metadata-only edit is an update without re-embedding."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")).hexdigest()

    @property
    def published(self) -> datetime | None:
        return datetime.fromisoformat(self.published_at) if self.published_at else None

    def to_dict(self) -> dict[str, Any]:
        """The article as a plain JSON-able dict (metadata fields merged back in)."""
        out: dict[str, Any] = dict(self.metadata)
        out.update(
            id=self.id,
            title=self.title,
            body=self.body,
            url=self.url,
            published_at=self.published_at,
            section=self.section,
            tags=list(self.tags),
            language=self.language,
        )
        return out


def article_from_json(data: str) -> Article:
    """An article from the JSON the catalog stores (:meth:`Article.to_dict`), trusted: it was validated when
    it was written."""
    raw: dict[str, Any] = json.loads(data)
    known = {k: raw.pop(k, None) for k in KNOWN_FIELDS}
    return Article(
        id=known["id"],
        title=known["title"] or "",
        body=known["body"] or "",
        url=known["url"],
        published_at=known["published_at"],
        section=known["section"],
        tags=tuple(known["tags"] or ()),
        language=known["language"],
        metadata=raw,
    )


def compose_text(title: str, body: str) -> str:
    """Title and body as one passage, the way the model sees it.

    The model reads the first 256 word pieces, so the title and lead carry most weight, which is what a
    reader of the headline expects.
    """
    title = title.strip()
    body = body.strip()
    if title and body:
        sep = " " if title[-1] in ".!?:;" else ". "
        return f"{title}{sep}{body}"
    return title or body


_PUNCT_RE = re.compile(r"[\W_]+", re.UNICODE)


def normalise_for_copy(text: str) -> str:
    """Lower-case, accent- and punctuation-insensitive form of a text, for exact-copy detection."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_RE.sub(" ", text).strip()


#: Query parameters that only track the reader; URLs differing in them are the same page.
_TRACKING_PARAMS = ("utm_", "fbclid", "gclid", "mc_", "cmp", "ref", "share", "amp")


@lru_cache(maxsize=65536)
def url_key(url: str) -> str:
    """A URL reduced to what identifies the page: no scheme, ``www.``, fragment, tracking parameters,
    ``/amp`` suffix or trailing slash. Variants of one page get one key."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.").removeprefix("m.")
    path = parts.path.rstrip("/")
    if path.endswith("/amp"):
        path = path[: -len("/amp")]
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith(_TRACKING_PARAMS)
    ]
    key = f"{host}{path}"
    if query:
        key += "?" + urlencode(sorted(query))
    return key


def parse_datetime(value: str, default_tz: tzinfo | None = None) -> str:
    """Parse an ISO 8601 date or date-time, keeping its zone; a naive value is in ``default_tz`` (UTC when None).
    Returns ISO 8601 in UTC, so stored dates compare as strings."""
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)  # raises ValueError
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz or UTC)
    try:
        return parsed.astimezone(UTC).isoformat()
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise ValueError(f"{value!r} is outside the years 1-9999 once moved to UTC") from None


# -- stored URLs: cleaned once, here ---------------------------------------------------------------------------


def resolve_url(url: str, base: str | None) -> str:
    """``url`` made absolute against ``base`` (the page's or the feed channel's address) when it is relative
    (``/world/2023/...``, ``story.html``, ``//host/path``); an absolute URL, or no base, is returned as is."""
    from urllib.parse import urljoin, urlsplit

    url = url.strip()
    if not base or urlsplit(url).scheme:
        return url
    return urljoin(base.strip(), url)


#: Newsroom trackers courlan's list does not have (the Guardian's ``CMP``, MSN's ``ocid``, HubSpot, Marketo).
_MORE_TRACKERS = frozenset({"cmp", "ocid", "_hsenc", "_hsmi", "mkt_tok", "s_cid", "ito", "ns_mchannel", "ns_source"})


def _is_tracker(name: str) -> bool:
    from courlan.clean import TRACKERS_RE

    name = name.lower()
    return name in _MORE_TRACKERS or bool(TRACKERS_RE.search(name))


def strip_tracking(url: str) -> str:
    """``url`` without the query parameters that only track the reader (``utm_*``, ``fbclid``, ``gclid``,
    ``mc_cid``, ...: courlan's list, the library trafilatura uses, and a few more) and without a tracking
    fragment. Everything else -- scheme, host, path, other parameters and their order -- is kept as it was."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.query and not parts.fragment:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not _is_tracker(k)]
    query = parts.query if len(kept) == len(pairs) else urlencode(kept)
    fragment = "" if parts.fragment and _is_tracker(parts.fragment.split("=", 1)[0]) else parts.fragment
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))


def clean_url(url: str, base: str | None = None) -> str:
    """The URL to store for an article: relative links resolved against ``base``, tracking parameters dropped.
    A relative URL without a base stays site-relative."""
    return strip_tracking(resolve_url(url, base))


_LANGUAGE_RE = re.compile(r"[a-z]{2,3}")


def normalise_language(value: str | None) -> str | None:
    """A language tag as its lowercase primary subtag: ``en-US``, ``EN_gb`` and ``en`` are all ``en``; ``de-AT``
    is ``de``. Not a tag (empty, ``und``, ``x-default``, a name): None, so the language can be detected."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
    if not _LANGUAGE_RE.fullmatch(primary) or primary in ("und", "mul", "zxx"):
        return None
    return primary


def _string(raw: dict[str, Any], key: str, location: str, limit: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArticle(location, f"field {key!r} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidArticle(location, f"field {key!r} contains a NUL character")
    value = value.strip()
    if len(value) > limit:
        raise InvalidArticle(location, f"field {key!r} is {len(value):,} characters (limit {limit:,})")
    return value or None


def _tags(raw: dict[str, Any], location: str) -> tuple[str, ...]:
    """Tags as a list: a comma-separated string is split, entities (``&amp;``) unescaped, and repeats (in any
    letter case) dropped, keeping the first spelling."""
    value = raw.get("tags")
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidArticle(
            location, f"field 'tags' must be a list or a comma-separated string, not {type(value).__name__}"
        )
    tags: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise InvalidArticle(location, "field 'tags' must hold only strings")
        item = " ".join(html.unescape(item).split())
        if len(item) > MAX_SHORT_FIELD_CHARS:
            raise InvalidArticle(location, f"a tag is {len(item):,} characters (limit {MAX_SHORT_FIELD_CHARS:,})")
        if item and item.casefold() not in seen:
            seen.add(item.casefold())
            tags.append(item)
    return tuple(tags)


_SURROGATE = re.compile("[\ud800-\udfff]")


def reject_lone_surrogates(raw: dict[str, Any], location: str) -> None:
    """Refuse a record holding a lone UTF-16 surrogate (JSON's ``"\\ud800"``) in any field, key, tag or nested
    value: it is not Unicode, cannot be encoded as UTF-8, and would otherwise fail the whole batch later."""
    stack: list[tuple[str, Any]] = [(str(key), value) for key, value in raw.items()]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if value.isascii():  # (a flag CPython keeps: no scan) an ASCII string holds no surrogate
                continue
            found = _SURROGATE.search(value)
            if found:
                raise InvalidArticle(
                    location, f"field {where!r} contains a lone surrogate (U+{ord(found.group()):04X}), not Unicode"
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    raise InvalidArticle(location, f"a key of field {where!r} contains a lone surrogate, not Unicode")
                stack.append((where, item))
        elif isinstance(value, list | tuple):
            stack.extend((where, item) for item in value)
    for key in raw:
        if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
            raise InvalidArticle(location, "a field name contains a lone surrogate, not Unicode")


#: URL schemes a link may have; anything else (``javascript:``, ``data:``, ``vbscript:``...) is refused.
SAFE_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def link_problem(url: str) -> str | None:
    """Why ``url`` may not be stored or written as a link, or None when it is safe: only ``http(s)://host...``
    and site-relative paths (``/news/1``) are. Browsers drop tabs and newlines inside a URL and spaces and control
    characters around it (``java\tscript:`` runs as ``javascript:``), so any control character is refused too."""
    if _CONTROL.search(url):  # (a regex: checked for every link of every answer)
        return "contains control characters"
    text = url.strip()
    scheme = _SCHEME.match(text)
    if scheme is not None:
        if scheme.group(1).lower() not in SAFE_SCHEMES:
            return f"has the scheme {scheme.group(1).lower()!r} (only http and https links are kept)"
        rest = text[scheme.end() :]
        if not rest.startswith("//") or not rest[2:].lstrip("/\\"):
            return "has no host"
        return None
    if text.startswith(("//", "/\\", "\\")):
        return "is protocol-relative (give http:// or https://)"
    if not text.startswith("/"):
        return "is neither an http(s) URL nor a site-relative path starting with /"
    return None


def is_safe_link(url: str | None) -> bool:
    """Whether a renderer may write ``url`` as a link (every renderer checks again: older catalogs may hold
    links from before they were checked at the edge). Answers are remembered: every link of every answer asks."""
    return url is not None and url != "" and _safe(url)


@lru_cache(maxsize=16384)
def _safe(url: str) -> bool:
    return link_problem(url) is None


def validate_article(raw: Any, location: str, *, default_tz: tzinfo | None = None) -> Article:
    """Turn one raw record into an :class:`Article`, or raise :class:`InvalidArticle` naming ``location``.

    A ``published_at`` without a zone is in ``default_tz`` (UTC when None); the stored URL has its tracking
    parameters removed (:func:`clean_url`)."""
    if not isinstance(raw, dict):
        raise InvalidArticle(location, f"expected an object with an 'id', got {type(raw).__name__}")
    reject_lone_surrogates(raw, location)
    raw_id = raw.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)  # CMS exports often carry numeric ids
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise InvalidArticle(location, "missing 'id'")
    article_id = raw_id.strip()
    if len(article_id) > MAX_ID_CHARS:
        raise InvalidArticle(location, f"id is {len(article_id):,} characters (limit {MAX_ID_CHARS})")
    if any(unicodedata.category(ch) == "Cc" for ch in article_id):
        raise InvalidArticle(location, "id contains control characters")
    where = f"{location} (id {article_id!r})"
    title = _string(raw, "title", where, MAX_TITLE_CHARS) or ""
    body = _string(raw, "body", where, MAX_BODY_CHARS) or ""
    if not title and not body:
        raise InvalidArticle(where, "has neither title nor body")
    published_raw = _string(raw, "published_at", where, MAX_SHORT_FIELD_CHARS)
    published_at = None
    if published_raw:
        try:
            published_at = parse_datetime(published_raw, default_tz)
        except ValueError as exc:
            reason = "is outside the years 1-9999 in UTC" if "outside" in str(exc) else "is not an ISO 8601 date"
            raise InvalidArticle(where, f"published_at {published_raw!r} {reason}") from None
    metadata = {key: value for key, value in raw.items() if key not in KNOWN_FIELDS}
    try:
        json.dumps(metadata)
    except (TypeError, ValueError):
        raise InvalidArticle(where, "extra fields must be JSON values") from None
    url = _string(raw, "url", where, MAX_SHORT_FIELD_CHARS)
    if url is not None:
        problem = link_problem(url)
        if problem is not None:
            raise InvalidArticle(where, f"url {url[:80]!r} {problem}")
    return Article(
        id=article_id,
        title=title,
        body=body,
        url=clean_url(url) if url else None,
        published_at=published_at,
        section=_string(raw, "section", where, MAX_SHORT_FIELD_CHARS),
        tags=_tags(raw, where),
        language=normalise_language(_string(raw, "language", where, MAX_SHORT_FIELD_CHARS)),
        metadata=metadata,
    )
