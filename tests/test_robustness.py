"""Crashes, concurrent writers and load: nothing acknowledged is lost, nothing broken is served.

Short variants run in CI; ``-m slow`` runs the long variants (15 rounds, 5x the requests). Each test prints one
``robustness:`` line with its figures (``pytest -s`` shows them).
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from recommender import Recommender, build_index
from recommender.integrity import check_index
from tests.conftest import ARTICLES, write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder
from tests.servers import HELPER, ApiServer

pytestmark = pytest.mark.process  # starts processes: not in `make test-fast`

#: Short rounds in CI; the long variants run with ``-m slow`` (deselected by default).
ROUNDS = pytest.mark.parametrize(
    "rounds", [pytest.param(3, id="short"), pytest.param(15, id="long", marks=pytest.mark.slow)]
)
KEY = "robust-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def story(i: int) -> dict[str, str]:
    return {
        "title": f"River city flood update number{i}",
        "body": f"Flood river city residents evacuated homes rain note{i}.",
    }


def assert_healthy(index_dir: Path) -> int:
    report = check_index(index_dir)
    assert report.ok, report.problems
    with Recommender.open(index_dir) as rec:  # and it serves
        assert rec.related("a1", k=3).ids
    return report.articles


@pytest.mark.parametrize("command", ["build", "add"])
@ROUNDS
def test_kill_9_at_random_points_of_build_and_add(
    rounds: int, tmp_path: Path, fake: FakeEmbedder, articles_file: Path, command: str
) -> None:
    index_dir = tmp_path / "index"
    build_index([articles_file], index_dir, model=FAKE_MODEL)
    rows = [dict(story(i), id=f"s{i}") for i in range(400)]
    source = write_jsonl(tmp_path / "more.jsonl", rows)
    rng = random.Random(20261127)
    finished = 0
    args = [
        sys.executable,
        str(HELPER),
        command,
        *([str(articles_file)] if command == "build" else []),
        str(source),
        "--index",
        str(index_dir),
    ]
    env = dict(os.environ, FAKE_BATCH_DELAY="0.05")
    # One uninterrupted run first: how long the whole command takes here, so kills can land in every phase
    # (imports, staging, embedding, commit, FAISS save, list updates).
    started = time.monotonic()
    subprocess.run(args, env=env, check=True, capture_output=True)
    duration = time.monotonic() - started
    from recommender import delete_articles

    delete_articles(index_dir, [r["id"] for r in rows])
    for _ in range(rounds):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, duration))
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == 0:
            finished += 1
        count = assert_healthy(index_dir)
        assert count in (len(ARTICLES), len(ARTICLES) + len(rows)), count  # all or nothing, never half
        if proc.returncode == 0:
            assert count == len(ARTICLES) + len(rows)  # it said done: everything is there
        if count > len(ARTICLES):  # start over, so the next kill lands in a run that has work to do
            delete_articles(index_dir, [r["id"] for r in rows])
    print(
        f"robustness: kill -9 during {command} (a full run takes {duration:.1f}s): {rounds} kills at random points, "
        f"{finished} finished first, index healthy after each"
    )


@ROUNDS
def test_kill_9_during_a_burst_of_puts_loses_no_acknowledged_write(
    rounds: int, fake_index: Path, fake: FakeEmbedder
) -> None:
    rng = random.Random(7)
    acknowledged: list[str] = []
    for round_no in range(rounds):
        server = ApiServer(fake_index, "--api-key", KEY).start()
        stop = threading.Event()

        def writer(server: ApiServer = server, stop: threading.Event = stop, round_no: int = round_no) -> None:
            n = 0
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while not stop.is_set():
                    article_id = f"burst-{round_no}-{n}"
                    try:
                        r = client.put(f"/v1/articles/{article_id}", json=story(n), headers=AUTH)
                    except httpx.HTTPError:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code == 200:
                        acknowledged.append(article_id)
                    n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(rng.uniform(0.5, 2.0))
        server.stop(signal.SIGKILL)
        stop.set()
        thread.join()
        assert_healthy(fake_index)
        with Recommender.open(fake_index) as rec:
            missing = [i for i in acknowledged if rec.store.catalog.get(i) is None]
        assert not missing, f"acknowledged but lost: {missing[:5]}"
    with ApiServer(fake_index, "--api-key", KEY) as server:  # and a restarted server serves them
        r = httpx.get(f"{server.url}/v1/articles/{acknowledged[-1]}/related", timeout=10)
        assert r.status_code == 200
    print(f"robustness: kill -9 during PUT bursts: {rounds} kills, {len(acknowledged)} acknowledged writes, 0 lost")


@ROUNDS
def test_readers_during_writes_never_see_a_deleted_story(rounds: int, fake_index: Path, fake: FakeEmbedder) -> None:
    deleted_at: dict[str, float] = {}
    errors: list[str] = []
    reads = 0
    with ApiServer(fake_index, "--api-key", KEY) as server:
        stop = threading.Event()

        def reader() -> None:
            nonlocal reads
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    r = client.get("/v1/articles/a1/related", params={"k": 10})
                    reads += 1
                    if r.status_code != 200:
                        errors.append(f"GET {r.status_code}")
                        continue
                    for item in r.json()["related"]:
                        gone = deleted_at.get(item["id"])
                        if gone is not None and gone < started:
                            errors.append(f"deleted {item['id']} still listed")

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(10 * rounds):
                article_id = f"w{i}"
                assert client.put(f"/v1/articles/{article_id}", json=story(i), headers=AUTH).status_code == 200
                if i % 2:
                    assert client.delete(f"/v1/articles/{article_id}", headers=AUTH).status_code == 200
                    deleted_at[article_id] = time.monotonic()
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert_healthy(fake_index)
    print(f"robustness: {reads} reads during {10 * rounds} PUTs and {len(deleted_at)} DELETEs: 0 errors, 0 stale")


def test_cli_add_while_the_server_takes_puts(fake_index: Path, fake: FakeEmbedder, tmp_path: Path) -> None:
    rows = [dict(story(i), id=f"cli{i}") for i in range(300)]
    source = write_jsonl(tmp_path / "cli.jsonl", rows)
    acknowledged: list[str] = []
    busy = 0
    with ApiServer(fake_index, "--api-key", KEY) as server:
        proc = subprocess.Popen(
            [sys.executable, str(HELPER), "add", str(source), "--index", str(fake_index)],
            env=dict(os.environ, FAKE_BATCH_DELAY="0.2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        with httpx.Client(base_url=server.url, timeout=30) as client:
            i = 0
            while proc.poll() is None or i < 10:
                r = client.put(f"/v1/articles/srv{i}", json=story(1000 + i), headers=AUTH)
                if r.status_code == 200:
                    acknowledged.append(f"srv{i}")
                else:
                    assert r.status_code == 503 and r.json()["error"]["type"] == "IndexBusy"
                    busy += 1
                i += 1
        out, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
        for article_id in (acknowledged[-1], "cli299"):
            assert httpx.get(f"{server.url}/v1/articles/{article_id}/related", timeout=10).status_code == 200
    with Recommender.open(fake_index) as rec:
        assert all(rec.store.catalog.get(i) is not None for i in acknowledged + [r["id"] for r in rows])
    assert_healthy(fake_index)
    print(
        f"robustness: CLI add of {len(rows)} during {len(acknowledged)} acknowledged PUTs "
        f"({busy} 'index busy'): none lost"
    )


def _load(url: str, requests: int, concurrency: int, uncached: bool = False) -> tuple[list[float], dict[int, int], int]:
    """GET related lists from ``concurrency`` threads; ``uncached`` makes every request distinct (an excluded
    id no story has) and deeper than a stored list, so each is a live search in a worker thread."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    lock = threading.Lock()
    ids = [a["id"] for a in ARTICLES]

    def one(n: int, client: httpx.Client) -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            params: dict[str, object] = {"k": 30, "exclude": f"none-{n}"} if uncached else {"k": 5}
            r = client.get(f"/v1/articles/{ids[n % len(ids)]}/related", params=params)
            code = r.status_code
        except httpx.HTTPError:
            code = -1
        with lock:
            latencies.append(time.perf_counter() - started)
            statuses[code] = statuses.get(code, 0) + 1
            if code == -1:
                failures += 1

    with httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_connections=concurrency)) as client:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda n: one(n, client), range(requests)))
    return sorted(latencies), statuses, failures


