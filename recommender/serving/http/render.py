"""HTML the server writes itself: the "Also Read" fragment and a demo page that embeds the widget."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from recommender.articles import is_safe_link
from recommender.recommender import RelatedList


def link_for(article_id: str, url: str | None, url_template: str | None) -> str | None:
    """Where a suggestion links to: ``url_template`` with ``{id}`` replaced by the percent-encoded id (the
    widget's ``data-url-template``, encoded as its ``encodeURIComponent`` does), else the story's URL."""
    if url_template:
        return url_template.replace("{id}", quote(article_id, safe="-_.!~*'()"))
    return url


def render_fragment(related: RelatedList, heading: str = "Also read", url_template: str | None = None) -> str:
    """An accessible list (nav + heading + links), or the empty string: never an empty or broken box.
    ``url_template`` (``/stories/{id}``) links every story as the widget's ``data-url-template`` does. A link
    that is not safe (``javascript:``...; see :func:`recommender.articles.is_safe_link`) is left out."""
    links_of = [(s, link_for(s.id, s.url, url_template)) for s in related.items]
    items = [(s, link) for s, link in links_of if is_safe_link(link)]
    if not items:
        return ""
    links = "".join(
        f'<li class="also-read__item{" also-read__item--pinned" if s.pinned else ""}">'
        f'<a class="also-read__link" href="{html.escape(link or "", quote=True)}"'
        f"{f' title={chr(34)}{html.escape(s.reason, quote=True)}{chr(34)}' if s.reason else ''}>"
        f"{html.escape(s.title or s.id)}</a></li>"
        for s, link in items
    )
    return (
        f'<nav class="also-read" aria-label="{html.escape(heading, quote=True)}">'
        f'<h2 class="also-read__heading">{html.escape(heading)}</h2><ul class="also-read__list">{links}</ul></nav>'
    )


def render_demo(article_id: str | None, title: str | None, text: str | None, info: dict[str, Any]) -> str:
    """A minimal article page embedding the widget exactly as a site would."""
    title = title or "recommender demo"
    text = text or "Pass ?id=ARTICLE_ID to show a story with its Also Read box."
    aid = html.escape(article_id or "", quote=True)
    widget = (
        f'<div class="also-read-slot" data-also-read data-article-id="{aid}" data-k="5" '
        f'data-url-template="/demo?id={{id}}" style="min-height:16em"></div>'
        if article_id
        else ""
    )
    articles = html.escape(str(info.get("articles", "?")))
    model = html.escape(str(info.get("model", "?")))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}</style>
</head><body><main><article><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></article>{widget}</main>
<footer><small>{articles} articles · model {model}</small></footer>
<script src="/widget.js" async></script></body></html>"""
