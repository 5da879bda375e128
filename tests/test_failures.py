"""Every failure is one clear line, a bad record loses only itself, and the exit code says what was written
(issue 15, case 4 and the damaged-FAISS item of case 6).

Disk full is simulated at the two points that matter (before and after the catalog commit) and once for real,
with a file size limit on a subprocess; a damaged catalog is 4 KB of random bytes written into the file.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender import Recommender
from recommender.cli.app import app
from recommender.errors import IndexCorrupt
from recommender.integrity import check_index
from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from recommender.storage.store import MANIFEST_NAME
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FakeEmbedder
from tests.servers import HELPER

KEY = "fail-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
runner = CliRunner()


def cli(*args: object) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def story(i: int, **extra: object) -> dict[str, object]:
    return {"id": f"s{i}", "title": f"River city flood update {i}", "body": f"flood rain residents note{i}", **extra}


def counts(index_dir: Path) -> tuple[int, int]:
    """(articles, vectors) in the catalog."""
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    try:
        return (
            conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0],
        )
    finally:
        conn.close()


# -- bad records: one line each, the batch kept -------------------------------------------------------------------
def test_surrogates_and_edge_dates_reject_only_their_records(fake_index: Path, tmp_path: Path) -> None:
    source = tmp_path / "batch.jsonl"
    lines = [
        json.dumps(story(1, title="lone \ud800 surrogate")),  # \ud800 escape, valid JSON
        json.dumps(story(2, published_at="9999-12-31T23:59:59-14:00")),
        json.dumps(story(3, published_at="0001-01-01T00:00:00+14:00")),
        json.dumps(story(4, extra={"nested": ["\udfff"]})),
        json.dumps(story(5)),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="ascii")
    result = cli("add", source, "--index", fake_index)
    assert result.exit_code == 3, result.output
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected:")]
    assert len(rejected) == 4 and len(result.stderr.strip().splitlines()) == 4
    assert "lone surrogate" in rejected[0] and "outside the years 1-9999" in rejected[1]
    assert result.stdout.startswith("1 added")
    assert counts(fake_index)[0] == len(ARTICLES) + 1


def test_put_with_a_surrogate_or_an_edge_date_is_422_and_leaves_no_vector(fake_index: Path, fake: FakeEmbedder) -> None:
    before = counts(fake_index)
    with TestClient(create_app(Service(fake_index, embedder=fake, autosave_seconds=0), Settings(api_key=KEY))) as c:
        for payload in (
            story(1, extra="\ud800"),
            story(2, title="\udc80 title"),
            story(3, published_at="9999-12-31T23:59:59-14:00"),
        ):
            body = json.dumps(payload).encode("ascii")  # the escape arrives as a lone surrogate after parsing
            r = c.put(
                f"/v1/articles/{payload['id']}", content=body, headers={**AUTH, "Content-Type": "application/json"}
            )
            assert r.status_code == 422, r.text
            assert r.json()["error"]["type"] == "InvalidArticle"
    assert counts(fake_index) == before


def test_cli_argument_that_is_not_unicode_is_one_line(fake_index: Path) -> None:
    result = cli("similar", "bad\udcffid", "--index", fake_index)
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and len(result.stderr.splitlines()) == 1


def test_rich_markup_in_titles_is_printed_as_text(fake_index: Path) -> None:
    """Regression (issue 15 case 4): a title like ``[/x]`` crashed ``similar`` and ``query`` (already fixed at the
    starting commit by printing titles as rich Text; kept so it stays fixed)."""
    from recommender import add_articles

    add_articles(fake_index, articles=[{"id": "[/x]", "title": "[/x] flood river [bold]city", "body": "rain [/]"}])
    for args in (("similar", "a1", "-k", "8"), ("similar", "[/x]"), ("query", "flood river city [/x]")):
        result = cli(*args, "--index", fake_index)
        assert result.exit_code == 0, result.output
        assert "[/x]" in result.stdout


# -- disk full ------------------------------------------------------------------------------------------------
def test_disk_full_before_the_commit_says_nothing_was_written(
    fake_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.storage.catalog import Catalog

    def full(self: Catalog, article: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Catalog, "upsert", full)
    source = write_jsonl(tmp_path / "more.jsonl", [story(i) for i in range(20)])
    result = cli("add", source, "--index", fake_index)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error:") and "no space left" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    monkeypatch.undo()
    assert counts(fake_index)[0] == len(ARTICLES) and check_index(fake_index).ok


def test_disk_full_after_the_commit_says_what_was_written(
    fake_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog committed 20 articles, then the FAISS file could not be written: the exit code (4) and the
    warning say the articles are there; the next open replays them from the change log."""
    import recommender.storage.store as store_module

    def full(index: object, path: Path) -> str:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_module, "write_index", full)
    source = write_jsonl(tmp_path / "more.jsonl", [story(i) for i in range(20)])
    result = cli("add", source, "--index", fake_index)
    assert result.exit_code == 4, result.output
    assert result.stdout.startswith("20 added")
    assert result.stderr.startswith("warning: the catalog has the 20 change(s)") and "No space left" in result.stderr
    monkeypatch.undo()
    assert counts(fake_index)[0] == len(ARTICLES) + 20
    assert check_index(fake_index).ok
    with Recommender.open(fake_index) as rec:
        assert rec.related("s3", k=3).ids
    assert cli("add", write_jsonl(tmp_path / "one.jsonl", [story(99)]), "--index", fake_index).exit_code == 0


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("extra_bytes", [20_000, 120_000, 400_000])
def test_a_real_write_limit_gives_one_line_and_a_truthful_exit_code(
    fake_index: Path, tmp_path: Path, extra_bytes: int
) -> None:
    """No mocks: the subprocess may not grow any file past the catalog's size plus ``extra_bytes`` (EFBIG is
    what a full disk looks like to SQLite and FAISS). Whatever step fails, no traceback, and exit 1 means the
    catalog is unchanged, 0 or 4 that the articles are in it."""
    source = write_jsonl(tmp_path / "more.jsonl", [story(i, body=f"flood rain {'x' * 400} {i}") for i in range(300)])
    limit = (fake_index / "catalog.sqlite").stat().st_size + extra_bytes
    proc = subprocess.run(
        [sys.executable, str(HELPER), "add", str(source), "--index", str(fake_index)],
        capture_output=True,
        text=True,
        preexec_fn=lambda: _limit_file_size(limit),
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 4), proc.stderr
    articles = counts(fake_index)[0]
    if proc.returncode == 1:
        assert articles == len(ARTICLES) and proc.stderr.strip().splitlines()[-1].startswith("Error:")
    else:
        assert articles == len(ARTICLES) + 300
    assert check_index(fake_index).ok or proc.returncode == 4


