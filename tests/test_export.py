"""Static export: one file per article in the API's shape, an index file, safe names, nothing outside --out."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender import Recommender, add_articles, delete_articles
from recommender.cli.app import app
from recommender.serving.export import export_static, file_stem
from tests.conftest import ARTICLES
from tests.fakes import FakeEmbedder


@pytest.mark.parametrize(
    ("article_id", "expected"),
    [
        ("a1", "a1"),
        ("story-2024.v2_final", "story-2024.v2_final"),
        ("../etc/passwd", "~Li4vZXRjL3Bhc3N3ZA"),
        ("..", "~Li4"),
        (".hidden", "~LmhpZGRlbg"),
        ("https://news.example/a/1", "~aHR0cHM6Ly9uZXdzLmV4YW1wbGUvYS8x"),
        ("café", "~Y2Fmw6k"),
        ("a" * 150, "a" * 150),
        ("-" + "a" * 149, "~" + base64.urlsafe_b64encode(b"-" + b"a" * 149).decode()),  # 200 characters
        ("é" * 200, "~h" + __import__("hashlib").sha256(("é" * 200).encode()).hexdigest()),
    ],
)
def test_file_stem_is_safe(article_id: str, expected: str) -> None:
    stem = file_stem(article_id)
    assert stem == expected and len(stem) <= 201
    assert "/" not in stem and "\\" not in stem and not stem.startswith(".") and ".." not in stem


def test_export_writes_the_api_shape(fake_index: Path, tmp_path: Path) -> None:
    add_articles(fake_index, articles=[{"id": "../../escape", "title": "Flood river city residents", "body": "rain"}])
    out = tmp_path / "out"
    with Recommender.open(fake_index) as rec:
        report = export_static(rec, out, k=3)
        version = rec.index_version
    assert report.written == len(ARTICLES) + 1 and not report.skipped
    assert not (tmp_path / "escape.json").exists() and all(p.parent == out for p in out.rglob("*"))
    index = json.loads((out / "index.json").read_text())
    assert index["articles"] == len(ARTICLES) + 1 and index["index_version"] == version
    data = json.loads((out / index["files"]["a1"]).read_text())
    assert data["article_id"] == "a1" and len(data["related"]) == 3 and data["index_version"] == version
    shape = {"id", "title", "url", "score", "relevance", "published_at", "section", "relation"}  # a1 is dated
    assert set(data["related"][0]) == shape
    assert (out / f"{file_stem('../../escape')}.json").exists()


def test_reexport_removes_only_its_own_stale_files(fake_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.json").write_text("{}")
    with Recommender.open(fake_index) as rec:
        export_static(rec, out)
    delete_articles(fake_index, ["c2"])
    with Recommender.open(fake_index) as rec:
        report = export_static(rec, out)
    assert report.removed == 1 and not (out / "c2.json").exists() and (out / "unrelated.json").exists()


def test_export_cli(fake_index: Path, tmp_path: Path, fake: FakeEmbedder) -> None:
    result = CliRunner().invoke(app, ["export", "--index", str(fake_index), "--out", str(tmp_path / "cdn"), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{len(ARTICLES)} files written")
    assert len(json.loads((tmp_path / "cdn" / "a1.json").read_text())["related"]) == 2


def test_serve_cli_without_index_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no index in" in result.stderr and "Traceback" not in result.output


def test_an_article_called_index_cannot_overwrite_the_index_file(fake_index: Path, tmp_path: Path) -> None:
    """Issue 15 case 6: id ``index`` wrote index.json, and the next export, reading its list of files from it,
    left deleted stories' files published."""
    assert file_stem("index") == "~aW5kZXg" and file_stem("INDEX") != "INDEX"
    add_articles(fake_index, articles=[{"id": "index", "title": "Flood river city residents evacuated", "body": "x"}])
    out = tmp_path / "out"
    with Recommender.open(fake_index) as rec:
        export_static(rec, out)
    index = json.loads((out / "index.json").read_text())
    assert index["files"]["index"] == "~aW5kZXg.json" and "files" in index
    assert json.loads((out / "~aW5kZXg.json").read_text())["article_id"] == "index"
    delete_articles(fake_index, ["c2"])
    with Recommender.open(fake_index) as rec:
        report = export_static(rec, out)
    assert report.removed == 1 and not (out / "c2.json").exists()
