"""The real server on a loopback port: publish a story, see it in an older neighbour's list; survive kill -9."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeEmbedder
from tests.servers import ApiServer

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`

KEY = "e2e-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def related_ids(server: ApiServer, article_id: str, k: int = 5) -> list[str]:
    r = httpx.get(f"{server.url}/v1/articles/{article_id}/related", params={"k": k}, timeout=10)
    r.raise_for_status()
    return [item["id"] for item in r.json()["related"]]


def test_put_appears_in_an_older_neighbours_list_and_survives_a_crash(fake_index: Path, fake: FakeEmbedder) -> None:
    new = {
        "title": "River city flood evacuated residents rain homes",
        "url": "https://news.example/a4",
        "body": "Flood waters river city residents evacuated homes heavy rain overnight.",
        "section": "local",
    }
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


@pytest.mark.integration
def test_two_worker_processes_serve_one_index(real_index: Path, tmp_path: Path) -> None:
    """`serve --workers 2`: a story PUT through whichever worker answers is in every worker's lists at once."""
    index_dir = tmp_path / "index"
    shutil.copytree(real_index, index_dir)
    story = {
        "title": "76ers hire Maurice Cheeks as head coach",
        "body": "The Philadelphia 76ers named Maurice Cheeks their new head coach, replacing Jim O'Brien.",
        "url": "https://news.example/sport/sixers-cheeks",
    }
    with ApiServer(index_dir, "--api-key", KEY, "--workers", "2", real_model=True) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            before = client.get("/v1/articles/ecb-5_10ecbplus/related", params={"k": 3}).json()["related"]
            assert "sixers-cheeks" not in [item["id"] for item in before]
            assert client.put("/v1/articles/sixers-cheeks", json=story, headers=AUTH).status_code == 200
            time.sleep(0.2)  # workers look for each other's writes every 50 ms
            for _ in range(20):  # new connections land on both workers
                with httpx.Client(base_url=server.url, timeout=30) as fresh:
                    ids = [
                        i["id"]
                        for i in fresh.get("/v1/articles/ecb-5_10ecbplus/related", params={"k": 3}).json()["related"]
                    ]
                assert "sixers-cheeks" in ids
