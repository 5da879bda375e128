"""A build killed with SIGKILL half-way leaves the previous index openable; running it again resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recommender import Recommender, build_index
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`

HELPER = Path(__file__).with_name("cli_with_fake.py")


def test_kill_9_during_build_loses_nothing(tmp_path: Path, fake: FakeEmbedder, articles_file: Path) -> None:
    index_dir = tmp_path / "index"
    build_index([articles_file], index_dir, model=FAKE_MODEL)
    with Recommender.open(index_dir) as rec:
        before = rec.related("a1", k=3).ids
    more = write_jsonl(
        tmp_path / "more.jsonl",
        [{"id": f"n{i}", "title": f"Story {i}", "body": f"word{i} other{i} thing{i}"} for i in range(600)],
    )
    markers = tmp_path / "markers"
    markers.mkdir()
    env = dict(os.environ, FAKE_BATCH_DELAY="0.3", FAKE_MARKER_DIR=str(markers))
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "build", str(articles_file), str(more), "--index", str(index_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(list(markers.iterdir())) < 2 and time.monotonic() < deadline:  # two 256-text batches under way
        time.sleep(0.05)
    time.sleep(0.4)  # the first batch is committed to the vector cache
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Recommender.open(index_dir) as rec:  # the previous index opens, unchanged
        assert rec.info()["articles"] == len(ARTICLES)
        assert rec.related("a1", k=3).ids == before
    fake.calls.clear()
    report = build_index([articles_file, more], index_dir)
    assert report.added == 600
    assert 0 < report.embedded < 600  # what was embedded before the kill was kept
    with Recommender.open(index_dir) as rec:
        assert rec.info()["articles"] == len(ARTICLES) + 600
