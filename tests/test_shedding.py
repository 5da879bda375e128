"""Cost-aware shedding: one flood does not starve everyone (issue 15, case 5).

Cached answers and stored-list reads never wait for, or get shed because of, live searches (those have a budget
of their own); one client cannot hold more than its share of the server; the answer cache is bounded in bytes.
The load test prints one ``robustness:`` line with its figures (``pytest -s`` shows them; docs/reliability.md).
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from recommender.serving.http.app import create_app
from recommender.serving.http.cache import ResponseCache, entry_bytes
from recommender.serving.http.middleware import CachedAnswers
from recommender.serving.service import Service
from recommender.settings import Settings
from tests.fakes import FAKE_MODEL, FakeEmbedder
from tests.servers import ApiServer

FLOOD = Path(__file__).with_name("flood.py")
WORDS = (
    "flood river city rain storm bank rates market team final cup goal court judge vote election fire forest "
    "school teacher hospital doctor train strike airport police bridge museum festival harvest drought"
).split()


@pytest.fixture
def archive(tmp_path: Path, fake: FakeEmbedder) -> Path:
    """400 stories on overlapping topics: every list is full (20 deep), so k over 20 needs a live search."""
    from recommender import build_index

    stories = [
        {
            "id": f"n{i}",
            "title": " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(4)) + f" report{i % 40}",
            "body": " ".join(WORDS[(i * 3 + j * 5) % len(WORDS)] for j in range(12)),
            "url": f"https://news.example/n{i}",
            "published_at": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T08:00:00Z",
        }
        for i in range(400)
    ]
    index_dir = tmp_path / "archive"
    build_index(articles=stories, index_dir=index_dir, model=FAKE_MODEL)
    return index_dir


#: The load test's bar: p99 of the second client's cached reads while the flood runs (the long variant). The
#: short variant runs in CI on a shared 2-core machine where the flood's live searches take the server's CPU and
#: GIL from its event loop (docs/reliability.md): it guards against errors and against stalls past
#: :data:`P99_CI_LIMIT_MS` (or :data:`NOISE_FACTOR` times the same run's quiet p99, when that is higher).
P99_LIMIT_MS = 10.0
P99_CI_LIMIT_MS = 100.0
#: More than the default max_in_flight (64): before cost-aware shedding this flood got cached reads shed too.
FLOOD_CONCURRENCY = 96
NOISE_FACTOR = 4.0


def test_a_busy_live_budget_sheds_only_live_searches(archive: Path, fake: FakeEmbedder) -> None:
    settings = Settings(index=str(archive), max_live_searches=1)
    service = Service(settings, embedder=fake, autosave_seconds=0)
    with TestClient(create_app(service, settings)) as c:
        assert c.get("/v1/articles/n1/related?k=30").status_code == 200  # a live search, the budget is free
        assert c.get("/v1/articles/n2/related?k=3").status_code == 200  # cached from here on
        assert service._live.acquire(blocking=False)  # a live search is running
        try:
            live = c.get("/v1/articles/n1/related?k=31")
            assert live.status_code == 503 and live.json()["error"]["type"] == "Overloaded"
            assert live.headers["retry-after"] == "1"
            text = c.post("/v1/related", json={"text": "flood river city"})
            assert text.status_code == 503
            assert c.get("/v1/articles/n3/related?k=3").status_code == 200  # a stored list: not shed
            assert c.get("/v1/articles/n2/related?k=3").status_code == 200  # cached: not shed
            assert c.get("/livez").status_code == 200 and c.get("/readyz").status_code == 200
        finally:
            service._live.release()
        assert c.get("/v1/articles/n1/related?k=31").status_code == 200


def test_cached_answers_are_never_shed(fake_index: Path, fake: FakeEmbedder) -> None:
    service = Service(fake_index, embedder=fake, autosave_seconds=0)
    app = create_app(service, Settings(max_in_flight=1, max_per_client=1))
    with TestClient(app) as c:
        assert c.get("/v1/articles/a1/related").status_code == 200
        shed = next(m for m in app.user_middleware if m.cls.__name__ == "Shed")
        assert shed is not None
        # every budget spent: the cached answer still comes, uncached work is refused
        stack = app.middleware_stack
        while stack is not None and type(stack).__name__ != "Shed":
            stack = getattr(stack, "app", None)
        assert stack is not None
        stack.in_flight = 1
        assert c.get("/v1/articles/a1/related").status_code == 200
        r = c.get("/v1/articles/a2/related")
        assert r.status_code == 503 and r.json()["error"]["type"] == "Overloaded"
        stack.in_flight = 0
        stack.per_client["testclient"] = 1
        r = c.get("/v1/articles/a2/related")
        assert r.status_code == 429 and r.json()["error"]["type"] == "TooManyRequests"
        assert r.headers["retry-after"] == "1"
        stack.per_client.clear()


def test_the_answer_cache_is_bounded_in_bytes(fake_index: Path, fake: FakeEmbedder) -> None:
    """Was bounded by entries: unique 60 KB query strings took the server from 255 to 855 MB in 17 s."""
    service = Service(fake_index, embedder=fake, autosave_seconds=0)
    app = create_app(service, Settings(cache_bytes=1_000_000))
    with TestClient(app) as c:
        for n in range(60):
            r = c.get(f"/v1/articles/a1/related?k=3&section=&pad{n}={'x' * 60_000}")
            assert r.status_code == 200
    cache = next(m for m in app.user_middleware if m.cls is CachedAnswers).kwargs["cache"]
    assert 0 < cache.bytes <= 1_000_000 and 0 < len(cache) < 60


def test_response_cache_keeps_the_newest_within_its_budget() -> None:
    cache = ResponseCache(max_bytes=20_000)
    for n in range(100):
        cache.put(("v1", f"/p{n}", b"q" * 500), (b"x" * 400, "application/json"))
    assert 15_000 < cache.bytes <= 20_000 and cache.get(("v1", "/p99", b"q" * 500)) is not None
    assert cache.get(("v1", "/p0", b"q" * 500)) is None
    assert cache.bytes == sum(entry_bytes(k, v) for k, v in cache._items.items())
    cache.put(("v1", "/huge", b""), (b"x" * 5_000, "text/html"))  # over a tenth of the budget: not kept
    assert cache.get(("v1", "/huge", b"")) is None


@pytest.mark.process  # a server process
def test_one_client_cannot_take_the_whole_server(fake_index: Path, fake: FakeEmbedder) -> None:
    """Six slow requests at once from one address with ``--max-per-client 2``: the extra ones get 429 at once,
    and a second address is still served."""
    import os

    env_delay = os.environ.get("FAKE_BATCH_DELAY")
    os.environ["FAKE_BATCH_DELAY"] = "0.5"  # each free-text query embeds for half a second
    try:
        api = ApiServer(fake_index, "--max-per-client", "2", "--max-live-searches", "8").start()
    finally:
        if env_delay is None:
            os.environ.pop("FAKE_BATCH_DELAY")
        else:
            os.environ["FAKE_BATCH_DELAY"] = env_delay
    try:
        results: list[int] = []

        def slow() -> None:
            r = httpx.post(f"{api.url}/v1/related", json={"text": "flood river city"}, timeout=30)
            results.append(r.status_code)

        threads = [threading.Thread(target=slow) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10)
        assert other.get(f"{api.url.replace('127.0.0.1', '127.0.0.1')}/v1/articles/a2/related").status_code == 200
        other.close()
        for t in threads:
            t.join()
        assert sorted(results).count(429) >= 3 and results.count(200) >= 1, results
    finally:
        api.stop()


class RawClient:
    """One kept-alive connection, a prepared request, the reply read by its Content-Length: a client whose own
    cost (well under a millisecond) does not hide the server's latency, as an HTTP library's would here."""

    def __init__(self, port: int, path: str, source: str = "127.0.0.2") -> None:
        self.conn = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
        self.buffer = b""

    def get(self) -> int:
        self.conn.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.conn.recv(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(rest) < length:
            rest += self.conn.recv(65536)
        self.buffer = rest[length:]
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        self.conn.close()


@pytest.mark.parametrize(
    ("seconds", "strict"),
    [pytest.param(8, False, id="short"), pytest.param(30, True, id="long", marks=pytest.mark.slow)],
)
@pytest.mark.process  # a server process
def test_a_flood_of_uncacheable_reads_leaves_cached_reads_fast(
    archive: Path, fake: FakeEmbedder, seconds: int, strict: bool
) -> None:
    """Was: a flood of uncacheable reads (k > 20, unique filters) made 75-88 % of ordinary cached reads answer
    503 and /livez take 1.7 s. Now a second client (its own address) reading a cached answer keeps p99 <= 10 ms
    with 0 errors while the flood runs, and /livez answers at once."""
    with ApiServer(archive) as api:
        cached = RawClient(api.port, "/v1/articles/n1/related?k=5")
        health = RawClient(api.port, "/livez")
        assert cached.get() == 200  # cached from now on
        quiet = []
        for _ in range(300):
            started = time.perf_counter()
            cached.get()
            quiet.append((time.perf_counter() - started) * 1000)
        flood = subprocess.Popen(
            [sys.executable, str(FLOOD), api.url, "n2", str(seconds), str(FLOOD_CONCURRENCY)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)  # the flood is under way
        latencies: list[float] = []
        livez: list[float] = []
        errors = 0
        deadline = time.monotonic() + seconds - 2.5
        while time.monotonic() < deadline:
            started = time.perf_counter()
            errors += cached.get() != 200
            latencies.append((time.perf_counter() - started) * 1000)
            if len(latencies) % 50 == 0:
                started = time.perf_counter()
                errors += health.get() != 200
                livez.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)  # an ordinary reader, not a second flood
        out, _ = flood.communicate(timeout=60)
        cached.close()
        health.close()
    report = json.loads(out)
    p99 = statistics.quantiles(latencies, n=100)[98]
    quiet_p99 = statistics.quantiles(quiet, n=100)[98]
    print(
        f"robustness: flood of {report['requests']} uncacheable reads in {seconds}s at concurrency {FLOOD_CONCURRENCY} "
        f"({report['statuses']}); meanwhile {len(latencies)} cached reads from a second client: "
        f"p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.1f} ms, {errors} errors "
        f"(without the flood: p99 {quiet_p99:.2f} ms); /livez max {max(livez):.1f} ms"
    )
    assert report["requests"] > 100  # the flood really ran
    assert errors == 0
    limit = P99_LIMIT_MS if strict else max(P99_CI_LIMIT_MS, NOISE_FACTOR * quiet_p99)
    assert p99 <= limit, f"p99 {p99:.2f} ms (quiet p99 {quiet_p99:.2f} ms)"
