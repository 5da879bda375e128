"""Serving past one process: ``recommender serve`` replicas on one index folder, as behind a load balancer.

Two real server processes (loopback ports, the fake embedder) share one published index: they answer alike,
a write through one is served by the other, and a newly published index reaches both with no failed request.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from recommender import Recommender, add_articles, build_index
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder
from tests.servers import ApiServer

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`

KEY = "replica-key"


def related(server: ApiServer, article_id: str) -> dict:
    response = httpx.get(f"{server.url}/v1/articles/{article_id}/related", params={"k": 3}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(condition: object, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"after {timeout:.0f} s: {what}")


def test_replicas_answer_alike_and_all_follow_a_new_index(
    tmp_path: Path, fake: FakeEmbedder, articles_file: Path
) -> None:
    index_dir = tmp_path / "current"  # what the replicas serve: a link to the published build's folder
    (tmp_path / "build-1").mkdir()
    index_dir.symlink_to(tmp_path / "build-1", target_is_directory=True)
    build_index([articles_file], index_dir, model=FAKE_MODEL)
    ids = [a["id"] for a in ARTICLES]

    def alike(servers: list[ApiServer], article_ids: list[str]) -> bool:
        answers = [[related(server, i) for i in article_ids] for server in servers]
        return all(a == answers[0] for a in answers)

    with ApiServer(index_dir, "--api-key", KEY) as one, ApiServer(index_dir, "--api-key", KEY) as two:
        assert alike([one, two], ids)

        # a story published through one replica reaches the other's lists and version (catalog change log)
        story = {
            "title": "River city flood: residents return home",
            "body": "Flood waters fall in the river city; residents evacuated return home after the rain.",
        }
        put = httpx.put(f"{one.url}/v1/articles/a4", json=story, headers={"Authorization": f"Bearer {KEY}"})
        assert put.status_code == 200, put.text
        wait_for(
            lambda: "a4" in [s["id"] for s in related(two, "a2")["related"]] and alike([one, two], ["a2"]),
            "replica two still answers without the story PUT through replica one (a cached or stale answer)",
        )

        # another process adds a story (and saves a new FAISS file): a replica started now agrees with the others
        add_articles(
            index_dir,
            articles=[
                {
                    "id": "b3",
                    "title": "Interest rates: what the rise means",
                    "body": "The central bank interest rate rise and inflation explained.",
                }
            ],
        )
        with ApiServer(index_dir, "--api-key", KEY) as three:
            wait_for(lambda: alike([one, two, three], [*ids, "a4", "b3"]), "three replicas answer differently")

        # publish new indexes while both are being asked: no failed request, both switch to each
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def ask() -> None:
            while not stop.is_set():
                for server in (one, two):
                    try:
                        statuses[httpx.get(f"{server.url}/v1/articles/a1/related", timeout=10).status_code] += 1
                    except httpx.HTTPError:
                        statuses[0] += 1

        poller = threading.Thread(target=ask, daemon=True)
        poller.start()
        try:
            time.sleep(1.1)  # a new build time (second resolution) marks the new index
            extra = write_jsonl(
                tmp_path / "extra.jsonl",
                ARTICLES
                + [
                    {
                        "id": "c3",
                        "title": "Football cup final: the winning goal",
                        "body": "The team won the cup final.",
                    },
                ],
            )
            build_index([extra], index_dir)
            with Recommender.open(index_dir) as rec:
                published = rec.index_version
            wait_for(
                lambda: all(related(s, "c1")["index_version"] == published for s in (one, two)),
                "a replica did not pick up the rebuilt index",
            )
            assert alike([one, two], [*ids, "a4", "b3", "c3"])

            # publish a build made elsewhere (another folder, copied in) by switching the link atomically
            fresh = tmp_path / "build-2"
            build_index([write_jsonl(tmp_path / "fresh.jsonl", ARTICLES[:6])], fresh, model=FAKE_MODEL)
            (tmp_path / "next").symlink_to(fresh, target_is_directory=True)
            os.replace(tmp_path / "next", index_dir)
            with Recommender.open(fresh) as rec:
                published = rec.index_version
            wait_for(
                lambda: all(related(s, "a1")["index_version"] == published for s in (one, two)),
                "a replica did not pick up the index published by the symlink switch",
            )
        finally:
            stop.set()
            poller.join(timeout=15)
        assert set(statuses) == {200} and statuses[200] > 10, statuses
        assert alike([one, two], [a["id"] for a in ARTICLES[:6]])
        gone = httpx.get(f"{two.url}/v1/articles/c1/related")
        assert gone.status_code == 404  # not in the new build
