"""Attacks on a real ``recommender serve`` without a key, one per server limit (issue 15, cases 1 and 6).

Raw sockets, because httpx would refuse to send most of these requests. Every refusal is the API's error shape
and the server keeps answering everyone else.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recommender.settings import load
from tests.fakes import FakeEmbedder
from tests.servers import ApiServer

KEY = "limits-key"


@pytest.fixture
def server(fake_index: Path, fake: FakeEmbedder) -> Iterator[ApiServer]:
    with ApiServer(
        fake_index,
        "--api-key",
        KEY,
        "--header-timeout",
        "1",
        "--max-connections",
        "40",
        "--max-header-bytes",
        "16384",
        "--max-headers",
        "50",
        "--max-url-bytes",
        "2048",
        "--keep-alive-timeout",
        "1",
        "--body-timeout",
        "1",
    ) as api:
        yield api


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        try:
            conn.sendall(data)
        except OSError:
            pass  # the server may close before it has read everything we send
        out = b""
        try:
            while chunk := conn.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def status_and_error(reply: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["error"]


def still_serves(api: ApiServer) -> None:
    assert httpx.get(f"{api.url}/v1/articles/a1/related", timeout=5).status_code == 200


@pytest.mark.process  # a server process
def test_a_huge_header_is_refused_431(server: ApiServer) -> None:
    """Was: a 10 MB header answered 200 (and 40 x 25 MB headers took the server to 1.35 GB)."""
    big = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n"
    status, error = status_and_error(exchange(server.port, big))
    assert status == 431 and error["type"] == "headers_too_large"
    still_serves(server)


@pytest.mark.process  # a server process
def test_headers_sent_one_small_piece_at_a_time_still_count(server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        for n in range(400):
            try:
                conn.sendall(b"X-H%d: %s\r\n" % (n, b"v" * 60))
            except OSError:
                break
        reply = conn.recv(65536)
    assert status_and_error(reply)[0] == 431


@pytest.mark.process  # a server process
def test_too_many_headers_are_refused_431(server: ApiServer) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % n for n in range(60))
    status, error = status_and_error(exchange(server.port, b"GET /livez HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"))
    assert status == 431 and "50" in error["message"]


@pytest.mark.process  # a server process
def test_a_long_url_is_refused_414(server: ApiServer) -> None:
    reply = exchange(server.port, b"GET /livez?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_and_error(reply)[0] == 414
    still_serves(server)


@pytest.mark.process  # a server process
def test_slow_headers_time_out_408(server: ApiServer) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")  # never finished
        reply = conn.recv(65536)
    assert status_and_error(reply)[0] == 408 and time.monotonic() - started < 3


@pytest.mark.process  # a server process
def test_a_connection_that_sends_nothing_is_closed(server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        reply = conn.recv(65536)
    assert status_and_error(reply)[0] == 408


@pytest.mark.process  # a server process
def test_an_idle_kept_alive_connection_is_closed(server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):  # the whole answer, however it is split
            first += conn.recv(65536)
        assert b" 200 " in first.split(b"\r\n")[0]
        started = time.monotonic()
        assert conn.recv(65536) == b""  # closed by the server, not by us
    assert time.monotonic() - started < 3


@pytest.mark.process  # a server process
def test_slow_connections_cannot_lock_others_out(server: ApiServer) -> None:
    """Was: 1,100 slow connections under ``ulimit -n 1024`` made every other client get an empty reply. Past
    ``--max-connections`` the oldest idle or slow connection is closed, so an ordinary client still gets in."""
    slow = []
    try:
        for _ in range(120):  # three times the cap
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            conn.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(conn)
        answers = [httpx.get(f"{server.url}/v1/articles/a1/related", timeout=5).status_code for _ in range(20)]
        assert answers == [200] * 20
    finally:
        for conn in slow:
            conn.close()


@pytest.mark.process  # a server process
def test_a_chunked_body_over_the_limit_is_413(server: ApiServer) -> None:
    """Was 400 (the limit fired inside FastAPI's body parsing, which reports any error there as 400)."""
    head = (
        f"PUT /v1/articles/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"a" * 100_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(15)) + b"0\r\n\r\n"
    status, error = status_and_error(exchange(server.port, head + body))
    assert status == 413 and error["type"] == "payload_too_large"


@pytest.mark.process  # a server process
def test_a_slow_body_times_out_408(server: ApiServer) -> None:
    head = f"PUT /v1/articles/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n{{"
    reply = exchange(server.port, head.encode(), timeout=5)
    assert status_and_error(reply)[0] == 408


@pytest.mark.process  # a server process
def test_a_slow_events_body_times_out_408(server: ApiServer) -> None:
    """The events endpoint reads its own body (outside the body-limit middleware): the same timeout holds."""
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n{"
    started = time.monotonic()
    status, error = status_and_error(exchange(server.port, head, timeout=5))
    assert status == 408 and error["type"] == "request_timeout" and time.monotonic() - started < 4


@pytest.mark.process  # a server process
def test_a_host_header_cannot_redirect_elsewhere(server: ApiServer) -> None:
    """Was: ``GET /livez/`` with ``Host: evil.example`` redirected to http://evil.example/livez."""
    reply = exchange(server.port, b"GET /livez/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert b"evil.example" not in reply and status_and_error(reply)[0] == 404


@pytest.mark.process  # a server process
def test_docs_work_offline(server: ApiServer) -> None:
    """Was: Swagger UI loaded from a CDN (a blank page offline). Every asset the page names is served here."""
    page = httpx.get(f"{server.url}/docs", timeout=5).text
    assert "cdn" not in page.lower() and "https://" not in page
    assets = [part.split('"')[1] for part in page.split("=")[1:] if part.startswith('"/static-offline-docs/')]
    assert len(assets) >= 2
    for asset in assets:
        r = httpx.get(f"{server.url}{asset}", timeout=5)
        assert r.status_code == 200 and len(r.content) > 1000, asset


@pytest.mark.process  # a server process
def test_api_key_file_keeps_the_key_off_the_command_line(fake_index: Path, fake: FakeEmbedder, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    with ApiServer(fake_index, "--api-key-file", str(key_file)) as api:
        assert api.proc is not None
        cmdline = Path(f"/proc/{api.proc.pid}/cmdline").read_bytes()
        assert b"from-a-file" not in cmdline
        ok = httpx.put(
            f"{api.url}/v1/articles/k1",
            json={"title": "Flood river city", "body": "rain"},
            headers={"Authorization": "Bearer from-a-file"},
            timeout=10,
        )
        assert ok.status_code == 200, ok.text
        assert httpx.delete(f"{api.url}/v1/articles/k1", timeout=5).status_code == 401


def test_every_limit_is_a_setting_with_an_environment_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "RECOMMENDER_MAX_HEADER_BYTES": "4096",
        "RECOMMENDER_MAX_HEADERS": "20",
        "RECOMMENDER_MAX_URL_BYTES": "1024",
        "RECOMMENDER_HEADER_TIMEOUT": "2.5",
        "RECOMMENDER_BODY_TIMEOUT": "3",
        "RECOMMENDER_KEEP_ALIVE_TIMEOUT": "4",
        "RECOMMENDER_MAX_CONNECTIONS": "100",
        "RECOMMENDER_MAX_PER_CLIENT": "7",
        "RECOMMENDER_MAX_LIVE_SEARCHES": "2",
        "RECOMMENDER_CACHE_BYTES": "1000000",
        "RECOMMENDER_TRUSTED_PROXIES": "10.0.0.1,10.0.0.2",
    }
    settings = load(environ=env)
    assert (settings.max_header_bytes, settings.max_headers, settings.max_url_bytes) == (4096, 20, 1024)
    assert (settings.header_timeout, settings.body_timeout, settings.keep_alive_timeout) == (2.5, 3.0, 4.0)
    assert (settings.max_connections, settings.max_per_client, settings.max_live_searches) == (100, 7, 2)
    assert settings.cache_bytes == 1_000_000 and settings.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    from recommender.serving.http.workers import request_limits

    limits = request_limits(settings)
    assert (limits.max_header_bytes, limits.header_timeout, limits.max_connections) == (4096, 2.5, 100)


def test_the_connection_cap_stays_under_the_open_file_limit() -> None:
    from recommender.serving.http.limits import RESERVED_FDS, connection_cap

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10) == 10
    if soft != resource.RLIM_INFINITY:
        assert connection_cap(soft * 2) == max(8, soft - RESERVED_FDS)


@pytest.mark.process  # a server process
def test_limits_apply_with_worker_processes(fake_index: Path, fake: FakeEmbedder) -> None:
    """The limits travel with uvicorn's config to each worker process."""
    api = ApiServer(fake_index, "--workers", "2", "--max-url-bytes", "1024").start(timeout=120)
    try:
        reply = exchange(api.port, b"GET /livez?" + b"q" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_and_error(reply)[0] == 414
        assert httpx.get(f"{api.url}/livez", timeout=5).status_code == 200
    finally:
        api.stop()


# -- the deadlines the events endpoint reads its body under -----------------------------------------------------------
def test_deadlines_cancel_only_what_overruns_and_only_their_own_cancellations() -> None:
    import asyncio

    from recommender.serving.http.deadlines import Deadlines

    deadlines = Deadlines(0.2)

    async def guarded(wait: float) -> str:
        task = deadlines.start()
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            if deadlines.expired(task):
                return "timed out"
            raise
        finally:
            deadlines.stop(task)
        return "done"

    async def main() -> tuple[list[str], bool, float]:
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(guarded(0.01), guarded(10), guarded(0.05), guarded(10))
        took = asyncio.get_running_loop().time() - started
        outside = asyncio.create_task(guarded(10))
        await asyncio.sleep(0.01)
        outside.cancel()  # someone else's cancellation (a disconnect, a shutdown) is not taken for a timeout
        try:
            await outside
        except asyncio.CancelledError:
            return answers, True, took
        return answers, False, took

    for _ in range(2):  # a second event loop: the check timer of the first one does not stand in its way
        answers, propagated, took = asyncio.run(main())
        assert answers == ["done", "timed out", "done", "timed out"] and propagated
        assert 0.2 <= took < 0.5  # within a quarter of the limit (plus scheduling)
        assert len(deadlines) == 0  # nothing left behind