def test_put_and_delete_on_a_full_disk_are_507(
    fake_index: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.storage.catalog import Catalog

    with TestClient(create_app(Service(fake_index, embedder=fake, autosave_seconds=0), Settings(api_key=KEY))) as c:
        real_transaction = Catalog.transaction

        def full(self: Catalog, *, durable: bool = True) -> object:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(Catalog, "transaction", full)
        r = c.put("/v1/articles/s1", json=story(1), headers=AUTH)
        assert r.status_code == 507 and r.json()["error"]["type"] == "StorageFull", r.text
        r = c.delete("/v1/articles/a1", headers=AUTH)
        assert r.status_code == 507 and r.json()["error"]["type"] == "StorageFull", r.text
        monkeypatch.setattr(Catalog, "transaction", real_transaction)
        assert c.get("/v1/articles/a1/related").status_code == 200
        assert c.get("/readyz").status_code == 200  # a full disk is not damage


# -- a damaged catalog --------------------------------------------------------------------------------------------
def damage(path: Path, offset: int, seed: int = 15) -> None:
    data = random.Random(seed).randbytes(4096)
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.mark.parametrize("offset", [0, 4096, 8192])
def test_a_damaged_catalog_is_one_line_everywhere(fake_index: Path, fake: FakeEmbedder, offset: int) -> None:
    damage(fake_index / "catalog.sqlite", offset)
    result = cli("check", "--index", fake_index)
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("problem:")]
    assert problems and "damaged" in problems[0] or "SQLite integrity" in problems[0], result.output
    result = cli("similar", "a1", "--index", fake_index)
    assert result.exit_code == 1 and result.stderr.startswith("Error:")
    assert len(result.stderr.strip().splitlines()) == 1
    service = Service(fake_index, embedder=fake, autosave_seconds=0)
    with pytest.raises(IndexCorrupt):
        service.load()
    with TestClient(create_app(service, Settings(api_key=KEY))) as c:  # /readyz refuses, requests are 503
        r = c.get("/readyz")
        assert r.status_code == 503 and "damaged" in r.json()["error"]["message"]
        assert c.get("/v1/articles/a1/related").status_code == 503


