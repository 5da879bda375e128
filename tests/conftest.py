from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import fakes

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "ecbplus-sample.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The onnx-int8 file made from the packaged model (and any embedding cache) goes to a throwaway folder, not ~/.cache.
os.environ.setdefault("RECOMMENDER_CACHE", tempfile.mkdtemp(prefix="recommender-test-cache-"))

#: Small hand-made news set: two stories with follow-ups, a wire copy, other sections.
ARTICLES = [
    {
        "id": "a1",
        "title": "Flood waters rise in river city",
        "body": "Heavy rain flooded the river city; residents evacuated homes as flood waters rose overnight.",
        "url": "https://news.example/a1",
        "published_at": "2024-03-01T08:00:00Z",
        "section": "local",
        "tags": ["flood", "weather"],
    },
    {
        "id": "a2",
        "title": "River city flood: evacuation continues",
        "body": "Flood waters in the river city keep rising; more residents evacuated after heavy rain.",
        "url": "https://news.example/a2",
        "published_at": "2024-03-02T08:00:00Z",
        "section": "local",
    },
    {
        "id": "a3",
        "title": "Flood damage counted in river city",
        "body": "After the flood, the river city counts the damage to homes; rain has stopped.",
        "url": "https://news.example/a3",
        "published_at": "2024-03-05T08:00:00Z",
        "section": "local",
    },
    {
        "id": "a1-wire",
        "title": "Flood waters rise in river city",
        "body": "Heavy rain flooded the river city; residents evacuated homes as flood waters rose overnight.",
        "url": "https://wire.example/a1",
        "published_at": "2024-03-01T09:00:00Z",
        "section": "wire",
    },
    {
        "id": "b1",
        "title": "Central bank raises interest rates",
        "body": "The central bank raised interest rates by a quarter point to fight inflation, markets fell.",
        "url": "https://news.example/b1",
        "published_at": "2024-02-01T08:00:00Z",
        "section": "business",
    },
    {
        "id": "b2",
        "title": "Markets react to interest rate rise",
        "body": "Stock markets fell after the central bank interest rate rise; inflation worries traders.",
        "url": "https://news.example/b2",
        "published_at": "2024-02-02T08:00:00Z",
        "section": "business",
    },
    {
        "id": "c1",
        "title": "Local team wins football final",
        "body": "The local football team won the cup final with a late goal in front of a full stadium.",
        "url": "https://news.example/c1",
        "published_at": "2023-05-01T08:00:00Z",
        "section": "sport",
    },
    {
        "id": "c2",
        "title": "Football final: fans celebrate cup win",
        "body": "Fans celebrated the football cup final win; the team paraded the cup through the city.",
        "url": "https://news.example/c2",
        "published_at": "2023-05-02T08:00:00Z",
        "section": "sport",
    },
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def fake() -> fakes.FakeEmbedder:
    """The fake embedder, registered as ``--model fake-hashing``, with its call counter reset."""
    return fakes.install()


@pytest.fixture
def articles_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "articles.jsonl", ARTICLES)


@pytest.fixture
def fake_index(tmp_path: Path, fake: fakes.FakeEmbedder, articles_file: Path) -> Path:
    from recommender import build_index

    index_dir = tmp_path / "index"
    build_index([articles_file], index_dir, model=fakes.FAKE_MODEL)
    return index_dir


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled ECB+ sample built once with the real packaged model (all-MiniLM-L6-v2)."""
    from recommender import build_index

    index_dir = tmp_path_factory.mktemp("real") / "index"
    build_index([SAMPLE], index_dir)
    return index_dir


# -- a real browser for the widget and report tests (Debian's chromium, headless, via Playwright) ----------------
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    """Debian's chromium, installed on the spot when missing and possible; else skip with the reason."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=600)
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("no chromium: `apt-get install chromium` failed or is unavailable here")
    return path


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()
