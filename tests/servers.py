"""Real servers on loopback for end-to-end tests: the API (a subprocess) and a static site (a thread)."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HELPER = Path(__file__).with_name("cli_with_fake.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """``recommender serve`` with the fake embedder, in its own process, on 127.0.0.1."""

    def __init__(self, index_dir: Path, *extra: str, port: int | None = None, real_model: bool = False) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        program = [sys.executable, "-m", "recommender.cli.app"] if real_model else [sys.executable, str(HELPER)]
        self.args = [*program, "serve", "--index", str(index_dir), "--port", str(self.port), *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> ApiServer:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StaticSite:
    """A folder served over HTTP on 127.0.0.1 from a background thread (a news site's pages)."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class ScriptedSite:
    """A news site on 127.0.0.1 whose answers a test sets: ``routes[path] = (status, content_type, body)``.

    ``hits`` counts requests per path (so a test can see what was fetched again); ``fail_first[path] = n``
    answers 503 to the first n requests of a path; ``down`` makes every request fail to connect (the server
    closes the connection without an answer)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.hits: dict[str, int] = {}
        self.agents: list[str] = []
        self.fail_first: dict[str, int] = {}
        self.down = False
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path
                site.hits[path] = site.hits.get(path, 0) + 1
                site.agents.append(self.headers.get("User-Agent", ""))
                if site.down:
                    self.close_connection = True
                    self.connection.close()
                    return
                if site.fail_first.get(path, 0) > 0:
                    site.fail_first[path] -= 1
                    self._send(503, "text/plain", b"busy")
                    return
                status, content_type, body = site.routes.get(path, (404, "text/plain", b"not found"))
                self._send(status, content_type, body)

            def do_HEAD(self) -> None:  # noqa: N802
                status, content_type, _ = site.routes.get(self.path, (404, "text/plain", b""))
                self.send_response(status)
                self.end_headers()

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def page(self, path: str, html: str) -> None:
        self.routes[path] = (200, "text/html; charset=utf-8", html.encode("utf-8"))

    def xml(self, path: str, text: str) -> None:
        self.routes[path] = (200, "application/xml", text.encode("utf-8"))

    def __enter__(self) -> ScriptedSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
