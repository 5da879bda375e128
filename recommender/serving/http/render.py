"""HTML the server writes itself: the "Also Read" fragment and a demo page that embeds the widget."""

from __future__ import annotations

import html
from typing import Any

from recommender.recommender import RelatedList


def render_fragment(related: RelatedList, heading: str = "Also read") -> str:
    """An accessible list (nav + heading + links), or the empty string: never an empty or broken box."""
    items = [s for s in related.items if s.url]
    if not items:
        return ""
    links = "".join(
        f'<li class="also-read__item{" also-read__item--pinned" if s.pinned else ""}">'
        f'<a class="also-read__link" href="{html.escape(s.url or "", quote=True)}"'
        f"{f' title={chr(34)}{html.escape(s.reason, quote=True)}{chr(34)}' if s.reason else ''}>"
        f"{html.escape(s.title or s.id)}</a></li>"
        for s in items
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
