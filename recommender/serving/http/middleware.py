"""ASGI middleware of the app (plain ASGI: ``BaseHTTPMiddleware`` costs a task per request).

- :class:`Observe`: metrics for every request, and load shedding (503) when too many are in flight;
- :class:`BodyLimit`: 413 for request bodies over the limit, declared or not;
- :class:`CachedAnswers`: a GET whose answer the routes already made for this index version is sent before
  routing and validation (most of a cached request's cost). It only replays the routes' own answers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.serving.http.cache import ResponseCache
from recommender.serving.http.errors import error_response
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
    """Count and time every request by route; shed with 503 when ``max_in_flight`` are already running."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_in_flight: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight and scope.get("path", "") not in UNSHED:
            self.metrics.shed.inc()
            response = error_response(
                503, "Overloaded", "too many requests in flight; retry shortly", {"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
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
            self.in_flight -= 1
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not they declare a Content-Length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(413, "payload_too_large", f"request body over {self.limit} bytes")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await too_large(scope, receive, send)


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
