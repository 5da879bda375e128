"""Request limits enforced by the HTTP server itself, before a request reaches the app.

uvicorn bounds none of these with httptools (its ``h11_max_incomplete_event_size`` applies to h11 only, and no
timeout covers a request that trickles in), so a client without a key could make the server hold any amount of
header data, or hold connections open for ever. :class:`LimitedHttpToolsProtocol` is uvicorn's httptools protocol
with the limits of :class:`RequestLimits`:

- the request line plus headers over ``max_header_bytes``, or more than ``max_headers`` fields: ``431``;
- a request target over ``max_url_bytes``: ``414``;
- headers not complete ``header_timeout`` seconds after the connection opened or the request's first byte
  arrived (a slow client, or one that sends nothing): ``408``;
- an idle kept-alive connection is closed after ``keep_alive_timeout`` (uvicorn's own timer);
- at most ``max_connections`` open connections: past it the oldest connection that is idle or still sending its
  headers is closed, so slow clients cannot lock everyone else out (and the process stays under its file limit).

Each refusal answers with the API's error shape and closes the connection.

The checks cost a request almost nothing: the header timeout is not a timer per request (arming and cancelling
one in the event loop's heap was most of what these limits added to a cached read) but one check per event loop,
every quarter of the timeout while connections are open, of when each connection's head began; the header count is
checked once the headers are in (their bytes are bounded all along).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger(__name__)

#: File descriptors kept free for the index files, the catalog, logs and the listening socket.
RESERVED_FDS = 64


@dataclass(frozen=True)
class RequestLimits:
    """What one connection may send before its request reaches the app (see the module docstring)."""

    max_header_bytes: int = 32_768
    max_headers: int = 100
    max_url_bytes: int = 8_192
    header_timeout: float = 10.0
    max_connections: int = 1_000


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to what the process's open-file limit allows (each connection is a descriptor)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft - RESERVED_FDS >= wanted:
        return wanted
    allowed = max(8, soft - RESERVED_FDS)
    log.warning("max_connections %d is above the open-file limit (%d): using %d", wanted, soft, allowed)
    return allowed


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that broke a limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`RequestLimits` (read from ``config.request_limits``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits: RequestLimits = getattr(self.config, "request_limits", None) or RequestLimits()
        self._head_open = False  # between a request's first byte (or the connection) and its last header
        self._head_since = 0.0  # loop time the open head began
        self._head_bytes = 0
        self._refusal: tuple[int, str, str] | None = None
        self.opened_at = time.monotonic()

    # -- connection ------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_open = False
        super().connection_lost(exc)

    def _make_room(self) -> None:
        """Over the connection cap: close the oldest connection that is idle or still sending its headers (an
        answer in progress is never cut); when every one is busy, this new one is refused with 503."""
        waiting = [
            c
            for c in self.connections
            if c is not self and isinstance(c, LimitedHttpToolsProtocol) and c._idle_or_reading_head()
        ]
        if waiting:
            oldest = min(waiting, key=lambda c: c.opened_at)
            oldest.transport.close()
            oldest.connections.discard(oldest)
            return
        self._refuse_now(503, "Overloaded", "too many open connections; retry shortly")

    def _idle_or_reading_head(self) -> bool:
        return self._head_open and (self.cycle is None or self.cycle.response_complete)

    # -- header phase ----------------------------------------------------------------------------------------
    def _start_head(self) -> None:
        self._head_open = True
        self._head_since = self.loop.time()
        self._head_bytes = 0
        if self.loop not in _CHECKS:
            tick = min(1.0, self.limits.header_timeout / 4)
            _CHECKS[self.loop] = self.loop.call_later(tick, _check_heads, self.loop, self.connections, tick)

    def _header_timeout(self) -> None:
        if self._head_open and not self.transport.is_closing():
            what = "headers" if self._head_bytes else "a request"
            self._refuse_now(408, "request_timeout", f"no complete {what} within {self.limits.header_timeout:g}s")

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self.transport.is_closing():
            return
        if not self._head_open and (self.cycle is None or self.cycle.response_complete) and not self.pipeline:
            self._start_head()  # the first byte of the next request on a kept-alive connection
        if self._head_open:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_open and self._refusal is None and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_now(431, "headers_too_large", f"request headers over {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._head_open:
            self._start_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._stop(414, "uri_too_long", f"request target over {self.limits.max_url_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._head_open = False
        if len(self.headers) > self.limits.max_headers:
            self._stop(431, "headers_too_large", f"more than {self.limits.max_headers} request headers")
        head = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if head > self.limits.max_header_bytes:
            self._stop(431, "headers_too_large", f"request headers over {self.limits.max_header_bytes} bytes")
        super().on_headers_complete()

    # -- refusing --------------------------------------------------------------------------------------------
    def _stop(self, status: int, kind: str, message: str) -> None:
        """Refuse from inside a parser callback: httptools stops parsing on the exception, and uvicorn's
        handler of a parse error calls :meth:`send_400_response`, which sends this refusal instead."""
        self._refusal = (status, kind, message)
        raise _Refused(message)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        self._write_refusal(*self._refusal)

    def _refuse_now(self, status: int, kind: str, message: str) -> None:
        self._refusal = (status, kind, message)
        self._write_refusal(status, kind, message)

    def _write_refusal(self, status: int, kind: str, message: str) -> None:
        self._head_open = False
        if self.transport.is_closing():
            return
        log.info("refused a request from %s: %d %s", self.client[0] if self.client else "?", status, message)
        body = json.dumps({"error": {"type": kind, "message": message}}).encode("utf-8")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        if status == 503:
            head.append(b"retry-after: 1\r\n")
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(head))
        self.transport.close()


#: The pending header check of each event loop (armed while it has connections).
_CHECKS: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}


def _check_heads(loop: asyncio.AbstractEventLoop, connections: set[Any], tick: float) -> None:
    """Refuse (408) every connection whose head has been open longer than its header timeout; check again in
    ``tick`` seconds while there are connections."""
    del _CHECKS[loop]
    now = loop.time()
    for connection in list(connections):
        if (
            isinstance(connection, LimitedHttpToolsProtocol)
            and connection._head_open
            and now - connection._head_since >= connection.limits.header_timeout
        ):
            connection._header_timeout()
    if connections and not loop.is_closed():
        _CHECKS[loop] = loop.call_later(tick, _check_heads, loop, connections, tick)


__all__ = ["LimitedHttpToolsProtocol", "RequestLimits", "connection_cap"]
