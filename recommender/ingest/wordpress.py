"""WordPress as it exports itself: the WXR file (Tools -> Export) and REST API pages (``/wp-json/wp/v2/posts``).

Only published stories are read (``publish``; pages, attachments, revisions and menu items are not stories).
The id is WordPress's post id in both forms (and in a ``wp_posts`` CSV), so moving from one export to another
updates articles instead of duplicating them. Categories become the section, tags the tags, ``link`` the URL,
``date_gmt`` (UTC) the publication time (``post_date`` in ``--timezone`` when the GMT date is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from recommender.errors import InvalidArticle
from recommender.ingest.fields import NON_STORY_TYPES, UNPUBLISHED
from recommender.ingest.records import IngestOptions, Loaded, to_record

log = logging.getLogger(__name__)

WP_NS = ("http://wordpress.org/export/1.2/", "http://wordpress.org/export/1.1/", "http://wordpress.org/export/1.0/")
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
DC_NS = "http://purl.org/dc/elements/1.1/"


# -- REST API -------------------------------------------------------------------------------------------------


def is_rest_post(raw: dict[str, Any]) -> bool:
    """Whether a JSON object is a post as WordPress's REST API returns it (``title: {"rendered": ...}``)."""
    title = raw.get("title")
    return isinstance(title, dict) and "rendered" in title and ("content" in raw or "excerpt" in raw)


def rest_post_record(raw: dict[str, Any], location: str, options: IngestOptions | None = None) -> Loaded | None:
    """One REST API post as a record; None for one that is not published. Category and tag names come from
    ``_embedded`` (request with ``?_embed``), else from the ``class_list`` slugs WordPress adds; the language
    and site name from Yoast's ``yoast_head_json`` when the site has it."""
    status = str(raw.get("status") or "publish").lower()
    if status in UNPUBLISHED or str(raw.get("type") or "post").lower() in NON_STORY_TYPES:
        return None
    sections, tags = _rest_terms(raw)
    yoast: dict[str, Any] = raw["yoast_head_json"] if isinstance(raw.get("yoast_head_json"), dict) else {}
    article: dict[str, Any] = {
        "id": raw.get("id"),
        "title": _rendered(raw.get("title")),
        "body": _rendered(raw.get("content")) or _rendered(raw.get("excerpt")),
        "url": raw.get("link"),
        "section": sections[0] if sections else None,
        "tags": tags or None,
        "language": yoast.get("og_locale") or raw.get("lang") or raw.get("language"),
    }
    date, source = _first_date(raw, ("date_gmt", "date"))
    if date:
        article["published_at"], article["published_at_source"] = date, f"wordpress {source}"
        if source == "date_gmt" and not date.endswith(("Z", "z")) and "+" not in date[10:]:
            article["published_at"] = date + "+00:00"
    if raw.get("modified_gmt"):
        article["updated_at"] = raw["modified_gmt"] + "+00:00"
    author = _rest_author(raw)
    if author:
        article["author"] = author
    if isinstance(raw.get("id"), int):
        article["wordpress_id"] = raw["id"]
    return to_record(article, location, options, site_name=yoast.get("og_site_name"))


def _rendered(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("rendered")
    return value if isinstance(value, str) else ""


def _first_date(raw: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str]:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str) and value.strip() and not value.startswith("0000"):
            return value.strip(), key
    return None, ""


def _rest_terms(raw: dict[str, Any]) -> tuple[list[str], list[str]]:
    sections: list[str] = []
    tags: list[str] = []
    embedded: dict[str, Any] = raw["_embedded"] if isinstance(raw.get("_embedded"), dict) else {}
    for group in embedded.get("wp:term") or []:
        for term in group if isinstance(group, list) else []:
            if not isinstance(term, dict) or not isinstance(term.get("name"), str):
                continue
            if term.get("taxonomy") == "category":
                sections.append(term["name"])
            elif term.get("taxonomy") == "post_tag":
                tags.append(term["name"])
    if not sections and not tags:
        for css_class in raw.get("class_list") or []:
            if isinstance(css_class, str) and css_class.startswith("category-"):
                sections.append(css_class.removeprefix("category-").replace("-", " "))
            elif isinstance(css_class, str) and css_class.startswith("tag-"):
                tags.append(css_class.removeprefix("tag-").replace("-", " "))
    return sections, tags


