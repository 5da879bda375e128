"""The real server on a loopback port: publish a story, see it in an older neighbour's list; survive kill -9."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.fakes import FakeEmbedder
from tests.servers import ApiServer

KEY = "e2e-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def related_ids(server: ApiServer, article_id: str, k: int = 5) -> list[str]:
    r = httpx.get(f"{server.url}/v1/articles/{article_id}/related", params={"k": k}, timeout=10)
    r.raise_for_status()
    return [item["id"] for item in r.json()["related"]]


def test_put_appears_in_an_older_neighbours_list_and_survives_a_crash(fake_index: Path, fake: FakeEmbedder) -> None:
    new = {"title": "River city flood evacuated residents rain homes", "url": "https://news.example/a4",
           "body": "Flood waters river city residents evacuated homes heavy rain overnight.", "section": "local"}
    server = ApiServer(fake_index, "--api-key", KEY).start()
    try:
        assert "a4" not in related_ids(server, "a2")
        r = httpx.put(f"{server.url}/v1/articles/a4", json=new, headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "added"
        assert "a4" in related_ids(server, "a2")  # the older neighbour's list, at once
        assert httpx.put(f"{server.url}/v1/articles/a5", json=new, timeout=10).status_code == 401
    finally:
        server.stop(signal.SIGKILL)  # no clean shutdown, no FAISS save: the catalog must hold the write
    with ApiServer(fake_index, "--api-key", KEY) as again:
        assert "a4" in related_ids(again, "a2")
        r = httpx.delete(f"{again.url}/v1/articles/a4", headers=AUTH, timeout=30)
        assert r.status_code == 200
        assert "a4" not in related_ids(again, "a2", k=10)
