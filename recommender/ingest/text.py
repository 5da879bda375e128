"""The one HTML-to-text step every title and body goes through, whatever the source.

CMS exports carry markup (``<!-- wp:paragraph --><p>...``), entities (``&#8217;``, ``&amp;``) or both; feeds
carry them in CDATA and ``type="html"`` elements. A value with neither is returned unchanged, so plain text
costs one regular-expression search. Markup is parsed with lxml (the parser trafilatura is built on), never
stripped with regexes: comments, scripts and styles are dropped, block elements become line breaks.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

#: A tag, comment or doctype (``<p>``, ``</b>``, ``<!-- wp:... -->``, ``<br/>``), or a character entity.
_MARKUP_RE = re.compile(r"<(?:[a-zA-Z][\w:-]*(?:\s[^<>]*)?/?|/[a-zA-Z][\w:-]*\s*|!--.*?--|!\[CDATA\[)>?", re.DOTALL)
_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});")
_BLOCK_TAGS = tuple(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr li "
    "main nav ol p pre section table tbody td th thead tr ul".split()
)
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "svg")
_TAG_RE = re.compile(r"<[^<>]*>")
_SPACES_RE = re.compile(r"[^\S\n]+")
_BLANK_LINES_RE = re.compile(r"\n\s*\n\s*")


def has_markup(value: str) -> bool:
    """Whether ``value`` holds HTML tags, comments or character entities (and so needs :func:`html_to_text`)."""
    return bool(_MARKUP_RE.search(value) or _ENTITY_RE.search(value))


def html_to_text(value: str, *, one_line: bool = False) -> str:
    """Plain text of an HTML fragment or document: entities decoded, markup gone, paragraphs kept as blank
    lines (``one_line``: everything on one line, for a title). Text without markup is returned stripped."""
    if not has_markup(value):
        return " ".join(value.split()) if one_line else value.strip()  # plain text: as it was (same hash)
    text = value
    for _ in range(3):  # a value escaped twice over in its source (``&lt;p&gt;``, ``&amp;#8217;``) needs more passes
        if _MARKUP_RE.search(text):
            text = _fragment_text(text)
        elif _ENTITY_RE.search(text):
            text = html.unescape(text)
        else:
            break
    if one_line:
        return " ".join(text.split())
    lines = _SPACES_RE.sub(" ", text)
    return _BLANK_LINES_RE.sub("\n\n", "\n".join(line.strip() for line in lines.split("\n"))).strip()


@lru_cache(maxsize=1)
def _parser() -> Any:
    import lxml.etree

    # a plain HTML parser: lxml.html's element classes cost a Python call per element, and text is all we need
    return lxml.etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)


def _fragment_text(fragment: str) -> str:
    import lxml.etree

    try:
        document = lxml.etree.fromstring(f"<html><body><div>{fragment}</div></body></html>", _parser())
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        document = None
    root = document.find("body/div") if document is not None else None
    if root is None:
        return html.unescape(_TAG_RE.sub(" ", fragment))  # unparsable: keep the words rather than lose them
    lxml.etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n\n" + (element.tail or "")
        if element.tag != "br":
            element.text = "\n" + (element.text or "")
    return "".join(root.itertext())


# -- titles ---------------------------------------------------------------------------------------------------

#: What separates a headline from the site's name in a ``<title>``: `` | ``, `` - ``, `` – ``, `` — ``, `` · ``.
_TITLE_SEPARATOR_RE = re.compile(r"\s+[|\u2013\u2014\u00b7\u2022:]{1,2}\s+|\s+-{1,2}\s+|\s*\|\s*")
_DATE_SEGMENT_RE = re.compile(
    r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}\.? [A-Za-zäéû]+\.? \d{4}|[A-Za-z]+\.? \d{1,2},? \d{4}"
)
_SITE_NAME_NOISE_RE = re.compile(r"^(?:www\.)|\.(?:com|net|org|de|fr|co\.uk|co|uk|at|ch|info|eu|io)$|[^\w]+")


def _site_key(value: str) -> str:
    value = value.strip().casefold()
    previous = None
    while previous != value:
        previous = value
        value = _SITE_NAME_NOISE_RE.sub("", value)
    return value


def _is_site_name(segment: str, site_key: str) -> bool:
    key = _site_key(segment)
    return bool(key) and (key == site_key or (len(key) >= 4 and site_key.startswith(key)) or key.startswith(site_key))


def is_date_segment(segment: str) -> bool:
    """Whether a title segment is only a date (``10.06.2013``, ``19 January 2020``, ``Jan 19, 2020``)."""
    return bool(_DATE_SEGMENT_RE.fullmatch(segment.strip()))


def split_title(title: str, site_name: str | None, section: str | None = None) -> tuple[str, str | None]:
    """``(headline, date segment)`` of a page title: a leading or trailing run of segments that names the site
    (``og:site_name``, matched loosely: ``DW`` is ``DW.COM``) is dropped, with a date or the page's section
    beside it (``Uncork the mystery | DW | 10.06.2013``). Without a site name nothing is cut: a headline may
    itself hold a ``|`` or a ``-``."""
    title = " ".join(title.split())
    site_key = _site_key(site_name or "")
    separators = list(_TITLE_SEPARATOR_RE.finditer(title))
    if not site_key or not separators:
        return title, None
    starts = [0] + [m.end() for m in separators]
    ends = [m.start() for m in separators] + [len(title)]
    texts = [title[a:b] for a, b in zip(starts, ends, strict=True)]
    section_key = _site_key(section or "")

    def droppable(text: str) -> bool:
        return (
            _is_site_name(text, site_key)
            or is_date_segment(text)
            or (bool(section_key) and _site_key(text) == section_key)
        )

    for cut in range(max(1, len(texts) - 3), len(texts)):  # longest trailing run first, at most 3 segments
        tail = texts[cut:]
        if all(droppable(t) for t in tail) and any(_is_site_name(t, site_key) for t in tail):
            return title[: ends[cut - 1]].strip(), next((t for t in tail if is_date_segment(t)), None)
    if len(texts) > 1 and _is_site_name(texts[0], site_key):  # leading: "Site Name - Headline"
        return title[starts[1] :].strip(), None
    return title, None


def clean_title(title: str, site_name: str | None = None, section: str | None = None) -> str:
    """A headline as plain text on one line, without the site's name (see :func:`split_title`). A plain title
    with no site name to cut is returned as it was, so its article's text (and hash) does not change."""
    if not site_name and not has_markup(title):
        return title.strip()
    text = html_to_text(title, one_line=True)
    site = html_to_text(site_name, one_line=True) if site_name else None
    return split_title(text, site, section)[0]


def clean_tags(values: Iterable[str | None]) -> list[str]:
    """Tags as a list of plain strings: comma-joined values split, markup and entities decoded, repeats (in any
    letter case) dropped, order kept."""
    tags: list[str] = []
    seen: set[str] = set()
    for value in values:
        for part in (value or "").split(","):
            tag = html_to_text(part, one_line=True)
            if tag and tag.casefold() not in seen:
                seen.add(tag.casefold())
                tags.append(tag)
    return tags