@ROUNDS
def test_bounded_load_has_zero_errors(rounds: int, fake_index: Path, fake: FakeEmbedder) -> None:
    requests = 600 * rounds
    with ApiServer(fake_index) as server:
        started = time.perf_counter()
        latencies, statuses, failures = _load(server.url, requests, concurrency=8)
        seconds = time.perf_counter() - started
    assert statuses == {200: requests} and failures == 0, statuses
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"robustness: load {requests} GETs at concurrency 8: {requests / seconds:.0f} req/s, p99 {p99:.1f} ms, 0 errors"
    )


def test_overload_is_shed_not_queued(fake_index: Path, fake: FakeEmbedder) -> None:
    with ApiServer(fake_index, "--max-in-flight", "2") as server:
        # uncached: cached answers are too quick to pile up two in flight
        latencies, statuses, failures = _load(server.url, 400, concurrency=32, uncached=True)
    assert failures == 0 and set(statuses) <= {200, 503}, statuses  # refused quickly, never timed out or 5xx'd
    assert statuses.get(503, 0) > 0 and statuses.get(200, 0) > 0, statuses
    assert latencies[-1] < 5.0
    print(
        f"robustness: overload 400 GETs at concurrency 32, max in flight 2: {statuses.get(200)} served, "
        f"{statuses.get(503)} shed with 503, slowest {latencies[-1] * 1000:.0f} ms"
    )
