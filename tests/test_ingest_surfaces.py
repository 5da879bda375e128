"""The surfaces the ingest issue touches: the static export ships its widget, and the HTML fragment links the
way the widget does (``url_template``), through the library, the CLI and the HTTP app."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender.cli.app import app
from recommender.recommender import Recommender
from recommender.serving.export import export_static
from recommender.serving.http.app import create_app
from recommender.serving.http.render import link_for
from recommender.serving.service import Service
from recommender.settings import Settings
from tests.fakes import FakeEmbedder

WIDGET = resources.files("recommender").joinpath("static/widget.js").read_text("utf-8")


def test_export_writes_the_widget_beside_the_json(fake_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "cdn"
    with Recommender.open(fake_index) as rec:
        export_static(rec, out, k=2)
    assert (out / "widget.js").read_text("utf-8") == WIDGET and (out / "a1.json").exists()
    result = CliRunner().invoke(app, ["export", "--index", str(fake_index), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0 and (tmp_path / "cli" / "widget.js").exists()


def test_link_for_encodes_the_id_like_the_widget() -> None:
    assert link_for("a b/ü", "https://x.example/a", "/stories/{id}") == "/stories/a%20b%2F%C3%BC"
    assert link_for("a1", "https://x.example/a1", None) == "https://x.example/a1"


def test_html_fragment_takes_the_widgets_url_template(fake_index: Path, fake: FakeEmbedder) -> None:
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    with TestClient(create_app(service, Settings())) as client:
        plain = client.get("/v1/articles/a1/related.html", params={"k": 2})
        assert 'href="https://news.example/a2"' in plain.text
        templated = client.get("/v1/articles/a1/related.html", params={"k": 2, "url_template": "/stories/{id}"})
        assert templated.status_code == 200 and 'href="/stories/a2"' in templated.text
        assert "news.example" not in templated.text
        for bad in ("javascript:alert(1)//{id}", "/stories/no-placeholder", 'https://x/{id}" onclick="x'):
            r = client.get("/v1/articles/a1/related.html", params={"url_template": bad})
            assert r.status_code == 422, bad


def test_put_from_a_cms_hook_takes_the_same_ingest_step(fake_index: Path, fake: FakeEmbedder) -> None:
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    with TestClient(create_app(service, Settings(api_key="k"))) as client:
        body = {
            "title": "Flood &#8211; <em>river</em> city",
            "body": "<!-- wp:paragraph --><p>Rain &amp; wind flooded the river city.</p><!-- /wp:paragraph -->",
            "url": "https://news.example/flood-put?utm_source=hook",
            "published_at": "2026-06-12T18:11:51+03:00",
            "language": "en-GB",
        }
        r = client.put("/v1/articles/put-1", json=body, headers={"Authorization": "Bearer k"})
        assert r.status_code == 200, r.text
    with Recommender.open(fake_index) as rec:
        article = rec.store.catalog.get("put-1").article
    assert (article.title, article.body) == ("Flood \u2013 river city", "Rain & wind flooded the river city.")
    assert article.url == "https://news.example/flood-put" and article.language == "en"
    assert article.published_at == "2026-06-12T15:11:51+00:00"


def test_python_api_dicts_take_the_same_ingest_step(fake_index: Path, fake: FakeEmbedder) -> None:
    from recommender import add_articles

    add_articles(fake_index, articles=[{"id": "api-1", "title": "Q&amp;A: <b>floods</b>", "tags": "a, A, b"}])
    with Recommender.open(fake_index) as rec:
        article = rec.store.catalog.get("api-1").article
    assert article.title == "Q&A: floods" and article.tags == ("a", "b")


def test_reader_options_are_refused_on_ray_rather_than_ignored(tmp_path: Path, articles_file: Path) -> None:
    import pytest

    from recommender import build_index
    from recommender.errors import SourceError
    from recommender.ingest import IngestOptions, parse_timezone

    options = IngestOptions(timezone=parse_timezone("Europe/Berlin"))
    with pytest.raises(SourceError, match="not applied on Ray"):
        build_index([articles_file], tmp_path / "index", ray_address="local", ingest=options)
    assert not (tmp_path / "index").exists()
