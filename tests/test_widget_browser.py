"""The widget in a real browser: Debian's chromium, headless, driven by Playwright.

A news page on one localhost port embeds the widget from the API on another (so CORS is exercised too). The
``browser`` fixture (chromium, skipped with the reason when it cannot be had) is in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeEmbedder
from tests.servers import ApiServer, StaticSite

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Flood hits river city</title>
<style>.also-read__link {{ color: rgb(200, 0, 0); }}</style></head>
<body><article><h1>Flood hits river city</h1><p>Heavy rain flooded the river city.</p></article>
<div id="slot" data-also-read data-article-id="{article_id}" data-k="3" data-api="{api}" style="min-height:16em"></div>
<p id="after">Comments</p>
<script src="{api}/widget.js" async></script></body></html>"""


def test_widget_shows_links_without_moving_the_page(
    browser, fake_index: Path, fake: FakeEmbedder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    with StaticSite(site_dir) as site:
        with ApiServer(fake_index, "--cors-origin", site.url) as api:
            (site_dir / "story.html").write_text(PAGE.format(article_id="a1", api=api.url), encoding="utf-8")
            page = browser.new_page()
            page.goto(f"{site.url}/story.html")
            before = page.eval_on_selector("#after", "e => e.getBoundingClientRect().top")
            page.wait_for_selector("#slot[data-also-read-state=ready]", timeout=15_000)
            links = page.eval_on_selector_all(".also-read__link", "els => els.map(a => [a.textContent, a.href])")
            assert [href for _, href in links][:2] and all(
                href.startswith("https://news.example/") for _, href in links
            )
            assert "River city flood: evacuation continues" in [text for text, _ in links]
            assert "https://news.example/a1" not in [href for _, href in links]  # never the story itself
            assert page.get_attribute("#slot nav", "aria-label") == "Also read"
            assert page.inner_text("#slot h2") == "Also read"
            after = page.eval_on_selector("#after", "e => e.getBoundingClientRect().top")
            assert after == before  # the reserved space held the list: nothing jumped
            colour = page.eval_on_selector(".also-read__link", "e => getComputedStyle(e).color")
            assert colour == "rgb(200, 0, 0)"  # the site's CSS wins over the widget's defaults
            page.close()


def _assert_hidden(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.wait_for_selector("#slot[data-also-read-state=empty]", state="attached", timeout=15_000)
    assert page.is_hidden("#slot")
    text = page.inner_text("body")
    assert "Also read" not in text and "rror" not in text


def test_widget_shows_nothing_when_the_service_is_down_or_has_nothing(
    browser, fake_index: Path, fake: FakeEmbedder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    page = browser.new_page()
    with StaticSite(site_dir) as site:
        with ApiServer(fake_index, "--cors-origin", site.url) as api:
            (site_dir / "missing.html").write_text(
                PAGE.format(article_id="no-such-story", api=api.url), encoding="utf-8"
            )
            _assert_hidden(page, f"{site.url}/missing.html")  # 404 from the API: nothing shown
            (site_dir / "widget.js").write_text(httpx.get(f"{api.url}/widget.js").text, encoding="utf-8")
            dead = api.url
        # the API is gone now: the site still serves the script, the widget's fetch fails
        down = PAGE.format(article_id="a1", api=dead).replace(f'src="{dead}/widget.js"', 'src="/widget.js"')
        (site_dir / "down.html").write_text(down, encoding="utf-8")
        _assert_hidden(page, f"{site.url}/down.html")
    page.close()


def test_widget_reads_a_static_export(browser, fake_index: Path, fake: FakeEmbedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """No server at all: the widget finds each story's file by the same name encoding as the export."""
    from recommender import Recommender, add_articles
    from recommender.serving.export import export_static

    odd_ids = ["news/2024/flood river?x=1", "é" * 200]  # base64-named and hash-named files
    add_articles(
        fake_index,
        articles=[
            {"id": i, "title": "Flood river city residents evacuated rain homes", "body": "flood rain river city"}
            for i in odd_ids
        ],
    )
    site_dir = tmp_path / "site"
    with Recommender.open(fake_index) as rec:
        export_static(rec, site_dir / "also-read", k=5)
    script = (Path(__file__).resolve().parent.parent / "recommender" / "static" / "widget.js").read_text("utf-8")
    (site_dir / "widget.js").write_text(script, encoding="utf-8")
    page = browser.new_page()
    with StaticSite(site_dir) as site:
        for n, article_id in enumerate(["a1", *odd_ids]):
            html = PAGE.format(article_id=article_id.replace('"', "&quot;"), api="").replace(
                'data-api=""', 'data-static-base="/also-read/"'
            )
            (site_dir / f"p{n}.html").write_text(html, encoding="utf-8")
            page.goto(f"{site.url}/p{n}.html")
            page.wait_for_selector("#slot[data-also-read-state=ready]", timeout=15_000)
            hrefs = page.eval_on_selector_all(".also-read__link", "els => els.map(a => a.href)")
            assert hrefs and "https://news.example/a2" in hrefs, article_id
    page.close()


def test_widget_never_writes_a_javascript_link(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 15 case 2: the widget set ``a.href = item.url``, so a ``javascript:`` URL in an answer ran script on
    the publisher's page when clicked. Whatever a (compromised, or older) export or API sends, only http(s)
    links are written; the rest of the list still shows. An article id ``index`` reads its own file, never the
    export's index.json."""
    site_dir = tmp_path / "site"
    (site_dir / "also-read").mkdir(parents=True)
    script = (Path(__file__).resolve().parent.parent / "recommender" / "static" / "widget.js").read_text("utf-8")
    (site_dir / "widget.js").write_text(script, encoding="utf-8")
    hostile = {
        "related": [
            {"id": "x1", "title": "Evil one", "url": "javascript:window.__pwned=1"},
            {"id": "x2", "title": "Evil two", "url": "java\tscript:window.__pwned=2"},
            {"id": "x3", "title": "Evil three", "url": "data:text/html,<script>parent.__pwned=3</script>"},
            {"id": "ok", "title": "Fine story", "url": "https://news.example/ok"},
        ]
    }
    (site_dir / "also-read" / "~aW5kZXg.json").write_text(json.dumps(hostile), encoding="utf-8")
    (site_dir / "also-read" / "index.json").write_text('{"files": {}}', encoding="utf-8")
    html = PAGE.format(article_id="index", api="").replace('data-api=""', 'data-static-base="/also-read/"')
    (site_dir / "p.html").write_text(html, encoding="utf-8")
    page = browser.new_page()
    with StaticSite(site_dir) as site:
        page.goto(f"{site.url}/p.html")
        page.wait_for_selector("#slot[data-also-read-state=ready]", timeout=15_000)
        links = page.eval_on_selector_all(".also-read__link", "els => els.map(a => [a.textContent, a.href])")
        assert links == [["Fine story", "https://news.example/ok"]]
        assert page.evaluate("window.__pwned === undefined")
    page.close()
