"""The newsroom controls and the feedback loop in a real browser (Debian's chromium via Playwright): the widget's
impression and click reach `recommender report`; pins and blocks show at once in the widget, from the API and from
a static export; "why this?" tooltips and time labels; the HTML report opens without errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from recommender.cli.app import app
from tests.fakes import FakeEmbedder
from tests.servers import ApiServer, StaticSite

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`


KEY = "newsroom-key"

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Flood hits river city</title></head>
<body><article><h1>Flood hits river city</h1><p>Heavy rain flooded the river city.</p>
<div id="spacer" style="height:2400px">(the rest of the story)</div></article>
<div id="slot" data-also-read data-article-id="{article_id}" data-k="3" data-api="{api}" {extra}
 data-url-template="/story.html?id={{id}}" style="min-height:16em"></div>
<script src="{api}/widget.js" async></script></body></html>"""


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def report(index_dir: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["report", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_impression_and_a_click_reach_the_report(
    browser,
    fake_index: Path,
    fake: FakeEmbedder,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "story.html").write_text("<!doctype html><title>next story</title><p>next</p>", encoding="utf-8")
    with StaticSite(site_dir) as site, ApiServer(fake_index, "--cors-origin", site.url) as api:
        html = PAGE.format(article_id="a1", api=api.url, extra='data-reader="reader-42"')
        (site_dir / "a1.html").write_text(html, encoding="utf-8")
        page = browser.new_page()
        page.goto(f"{site.url}/a1.html")
        page.wait_for_selector("#slot[data-also-read-state=ready]", state="attached", timeout=15_000)
        shown = page.eval_on_selector_all(".also-read__link", "els => els.map(a => a.getAttribute('data-id'))")
        assert shown[:2] == ["a2", "a3"]
        time.sleep(1.5)  # the box is below the fold: not seen, so nothing is reported
        assert report(fake_index)["impressions"] == 0
        page.eval_on_selector("#slot", "e => e.scrollIntoView()")
        seen = eventually(lambda: report(fake_index)["impressions"] == 1)
        assert seen, "the impression never arrived"
        with page.expect_navigation():
            page.click(".also-read__item:nth-child(2) .also-read__link")  # position 2: a3
        assert page.url.endswith("/story.html?id=a3")
        data = eventually(lambda: (r := report(fake_index))["clicks"] == 1 and r)
        assert data, "the click never arrived"
        assert data["impressions"] == 1 and data["orphan_clicks"] == 0
        assert data["by_position"]["2"]["clicked"] == 1 and data["by_position"]["2"]["clicks"] == 1
        first = data["by_position"]["1"]
        assert first == {"views": 1, "clicked": 0, "ctr": 0.0, "clicks": 0, **_ci(first)}
        assert list(data["by_variant"]) == ["default"] and data["by_variant"]["default"]["clicked"] == 1
        assert data["by_section"]["local"]["clicked"] == 1
        stored = [json.loads(line) for f in sorted((fake_index / "events").iterdir()) for line in f.open()]
        impression = next(e for e in stored if e["type"] == "impression")
        assert impression["items"] == shown and impression["variant"] == "default"
        assert impression["version"] and set(impression) == {
            "ts",
            "type",
            "story",
            "version",
            "variant",
            "view",
            "items",
        }
        page.close()


def _ci(rate: dict[str, Any]) -> dict[str, Any]:
    return {"ci_low": rate["ci_low"], "ci_high": rate["ci_high"]}


def test_pins_and_blocks_show_at_once_in_the_widget_and_the_export(
    browser,
    fake_index: Path,
    fake: FakeEmbedder,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    auth = {"Authorization": f"Bearer {KEY}"}
    with StaticSite(site_dir) as site, ApiServer(fake_index, "--cors-origin", site.url, "--api-key", KEY) as api:
        html = PAGE.format(article_id="a1", api=api.url, extra='data-explain="1" data-relation="1"')
        (site_dir / "a1.html").write_text(html.replace("height:2400px", "height:10px"), encoding="utf-8")
        page = browser.new_page()

        def widget() -> list[dict[str, Any]]:
            page.goto(f"{site.url}/a1.html")
            page.wait_for_selector("#slot[data-also-read-state=ready]", timeout=15_000)
            return page.eval_on_selector_all(
                ".also-read__item",
                """els => els.map(li => ({id: li.querySelector('a').getAttribute('data-id'),
                    pinned: li.getAttribute('data-pinned') === 'true',
                    badge: (li.querySelector('.also-read__badge') || {}).textContent || null,
                    relation: (li.querySelector('.also-read__relation') || {}).textContent || null,
                    why: li.querySelector('a').title}))""",
            )

        before = widget()
        assert [i["id"] for i in before][:2] == ["a2", "a3"] and not any(i["pinned"] for i in before)
        assert before[0]["relation"] == "Follow-up" and before[0]["why"].startswith("Same event, 1 day later")
        pin = {"kind": "pin", "story": "a1", "target": "c1", "position": 1}
        assert httpx.post(f"{api.url}/v1/rules", json=pin, headers=auth).status_code == 201
        block = httpx.post(f"{api.url}/v1/rules", json={"kind": "block", "target": "a2"}, headers=auth)
        assert block.status_code == 201
        exclude = {"kind": "exclude", "section": "local", "under": "a1"}  # a3 is local: not under a1 any more
        excluded = httpx.post(f"{api.url}/v1/rules", json=exclude, headers=auth)
        assert excluded.status_code == 201
        after = widget()
        assert after[0] | {"why": ""} == {
            "id": "c1",
            "pinned": True,
            "badge": "Editor's pick",
            "relation": "Background",
            "why": "",
        }
        assert after[0]["why"].startswith("Picked by an editor") and not {"a2", "a3"} & {i["id"] for i in after}
        api_ids = [i["id"] for i in httpx.get(f"{api.url}/v1/articles/a1/related?k=3").json()["related"]]
        assert api_ids == [i["id"] for i in after]

        export = CliRunner().invoke(app, ["export", "--index", str(fake_index), "--out", str(site_dir / "also-read")])
        assert export.exit_code == 0, export.output
        script = httpx.get(f"{api.url}/widget.js").text
        (site_dir / "widget.js").write_text(script, encoding="utf-8")
        static = PAGE.format(article_id="a1", api="", extra="").replace('data-api=""', 'data-static-base="/also-read/"')
        (site_dir / "static.html").write_text(static.replace('src="/widget.js"', 'src="/widget.js"'), encoding="utf-8")
        page.goto(f"{site.url}/static.html")
        page.wait_for_selector("#slot[data-also-read-state=ready]", timeout=15_000)
        from_export = page.eval_on_selector_all(".also-read__link", "els => els.map(a => a.getAttribute('data-id'))")
        assert from_export == api_ids and page.get_attribute(".also-read__item", "data-pinned") == "true"

        for rule in (block, excluded):
            assert httpx.delete(f"{api.url}/v1/rules/{rule.json()['rule']['id']}", headers=auth).status_code == 200
        assert {"a2", "a3"} <= {i["id"] for i in widget()}  # back at once
        page.close()


def test_the_html_report_opens_without_errors(
    browser,
    fake_index: Path,
    fake: FakeEmbedder,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    from recommender.events.log import EventLog

    store = EventLog(fake_index / "events")
    events = []
    for n in range(40):
        view = f"v{n}"
        variant = "a" if n % 2 else "b"
        events.append(
            {
                "ts": "2026-11-30T10:00:00Z",
                "type": "impression",
                "story": "a1",
                "view": view,
                "variant": variant,
                "items": ["a2", "a3", "b1"],
            }
        )
        if n % 3 == 0:
            events.append(
                {
                    "ts": "2026-11-30T10:00:05Z",
                    "type": "click",
                    "story": "a1",
                    "view": view,
                    "variant": variant,
                    "target": "a3",
                    "position": 1 + n % 2,
                }
            )
    store.append(events)
    store.close()
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--index", str(fake_index), "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: problems.append(request.url) if not request.url.startswith("file:") else None)
    page.goto(out.as_uri())
    assert page.title() == "Also Read: clicks and exposure"
    assert page.locator("svg").count() == 2 and page.locator("svg rect").count() >= 3
    assert "CTR by position" in page.inner_text("body") or "Which positions earn clicks" in page.inner_text("body")
    assert "of the archive's 8 stories were shown at least once" in page.inner_text("body")
    assert problems == []  # no console error, no script error, nothing fetched from anywhere
    page.close()
