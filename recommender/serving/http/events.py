"""``POST /v1/events``: the widget's impressions and clicks, stored durably apart from the index.

The endpoint never takes the index's lock: it checks the batch, appends the lines to the process's own
:class:`~recommender.events.log.EventLog` segment and answers once they are written, so an acknowledged event is a
stored event (a crash of the server cannot lose it; the store syncs to disk every second in the background). It is
answered in front of the app's own middleware and routing (:class:`EventsEndpoint`): a page view sends one or two
beacons, and the endpoint has to keep up with the reads.

Guards: a small body limit (:data:`MAX_EVENT_BYTES`), at most :data:`~recommender.events.schema.MAX_BATCH`
events a request, a per-client rate limit (``events_rate`` requests per second, a moving window kept in memory:
the address is used for that and never stored), and the origin: a browser's ``Origin`` must be one the server
allows (``--cors-origin``) or its own. The widget sends ``text/plain`` beacons (no CORS preflight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from recommender.events.log import EventLog, EventLogClosed
from recommender.events.schema import KINDS, EventError, parse_batch
from recommender.serving.http.deadlines import Deadlines
from recommender.serving.http.metrics import Metrics
from recommender.serving.http.schemas import ErrorResponse
from recommender.settings import Settings
from recommender.when import iso

log = logging.getLogger(__name__)

#: Largest events request body (a batch of impressions of 50 long ids fits).
MAX_EVENT_BYTES = 64 * 1024
PATH = "/v1/events"

Answer = tuple[int, dict[str, Any], dict[str, str]]


class EventsResponse(BaseModel):
    accepted: int
    rejected: list[dict[str, Any]]


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class EventIntake:
    """Everything ``POST /v1/events`` does, whichever way the request arrives."""

    def __init__(self, store: EventLog, settings: Settings, metrics: Metrics) -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.store = store
        self.metrics = metrics
        self.allowed = set(settings.cors_origins)
        self.body_timeout = settings.body_timeout
        self._second, self._received = -1, ""
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.rate = RateLimitItemPerSecond(max(1, int(settings.events_rate))) if settings.events_rate > 0 else None
        self._counted = {kind: metrics.events.labels(kind) for kind in KINDS}  # looked up once, not per event

    def _refuse(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Answer:
        self.metrics.events_refused.labels(kind).inc()
        return status, {"error": {"type": kind, "message": message}}, headers or {}

    async def answer(
        self, headers: Mapping[str, str], client: str, own_origin: str, body: Callable[[int], Awaitable[bytes]]
    ) -> Answer:
        """``(status, JSON body, extra headers)`` for one request; ``body(limit)`` reads the request body."""
        origin = headers.get("origin")
        if origin and origin != own_origin and origin not in self.allowed and "*" not in self.allowed:
            return self._refuse(403, "forbidden_origin", f"origin {origin!r} is not allowed to report events")
        if self.rate is not None and not self.limiter.hit(self.rate, "events", client):
            return self._refuse(429, "rate_limited", "too many event requests; retry shortly", {"Retry-After": "1"})
        try:
            batch = parse_batch(await body(MAX_EVENT_BYTES))
        except _TooLarge:
            message = f"events body over {MAX_EVENT_BYTES} bytes"
            return self._refuse(413, "payload_too_large", message, {"Connection": "close"})
        except _TooSlow:
            message = f"request body not received within {self.body_timeout:g}s"
            return self._refuse(408, "request_timeout", message, {"Connection": "close"})
        except EventError as exc:
            return self._refuse(422, "invalid_events", str(exc))
        rejected = [{"index": n, "error": reason} for n, reason in batch.rejected]
        if rejected:
            self.metrics.events_refused.labels("invalid_event").inc(len(rejected))
        if not batch.events:
            return 422, {"error": {"type": "invalid_events", "message": rejected[0]["error"]}}, {}
        received = self._received_at()
        try:
            self.store.append([event.record(received) for event in batch.events])  # a write of a few lines: µs
        except (OSError, EventLogClosed) as exc:
            return self._refuse(503, "events_unavailable", f"events not stored: {exc}", {"Retry-After": "1"})
        for event in batch.events:
            self._counted[event.type].inc()
        return 200, {"accepted": len(batch.events), "rejected": rejected}, {}

    def _received_at(self) -> str:
        """The receipt time written with each event, to the second (formatted once a second, not per request)."""
        second = int(time.time())
        if second != self._second:
            self._second, self._received = second, iso(datetime.fromtimestamp(second, UTC))
        return self._received

    def cors_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """What the CORS middleware adds to a simple request's answer (the endpoint answers outside it)."""
        if origin is None:
            return []
        if "*" in self.allowed:
            return [(b"access-control-allow-origin", b"*")]
        if origin in self.allowed:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        return [(b"vary", b"Origin")]


