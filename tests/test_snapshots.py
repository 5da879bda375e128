"""Readers during writes: ``check``, ``similar`` and ``add`` never report damage or fail because another process
is writing, and one writer's sweep never deletes the vectors another is about to use (issue 15, case 3).

The concurrency test prints one ``robustness:`` line with its figures (``pytest -s``; docs/reliability.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from recommender import Recommender, add_articles
from recommender.cli.app import app
from recommender.integrity import check_index
from recommender.reports import WriteReport
from recommender.storage.store import IndexStore, acquire_write_lock
from recommender.writer import apply_batch, records_from_articles
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FakeEmbedder
from tests.servers import HELPER, ApiServer

KEY = "snapshot-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def story(prefix: str, i: int) -> dict[str, str]:
    return {
        "id": f"{prefix}{i}",
        "title": f"River city flood update {prefix}{i}",
        "body": f"Flood river city residents evacuated homes rain note{prefix}{i}.",
    }


@pytest.mark.process  # a server process and CLI processes
@pytest.mark.parametrize("runs", [pytest.param(200, id="200"), pytest.param(1000, id="1000", marks=pytest.mark.slow)])
def test_check_and_similar_see_no_damage_while_puts_and_a_cli_add_run(
    fake_index: Path, fake: FakeEmbedder, tmp_path: Path, runs: int
) -> None:
    """Was: ``check`` reported DAMAGED in 8 of 12 runs ("1896 FAISS entries for 1897 articles", "26 related-list
    entries point at deleted articles"), ``similar`` failed 5 of 10, and a CLI add failed with "370 vectors in
    the FAISS index but 371 articles", all while a server took PUTs."""
    source = write_jsonl(tmp_path / "more.jsonl", [story("cli", i) for i in range(400)])
    stop = threading.Event()
    acknowledged: list[str] = []
    add_exits: list[int] = []
    add_errors: list[str] = []
    with ApiServer(fake_index, "--api-key", KEY) as server:

        def putter() -> None:
            n = 0
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    r = client.put(f"/v1/articles/put{n}", json=story("put", n), headers=AUTH)
                    assert r.status_code in (200, 503), r.text  # 503 IndexBusy: the CLI add holds the lock
                    if r.status_code == 200:
                        acknowledged.append(f"put{n}")
                    if n % 3 == 2 and acknowledged:  # unpublish some: lists must drop them
                        gone = acknowledged.pop(0)
                        r = client.delete(f"/v1/articles/{gone}", headers=AUTH)
                        assert r.status_code in (200, 503), r.text
                    n += 1

        def cli_adder() -> None:
            env = dict(os.environ, FAKE_BATCH_DELAY="0.02")
            while not stop.is_set():
                proc = subprocess.run(
                    [sys.executable, str(HELPER), "add", str(source), "--index", str(fake_index)],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                add_exits.append(proc.returncode)
                if proc.returncode != 0:
                    add_errors.append(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?")
                subprocess.run(
                    [
                        sys.executable,
                        str(HELPER),
                        "delete",
                        *[f"cli{i}" for i in range(0, 400, 7)],
                        "--index",
                        str(fake_index),
                    ],
                    capture_output=True,
                    env=env,
                )

        writers = [threading.Thread(target=putter), threading.Thread(target=cli_adder)]
        for thread in writers:
            thread.start()
        false_reports: list[str] = []
        started = time.monotonic()
        try:
            time.sleep(1.0)  # the writers are under way
            for run in range(runs):
                if run % 2 == 0:
                    report = check_index(fake_index)
                    if not report.ok:
                        false_reports.append(f"check: {report.problems}")
                else:
                    try:
                        with Recommender.open(fake_index) as rec:
                            if not rec.related("a1", k=3).ids:
                                false_reports.append("similar: empty list")
                    except Exception as exc:  # noqa: BLE001 - any failure is a false report
                        false_reports.append(f"similar: {type(exc).__name__}: {exc}")
            for command in (["check"], ["similar", "a1"]):  # and through the CLI itself, once each
                result = CliRunner().invoke(app, [*command, "--index", str(fake_index)])
                if result.exit_code != 0:
                    false_reports.append(f"{command[0]} CLI: {result.output}")
        finally:
            stop.set()
            for thread in writers:
                thread.join(timeout=300)
    seconds = time.monotonic() - started
    print(
        f"robustness: {runs} check/similar runs in {seconds:.0f}s while {len(acknowledged)} PUTs stood and "
        f"{len(add_exits)} CLI adds of 400 ran: {len(false_reports)} false reports, "
        f"CLI add exits {sorted(set(add_exits))}"
    )
    assert not false_reports, false_reports[:5]
    assert add_exits and all(code == 0 for code in add_exits), add_errors
    assert check_index(fake_index).ok


def test_a_sweep_never_deletes_vectors_another_writer_is_about_to_use(fake_index: Path, fake: FakeEmbedder) -> None:
    """Was: of two concurrent CLI adds, one re-embedded 256 texts because the other's orphan sweep deleted the
    vectors it had embedded but not yet committed. Here writer B embeds, then, while it waits for the lock,
    writer A runs a whole add (with its sweep); B must not embed anything twice."""
    mine = [story("writer-b-", i) for i in range(40)]

    @contextmanager
    def lock_after_another_write() -> Iterator[None]:
        add_articles(fake_index, articles=[story("writer-a-", i) for i in range(10)])  # writer A, sweep included
        with acquire_write_lock(fake_index):
            yield

    store = IndexStore.open(fake_index)
    try:
        fake.calls.clear()
        report = WriteReport()
        apply_batch(store, records_from_articles(mine), report, lambda: fake, lock=lock_after_another_write())
    finally:
        store.close()
    b_texts = sum(fake.calls) - 10  # A embedded its 10
    assert (report.added, report.embedded, b_texts) == (40, 40, 40), (fake.calls, report.to_dict())
    with Recommender.open(fake_index) as rec:
        assert rec.store.catalog.count() == len(ARTICLES) + 50


def test_an_orphaned_claim_expires(fake_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that died leaves claims behind: the next sweep ignores them once they are stale."""
    import numpy as np

    from recommender.storage import catalog as catalog_module

    store = IndexStore.open(fake_index)
    try:
        cat = store.catalog
        cat.store_vectors(["dead-writer-hash"], np.ones((1, store.manifest.dimension), dtype=np.float32))
        cat.claim_vectors(["dead-writer-hash"], "host:1:dead")
        with cat.transaction():
            cat.prune_vectors()
        assert cat.vector_for("dead-writer-hash") is not None  # claimed: kept
        monkeypatch.setattr(catalog_module, "CLAIM_TTL_SECONDS", -1.0)
        with cat.transaction():
            cat.prune_vectors()
        assert cat.vector_for("dead-writer-hash") is None
    finally:
        store.close()


@pytest.mark.parametrize(("ttl", "refreshes"), [(3600.0, 0), (0.0, 4)])
def test_a_long_embedding_run_refreshes_its_claims_now_and_then(
    fake_index: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch, ttl: float, refreshes: int
) -> None:
    """A writer keeps its claims alive while it embeds, but only once a quarter of their lifetime has passed (the
    refresh rewrites every claim of the batch: after every chunk it cost a 100k build 30 s)."""
    import recommender.writer as writer_module
    from recommender.storage.catalog import Catalog

    calls: list[str] = []
    original = Catalog.refresh_claims
    monkeypatch.setattr(Catalog, "refresh_claims", lambda self, owner: calls.append(owner) or original(self, owner))
    monkeypatch.setattr(writer_module, "EMBED_CHUNK", 2)
    monkeypatch.setattr(writer_module, "CLAIM_TTL_SECONDS", ttl)
    new = [{"id": f"n{i}", "title": f"Fresh story {i}", "body": f"river flood rain story number {i}"} for i in range(8)]
    add_articles(fake_index, articles=new, embedder=fake)
    assert len(calls) == refreshes and len(set(calls)) <= 1  # 8 texts, 2 a chunk: 4 chunks


def test_open_reads_the_new_pair_when_a_save_swaps_the_faiss_file(
    fake_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that read the manifest just before another process saved finds the old FAISS file gone: it
    reads the new manifest and file instead of reporting a missing file."""
    import recommender.storage.store as store_module

    real = store_module.read_index
    calls = {"n": 0}

    def racing(path: Path, sha: str) -> object:
        calls["n"] += 1
        if calls["n"] == 1:  # another process saves right now: new file, new manifest, old file removed
            add_articles(fake_index, articles=[story("race", 1)])
        return real(path, sha)

    monkeypatch.setattr(store_module, "read_index", racing)
    with Recommender.open(fake_index) as rec:
        assert rec.store.catalog.get("race1") is not None
    assert calls["n"] == 3  # the reader, the writer's own open, the reader again (the new pair)