def _rest_author(raw: dict[str, Any]) -> str | None:
    embedded: dict[str, Any] = raw["_embedded"] if isinstance(raw.get("_embedded"), dict) else {}
    for author in embedded.get("author") or []:
        if isinstance(author, dict) and isinstance(author.get("name"), str):
            return str(author["name"])
    return None


# -- WXR export -----------------------------------------------------------------------------------------------


def is_wxr(head: bytes) -> bool:
    """Whether the start of an XML file is a WordPress export (its ``wp:`` namespace)."""
    return b"wordpress.org/export/" in head


def read_wxr(
    source: Path | IO[bytes], name: str | None = None, options: IngestOptions | None = None
) -> Iterator[Loaded]:
    """The published posts of a WXR file, streamed (an export of a large site does not fit in memory as a
    tree). ``name`` is how locations name the file."""
    from lxml import etree

    where = name or str(source)
    channel: dict[str, str] = {}
    number = 0
    skipped = 0
    parser_source = str(source) if isinstance(source, Path) else source
    try:
        for _event, element in etree.iterparse(
            parser_source, events=("end",), recover=True, resolve_entities=False, no_network=True, huge_tree=True
        ):
            tag = etree.QName(element).localname if isinstance(element.tag, str) else ""
            parent = element.getparent()
            if parent is not None and etree.QName(parent).localname == "channel" and tag != "item":
                if tag in ("title", "link", "language", "base_site_url", "base_blog_url") and element.text:
                    channel.setdefault(tag, element.text.strip())
                continue
            if tag != "item":
                continue
            number += 1
            item = _wxr_item(element, f"{where} item {number}", channel, options)
            element.clear(keep_tail=True)
            if item is None:
                skipped += 1
                continue
            yield item
    except etree.XMLSyntaxError as exc:
        yield InvalidArticle(where, f"not a readable WordPress export ({exc}); rest of file skipped")
    if skipped:
        log.info("%s: %d items that are not published posts left out (drafts, pages, attachments)", where, skipped)


def _wxr_item(element: Any, location: str, channel: dict[str, str], options: IngestOptions | None) -> Loaded | None:
    fields: dict[str, str] = {}
    sections: list[str] = []
    tags: list[str] = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = child.tag
        local = qname.rsplit("}", 1)[-1]
        namespace = qname[1:].split("}", 1)[0] if qname.startswith("{") else ""
        text = (child.text or "").strip()
        if local == "category":
            if child.get("domain") == "category" and text:
                sections.append(text)
            elif child.get("domain") == "post_tag" and text:
                tags.append(text)
            continue
        key = local if namespace in WP_NS or not namespace else f"{namespace}:{local}"
        if namespace == CONTENT_NS:
            key = f"content:{local}"
        elif namespace == DC_NS:
            key = f"dc:{local}"
        fields.setdefault(key, text)
    if fields.get("status", "publish").lower() != "publish":
        return None
    if fields.get("post_type", "post").lower() in NON_STORY_TYPES:
        return None
    base = channel.get("link") or channel.get("base_blog_url") or channel.get("base_site_url")
    raw: dict[str, Any] = {
        "id": fields.get("post_id") or fields.get("guid") or fields.get("link"),
        "title": fields.get("title", ""),
        "body": fields.get("content:encoded", "") or fields.get("excerpt:encoded", ""),
        "url": fields.get("link") or None,
        "section": sections[0] if sections else None,
        "tags": tags or None,
        "language": channel.get("language"),
    }
    if fields.get("post_date_gmt") and not fields["post_date_gmt"].startswith("0000"):
        raw["published_at"] = fields["post_date_gmt"].replace(" ", "T") + "+00:00"  # GMT, though written naive
        raw["published_at_source"] = "wordpress post_date_gmt"
    elif fields.get("pubDate"):
        raw["published_at"], raw["published_at_source"] = fields["pubDate"], "wordpress pubDate"
    elif fields.get("post_date") and not fields["post_date"].startswith("0000"):
        raw["published_at"], raw["published_at_source"] = fields["post_date"], "wordpress post_date"
    if fields.get("dc:creator"):
        raw["author"] = fields["dc:creator"]
    if fields.get("post_id", "").isdigit():
        raw["wordpress_id"] = int(fields["post_id"])
    return to_record(raw, location, options, base_url=base)
