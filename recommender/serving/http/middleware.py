"""ASGI middleware of the app (plain ASGI: ``BaseHTTPMiddleware`` costs a task per request).

- :class:`Observe`: metrics for every request;
- :class:`BodyLimit`: the request body read whole before the app runs: 413 over the limit (declared, chunked or
  not), 408 when it does not arrive within the body timeout;
- :class:`CachedAnswers`: a GET whose answer the routes already made for this index version is sent before
  routing and validation (most of a cached request's cost). It only replays the routes' own answers;
- :class:`Shed`: what is left after the cache (stored-list lookups, live searches, writes) is shed per client
  (429 past ``max_per_client`` in flight from one address) and overall (503 past ``max_in_flight``). Cached
  answers and the health routes are never shed, and live searches have a budget of their own in the service,
  so a flood of uncacheable reads cannot starve ordinary readers.

Order, outermost first: Observe, BodyLimit, CORS, CachedAnswers, Shed, the routes (the events endpoint,
:mod:`.events`, is in front of them all).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.serving.http.cache import ResponseCache
from recommender.serving.http.errors import REFUSAL_DELAY, error_response
from recommender.serving.http.metrics import Metrics

if TYPE_CHECKING:
    from recommender.serving.service import Service

#: Routes that are never shed: a load balancer must always see whether the process is alive and ready.
UNSHED = ("/livez", "/readyz", "/metrics")


def cached_response(version: str, payload: bytes, media_type: str, if_none_match: str, max_age: int) -> Response:
    """A GET answer made for index ``version``: its ETag and caching headers, or 304 when the client holds it."""
    etag = f'W/"{version}"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if etag in if_none_match:
        return Response(status_code=304, headers=headers)
    return Response(payload, media_type=media_type, headers=headers)


class Observe:
    """Count and time every request by route."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # (method, route, status) -> its counter and histogram: ``labels()`` looks each up under a lock, twice
        # a request. Bounded: routes are templates, methods the parser's, statuses the app's.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _record(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            requests = self.metrics.requests.labels(method, route, str(status))
            series = self._series[(method, route, status)] = (requests, self.metrics.latency.labels(method, route))
        series[0].inc()
        series[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self._record(scope.get("method", ""), route, status, time.perf_counter() - started)


class Shed:
    """Refuse work past the per-client and the overall in-flight limits, before it is routed. Sits inside
    :class:`CachedAnswers`, so an answer from the cache never counts and is never refused."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_in_flight: int, max_per_client: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.max_per_client = max_per_client
        self.in_flight = 0
        self.per_client: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in UNSHED:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        mine = self.per_client.get(client, 0)
        if mine >= self.max_per_client:
            self.metrics.shed.labels("client").inc()
            message = f"more than {self.max_per_client} requests in flight from this client; retry shortly"
            await asyncio.sleep(REFUSAL_DELAY)
            await error_response(429, "TooManyRequests", message, {"Retry-After": "1"})(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.metrics.shed.labels("overall").inc()
            await asyncio.sleep(REFUSAL_DELAY)
            response = error_response(
                503, "Overloaded", "too many requests in flight; retry shortly", {"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        self.per_client[client] = mine + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            left = self.per_client[client] - 1
            if left:
                self.per_client[client] = left
            else:
                del self.per_client[client]


class BodyLimit:
    """Read a request's body whole before the app runs: 413 past ``limit`` bytes (a declared length is refused
    before reading; a chunked body as soon as it passes the limit), 408 when it has not arrived within
    ``timeout`` seconds. Either refusal closes the connection. A request without a body passes straight on."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if (declared is None or declared == b"0") and not chunked:
            await self.app(scope, receive, send)
            return
        closing = {"Connection": "close"}

        def too_large() -> Response:  # made only when sent: most bodies are within the limit
            return error_response(413, "payload_too_large", f"request body over {self.limit} bytes", closing)

        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_large()(scope, receive, send)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    if len(body) > self.limit:
                        await too_large()(scope, receive, send)
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            message_text = f"request body not received within {self.timeout:g}s"
            await error_response(408, "request_timeout", message_text, closing)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _CachedRoute:
    """What the metrics label a replayed answer with (``scope["route"].path``)."""

    path = "/v1/articles/{article_id:path}/related (cached)"


class CachedAnswers:
    """Replay a GET answer the routes made for the current index version, before routing and validation."""

    def __init__(self, app: ASGIApp, service: Service, cache: ResponseCache, max_age: int) -> None:
        self.app = app
        self.service = service
        self.cache = cache
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith("/v1/articles/")
            and self.service.ready
        ):
            version = self.service.index_version
            hit = self.cache.get((version, scope["path"], scope.get("query_string", b"")))
            if hit is not None:
                scope["route"] = _CachedRoute
                if_none_match = dict(scope["headers"]).get(b"if-none-match", b"").decode("latin-1")
                response = cached_response(version, hit[0], hit[1], if_none_match, self.max_age)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
