"""Only http(s) and site-relative links are stored, and every renderer checks the scheme again (issue 15, case 2).

A ``javascript:`` URL is refused at every edge (library, CLI, PUT, an RSS ``<link>``) with a one-line reason; a
catalog written before links were checked (simulated by writing the row directly) never gets its link written by
the HTML fragment, the JSON API or the static export. The widget's own check runs in Chromium
(``tests/test_widget_browser.py``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender import Recommender, add_articles
from recommender.articles import is_safe_link, link_problem
from recommender.cli.app import app
from recommender.serving.export import export_static
from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from tests.conftest import write_jsonl
from tests.fakes import FakeEmbedder

KEY = "link-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HOSTILE = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "https://",
    "story.html",
]
SAFE = ["https://news.example/a1", "http://news.example/a?b=c#d", "/news/2024/flood", "HTTPS://NEWS.EXAMPLE/X"]


@pytest.mark.parametrize("url", HOSTILE)
def test_unsafe_links_have_a_one_line_reason(url: str) -> None:
    problem = link_problem(url)
    assert problem and "\n" not in problem
    assert not is_safe_link(url)


@pytest.mark.parametrize("url", SAFE)
def test_http_and_site_relative_links_are_kept(url: str) -> None:
    assert link_problem(url) is None and is_safe_link(url)


def story(url: str, article_id: str = "evil") -> dict[str, str]:
    return {"id": article_id, "title": "Flood river city residents evacuated", "body": "flood rain", "url": url}


def test_library_rejects_the_record_and_keeps_the_batch(fake_index: Path) -> None:
    report = add_articles(fake_index, articles=[story("javascript:alert(1)"), story("https://news.example/ok", "fine")])
    assert report.added == 1 and len(report.rejected) == 1
    assert "scheme 'javascript'" in str(report.rejected[0])
    with Recommender.open(fake_index) as rec:
        assert rec.store.catalog.get("evil") is None and rec.store.catalog.get("fine") is not None


def test_cli_names_the_line(fake_index: Path, tmp_path: Path, fake: FakeEmbedder) -> None:
    source = write_jsonl(tmp_path / "links.jsonl", [story("javascript:alert(1)"), story("/local/path", "fine")])
    result = CliRunner().invoke(app, ["add", str(source), "--index", str(fake_index)])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert f"rejected: {source}:1 (id 'evil'): url 'javascript:alert(1)' has the scheme 'javascript'" in result.stderr
    assert result.stdout.startswith("1 added")


def test_rss_link_is_refused(fake_index: Path, tmp_path: Path) -> None:
    feed = tmp_path / "feed.rss"
    feed.write_text(
        """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>rss-evil</guid><title>Flood river city</title><link>javascript:alert(document.cookie)</link>
<description>flood rain river city residents</description></item>
<item><guid>rss-fine</guid><title>Flood river city again</title><link>https://news.example/rss-fine</link>
<description>flood rain river city residents</description></item></channel></rss>""",
        encoding="utf-8",
    )
    report = add_articles(fake_index, [feed])
    assert report.added == 1 and len(report.rejected) == 1 and "javascript" in str(report.rejected[0])


def client_for(index_dir: Path, fake: FakeEmbedder) -> TestClient:
    service = Service(index_dir, embedder=fake, check_interval=0.02, autosave_seconds=0)
    return TestClient(create_app(service, Settings(api_key=KEY)))


def test_put_refuses_a_javascript_url(fake_index: Path, fake: FakeEmbedder) -> None:
    with client_for(fake_index, fake) as client:
        r = client.put("/v1/articles/evil", json=story("javascript:alert(document.cookie)"), headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["type"] == "InvalidArticle" and "javascript" in r.json()["error"]["message"]
        assert client.get("/v1/articles/evil/related").status_code == 404


def plant_legacy_link(index_dir: Path, article_id: str, url: str) -> None:
    """A catalog written before links were checked: the row holds a hostile URL."""
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    with conn:
        data = json.loads(conn.execute("SELECT data FROM articles WHERE id = ?", (article_id,)).fetchone()[0])
        data["url"] = url
        conn.execute("UPDATE articles SET url = ?, data = ? WHERE id = ?", (url, json.dumps(data), article_id))
    conn.close()


def test_renderers_check_the_scheme_again(fake_index: Path, fake: FakeEmbedder, tmp_path: Path) -> None:
    plant_legacy_link(fake_index, "a2", "javascript:alert(document.cookie)")
    with client_for(fake_index, fake) as client:
        fragment = client.get("/v1/articles/a1/related.html?k=5").text
        assert "javascript:" not in fragment and 'href="https://news.example/a3"' in fragment
        related = client.get("/v1/articles/a1/related?k=5").json()["related"]
        legacy = next(item for item in related if item["id"] == "a2")
        assert legacy["url"] is None  # the story is still listed, its link is not written
    out = tmp_path / "out"
    with Recommender.open(fake_index) as rec:
        export_static(rec, out, k=5)
    assert "javascript:" not in "".join(p.read_text("utf-8") for p in out.glob("*.json"))
