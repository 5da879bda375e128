"""Building, updating and deleting through the library, with the fake embedder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recommender import (
    BatchRejected,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    Recommender,
    add_articles,
    build_index,
    delete_articles,
    writer,
)
from recommender.storage import store as store_mod
from recommender.storage import vector_index
from recommender.storage.store import IndexStore, Manifest, write_lock
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder


def test_build_writes_catalog_index_and_manifest(fake_index: Path) -> None:
    names = {p.name for p in fake_index.iterdir()}
    assert {"catalog.sqlite", "manifest.json"} <= names
    manifest = json.loads((fake_index / "manifest.json").read_text())
    assert manifest["model"] == FAKE_MODEL and manifest["dimension"] == 256
    assert manifest["articles"] == len(ARTICLES) and manifest["index_type"] == "flat"
    assert manifest["built_at"] and (fake_index / manifest["index_file"]).exists()
    with Recommender.open(fake_index) as rec:
        info = rec.info()
        assert info["articles"] == len(ARTICLES) and info["model"] == FAKE_MODEL


def test_rebuild_embeds_nothing_and_changes_embed_only_what_changed(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path
) -> None:
    index_dir = tmp_path / "index"
    first = build_index([articles_file], index_dir, model=FAKE_MODEL)
    # a1 and a1-wire share one text: embedded once
    assert first.added == len(ARTICLES) and first.embedded == len(ARTICLES) - 1
    fake.calls.clear()
    again = build_index([articles_file], index_dir)
    assert (again.added, again.updated, again.skipped, again.embedded) == (0, 0, len(ARTICLES), 0)
    assert fake.calls == []
    rows = [dict(r) for r in ARTICLES]
    rows[0]["body"] += " Update: the river has peaked."  # text change -> re-embed
    rows[4]["section"] = "economy"  # metadata change -> update, no embedding
    write_jsonl(articles_file, rows)
    changed = build_index([articles_file], index_dir)
    assert (changed.added, changed.updated, changed.embedded) == (0, 2, 1)
    with Recommender.open(index_dir) as rec:
        assert rec.get("b1").section == "economy"
        assert "peaked" in rec.get("a1").body


def test_add_upserts_without_rebuilding(fake_index: Path, tmp_path: Path) -> None:
    before = Manifest.load(fake_index)
    extra = write_jsonl(
        tmp_path / "new.jsonl",
        [
            {
                "id": "a4",
                "title": "River city flood: residents return home",
                "body": "Flood waters fall in the river city; residents evacuated return home after the rain.",
            },
        ],
    )
    report = add_articles(fake_index, [extra])
    assert report.added == 1
    after = Manifest.load(fake_index)
    assert after.built_at == before.built_at and after.articles == before.articles + 1
    with Recommender.open(fake_index) as rec:
        assert "a4" in rec.related("a2", k=5).ids


def test_add_from_python_objects(fake_index: Path) -> None:
    report = add_articles(
        fake_index, articles=[{"id": "z1", "title": "Interest rates rise again", "body": "central bank"}, {"id": "bad"}]
    )
    assert report.added == 1 and len(report.rejected) == 1


def test_add_needs_an_existing_index(tmp_path: Path, articles_file: Path, fake: FakeEmbedder) -> None:
    with pytest.raises(IndexNotFound):
        add_articles(tmp_path / "nothing", [articles_file])


def test_delete_leaves_every_list_at_once(fake_index: Path) -> None:
    with Recommender.open(fake_index) as rec:
        assert "a2" in rec.related("a1", k=3).ids
    report = delete_articles(fake_index, ["a2", "no-such-id"])
    assert report.deleted == 1 and report.not_found == ["no-such-id"]
    with Recommender.open(fake_index) as rec:
        assert rec.info()["articles"] == len(ARTICLES) - 1
        for article_id in ("a1", "a3", "a1-wire"):
            assert "a2" not in rec.related(article_id, k=7).ids


def test_strict_refuses_the_whole_batch(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "ok", "title": "fine"}, {"id": "broken"}])
    index_dir = tmp_path / "index"
    build_index([articles_file], index_dir, model=FAKE_MODEL)
    fake.calls.clear()
    with pytest.raises(BatchRejected) as info:
        add_articles(index_dir, [bad], strict=True)
    assert len(info.value.rejections) == 1 and fake.calls == []
    with Recommender.open(index_dir) as rec:
        assert rec.info()["articles"] == len(ARTICLES)
    report = add_articles(index_dir, [bad])  # default: keep the good one, list the bad one
    assert report.added == 1 and [r.location for r in report.rejected] == [f"{bad}:2 (id 'broken')"]


def test_interrupted_build_keeps_previous_index_and_resumes(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "index"
    build_index([articles_file], index_dir, model=FAKE_MODEL)
    with Recommender.open(index_dir) as rec:
        before = {a: rec.related(a, k=3).ids for a in ("a1", "b1")}
    more = write_jsonl(
        tmp_path / "more.jsonl",
        [{"id": f"n{i}", "title": f"Story number {i} about floods and rates", "body": f"body {i}"} for i in range(10)],
    )
    monkeypatch.setattr(writer, "EMBED_CHUNK", 3)

    def interrupt(batch_number: int) -> None:
        if batch_number == 2:
            raise KeyboardInterrupt

    fake.calls.clear()
    fake.before_batch = interrupt
    with pytest.raises(KeyboardInterrupt):
        build_index([articles_file, more], index_dir)
    with Recommender.open(index_dir) as rec:  # the previous index still opens, unchanged
        assert rec.info()["articles"] == len(ARTICLES)
        assert {a: rec.related(a, k=3).ids for a in ("a1", "b1")} == before
    fake.before_batch = None
    fake.calls.clear()
    report = build_index([articles_file, more], index_dir)
    assert report.added == 10 and report.embedded == 4  # 6 were embedded before the interruption
    assert not list(index_dir.glob(".*tmp*"))


def test_crash_between_catalog_commit_and_index_save_is_caught_up(
    fake_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: IndexStore, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(IndexStore, "save", crash)
    extra = write_jsonl(
        tmp_path / "new.jsonl",
        [{"id": "a5", "title": "River city flood waters", "body": "flood river city rain residents evacuated"}],
    )
    with pytest.raises(KeyboardInterrupt):
        add_articles(fake_index, [extra])
    monkeypatch.undo()
    with Recommender.open(fake_index) as rec:  # the catalog committed: the change log brings the index up to date
        assert rec.info()["articles"] == len(ARTICLES) + 1
        assert "a5" in rec.related("a1", k=4).ids


def test_corrupt_index_file_is_detected_at_open(fake_index: Path) -> None:
    manifest = Manifest.load(fake_index)
    path = fake_index / manifest.index_file
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IndexCorrupt, match="checksum"):
        Recommender.open(fake_index)


def test_model_is_remembered(fake_index: Path, articles_file: Path) -> None:
    with pytest.raises(IndexMismatch, match="built with model"):
        Recommender.open(fake_index, model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(IndexMismatch):
        build_index([articles_file], fake_index, model="another-model")
    with pytest.raises(IndexMismatch):
        Recommender.open(fake_index, embedder=FakeEmbedder(name="other"))


def test_second_writer_gets_index_busy(fake_index: Path, articles_file: Path) -> None:
    lock = write_lock(fake_index)
    with lock:
        with pytest.raises(IndexBusy, match="index busy"):
            add_articles(fake_index, [articles_file], lock_timeout=0.1)


def test_open_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="no index"):
        Recommender.open(tmp_path)


def test_hnsw_index_tombstones_and_compaction(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vector_index, "EXACT_SEARCH_LIMIT", 2)
    index_dir = tmp_path / "index"
    report = build_index([articles_file], index_dir, model=FAKE_MODEL)
    assert report.manifest is not None and report.manifest.index_type == "hnsw"
    assert report.manifest.recall_at_10 is not None and report.manifest.recall_at_10 > 0.9
    monkeypatch.setattr(store_mod, "TOMBSTONE_COMPACT_RATIO", 0.5)
    delete_articles(index_dir, ["a2"])
    manifest = Manifest.load(index_dir)
    assert manifest.tombstones == 1 and manifest.index_entries == len(ARTICLES)
    with Recommender.open(index_dir) as rec:
        assert "a2" not in rec.related("a1", k=7).ids
    delete_articles(index_dir, ["a3", "b1", "b2", "c1"])  # past the ratio: compacted
    manifest = Manifest.load(index_dir)
    assert manifest.tombstones == 0 and manifest.index_entries == len(ARTICLES) - 5


def test_manifest_cannot_point_outside_the_folder(fake_index: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(fake_index)
    outside = tmp_path / "evil.faiss"
    outside.write_bytes((fake_index / manifest.index_file).read_bytes())
    manifest.index_file = "../evil.faiss"
    manifest.save(fake_index)
    with pytest.raises(IndexCorrupt, match="not an index file of this folder"):
        Recommender.open(fake_index)


def test_catalog_from_before_the_card_columns_is_read_then_migrated(fake_index: Path) -> None:
    """Titles and tags moved out of the article JSON into columns (a link card no longer parses the article):
    an older catalog opened read-only reads them from the JSON, and the first writing open adds and fills them."""
    from recommender.storage.catalog import Catalog

    path = fake_index / Catalog.FILENAME
    with Recommender.open(fake_index) as rec:
        expected = rec.related(ARTICLES[0]["id"], 3)
        cards = rec.store.catalog.cards(list(range(1, len(ARTICLES) + 1)))
    assert any(card.tags for card in cards.values()) and all(card.title for card in cards.values())
    catalog = Catalog(path)
    catalog.conn.execute("ALTER TABLE articles DROP COLUMN title")
    catalog.conn.execute("ALTER TABLE articles DROP COLUMN tags")
    catalog.close()

    old = Catalog(path, read_only=True)
    assert old.cards(list(cards)) == cards
    assert {key: link.title for key, link in old.links(list(cards)).items()} == {k: c.title for k, c in cards.items()}
    old.close()

    migrated = Catalog(path)
    assert migrated.cards(list(cards)) == cards
    columns = {row[1] for row in migrated.conn.execute("PRAGMA table_info(articles)")}
    assert {"title", "tags"} <= columns
    migrated.close()
    with Recommender.open(fake_index) as rec:
        assert rec.related(ARTICLES[0]["id"], 3) == expected


def test_a_write_waits_for_the_disk_once(fake_index: Path, fake: FakeEmbedder) -> None:
    """A PUT costs one disk sync: the article's commit (synchronous=FULL, so an acknowledged write survives a
    power cut). The vector stored before it and the lists made after it commit without waiting (what a power cut
    could take of them is made again: the vector by embedding, the lists by the next catch-up)."""
    from recommender.serving.service import Service

    service = Service(fake_index, embedder=fake, autosave_seconds=0)
    service.load()
    try:
        conn = service._current().store.catalog.conn
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        assert service.upsert("fresh-1", {"title": "Dam warning", "body": "River flood rain dam warning."}) == "added"
        conn.set_trace_callback(None)
        # each commit that wrote: its level and the tables written (a write outside BEGIN is a commit of its own)
        level, written, commits, open_ = "FULL", set(), [], False
        for statement in (" ".join(s.split()).upper() for s in seen):
            if statement.startswith("PRAGMA SYNCHRONOUS="):
                level = statement.split("=", 1)[1]
            elif statement.startswith("BEGIN"):
                open_ = True
            elif statement.startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
                table = re.search(r"(?:INTO|UPDATE|FROM) (\w+)", statement)
                name = table.group(1) if table else statement
                if name != "STAGING":  # a temporary table: not in the database file
                    written.add(name)
                if not open_ and written:
                    commits.append((level, written))
                    written = set()
            elif statement in ("COMMIT", "ROLLBACK"):
                if written:
                    commits.append((level, written))
                written, open_ = set(), False
        tables = {"VECTORS", "VECTOR_CLAIMS", "ARTICLES", "RELATED"}
        assert tables <= set().union(*(t for _, t in commits)), commits  # all four were written
        assert [t for level, t in commits if level == "FULL"] == [{"ARTICLES", "CHANGES", "VECTOR_CLAIMS"}], commits
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again for the next write
    finally:
        service._dirty = False
        service.close()