#: The request headers the endpoint reads.
_WANTED = frozenset((b"origin", b"host", b"content-length"))
#: The answers the endpoint gives (their metric children are looked up once).
_STATUSES = (200, 403, 408, 413, 422, 429, 500, 503)


def _respond(answer: Answer) -> Response:
    status, payload, headers = answer
    return Response(to_json(payload), status, headers=headers, media_type="application/json")


async def _send_answer(answer: Answer, send: Send, more: list[tuple[bytes, bytes]]) -> None:
    """:func:`_respond`'s response (with ``more`` headers), sent as the two ASGI messages it would send."""
    status, payload, extra = answer
    data = to_json(payload)
    headers = [(b"content-length", str(len(data)).encode("latin-1")), (b"content-type", b"application/json")]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    headers += more
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _EventsRoute:
    """What the metrics label these requests with (``scope["route"].path``)."""

    path = PATH


class EventsEndpoint:
    """ASGI middleware answering ``POST /v1/events`` in front of all the app's own middleware and routing (the
    route below documents it); every other request passes to ``app``.

    A page view sends a beacon or two beside its read, so the endpoint must keep up with the cached reads. It
    does itself what the layers behind it would do for it: the request metrics (as :class:`.middleware.Observe`
    counts them), its own smaller body limit and the same body timeout (408), the CORS headers of an allowed
    origin (as the CORS middleware writes them), and a logged 500 for a bug."""

    def __init__(self, app: ASGIApp, intake: EventIntake) -> None:
        self.app = app
        self.intake = intake
        metrics = intake.metrics
        self._latency = metrics.latency.labels("POST", PATH)
        self._by_status = {status: metrics.requests.labels("POST", PATH, str(status)) for status in _STATUSES}
        self._deadlines = Deadlines(intake.body_timeout)  # the body timeout without a timer per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope["route"] = _EventsRoute
        headers: dict[str, str] = {}
        for name, value in scope.get("headers") or ():
            name = name.lower()
            if name in _WANTED:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        client = scope["client"][0] if scope.get("client") else "-"
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        deadlines = self._deadlines

        async def body(limit: int) -> bytes:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _TooLarge
            chunks, size, more = [], 0, True
            task = deadlines.start()
            try:
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge
                    chunks.append(chunk)
                    more = message.get("more_body", False)
            except asyncio.CancelledError:
                if deadlines.expired(task):
                    raise _TooSlow from None
                raise
            finally:
                deadlines.stop(task)
            return b"".join(chunks)

        try:
            answer = await self.intake.answer(headers, client, own, body)
        except Exception:  # a bug: logged, and the client gets the API's error shape (as the app's handler does)
            log.exception("unexpected error on POST %s", PATH)
            answer = 500, {"error": {"type": "internal_error", "message": "internal error (logged on the server)"}}, {}
        await _send_answer(answer, send, self.intake.cors_headers(headers.get("origin")))
        counter = self._by_status.get(answer[0]) or self.intake.metrics.requests.labels("POST", PATH, str(answer[0]))
        counter.inc()
        self._latency.observe(time.perf_counter() - started)


def build_events_router(intake: EventIntake) -> APIRouter:
    router = APIRouter()

    @router.post(
        PATH,
        response_model=EventsResponse,
        responses={code: {"model": ErrorResponse} for code in (403, 413, 422, 429, 503)},
    )
    async def post_events(request: Request) -> Response:
        """Store a batch ``{"events": [...]}`` of impressions and clicks (see the README); 200 once stored.

        Answered by :class:`EventsEndpoint` before routing; this route documents it (and answers where the
        router is used without that middleware)."""

        async def body(limit: int) -> bytes:
            data = b""
            async for chunk in request.stream():
                data += chunk
                if len(data) > limit:
                    raise _TooLarge
            return data

        client = request.client.host if request.client else "-"
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return _respond(await intake.answer(request.headers, client, own, body))

    return router