def test_serve_refuses_a_damaged_catalog(fake_index: Path) -> None:
    damage(fake_index / "catalog.sqlite", 4096)
    proc = subprocess.run(
        [sys.executable, str(HELPER), "serve", "--index", str(fake_index), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error:") and "damaged" in proc.stderr


def test_damage_found_while_serving_takes_the_service_out_of_rotation(fake_index: Path, fake: FakeEmbedder) -> None:
    service = Service(fake_index, embedder=fake, autosave_seconds=0)
    with TestClient(create_app(service, Settings(api_key=KEY))) as c:
        assert c.get("/readyz").status_code == 200
        rec = service._current()
        rec.store.catalog.conn.close()  # what a read of a damaged page looks like to the app: a DatabaseError
        rec.store.catalog.conn = sqlite3.connect(":memory:", check_same_thread=False)
        rec.store.catalog.conn.execute("CREATE TABLE articles(x)")

        def malformed(*args: object) -> object:
            raise sqlite3.DatabaseError("database disk image is malformed")

        rec.store.catalog.get = malformed  # type: ignore[method-assign]
        r = c.post("/v1/related", json={"url": "https://news.example/a1"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "IndexCorrupt", r.text
        assert c.get("/readyz").status_code == 503


# -- hand-edited manifests, a damaged FAISS file, reindex ----------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value"),
    [("catalog_seq", "abc"), ("catalog_seq", 10**30), ("catalog_seq", 10**12), ("index_file", None), ("dimension", -3)],
)
def test_a_hand_edited_manifest_is_one_line_and_reindex_repairs_it(
    fake_index: Path, tmp_path: Path, key: str, value: object
) -> None:
    path = fake_index / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest[key] = value
    path.write_text(json.dumps(manifest))
    result = cli("similar", "a1", "--index", fake_index)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "recommender reindex" in result.stderr
    result = cli("check", "--index", fake_index)
    assert result.exit_code == 1 and result.stderr.startswith("problem:")
    result = cli("reindex", "--index", fake_index)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("rebuilt vectors-") and f"{len(ARTICLES)} articles" in result.stdout
    assert cli("check", "--index", fake_index).exit_code == 0
    assert cli("add", write_jsonl(tmp_path / "one.jsonl", [story(1)]), "--index", fake_index).exit_code == 0
    assert cli("similar", "s1", "--index", fake_index).exit_code == 0  # and it still opens after the next add


def test_a_damaged_faiss_file_is_rebuilt_from_the_catalog(fake_index: Path) -> None:
    manifest = json.loads((fake_index / MANIFEST_NAME).read_text())
    faiss_file = fake_index / manifest["index_file"]
    damage(faiss_file, 64)
    result = cli("similar", "a1", "--index", fake_index)
    assert result.exit_code == 1 and "checksum" in result.stderr and "recommender reindex" in result.stderr
    assert cli("reindex", "--index", fake_index).exit_code == 0
    assert check_index(fake_index).ok  # the file the manifest names now matches its checksum
    with Recommender.open(fake_index) as rec:
        assert rec.related("a1", k=3).ids
    (fake_index / json.loads((fake_index / MANIFEST_NAME).read_text())["index_file"]).unlink()
    assert cli("reindex", "--index", fake_index).exit_code == 0  # a lost file too
    assert check_index(fake_index).ok


def test_reindex_refuses_a_damaged_catalog(fake_index: Path) -> None:
    damage(fake_index / "catalog.sqlite", 4096)
    result = cli("reindex", "--index", fake_index)
    assert result.exit_code == 1 and "damaged" in result.stderr and "backup" in result.stderr
