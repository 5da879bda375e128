"""``POST /v1/events``: the widget's impressions and clicks, stored durably apart from the index.

The route never takes the index's lock and never touches the disk itself: it checks the batch, hands the lines to
the process's :class:`~recommender.events.log.EventLog` (whose own thread writes and syncs them together with
whatever else is queued) and answers once they are durable, so an acknowledged event is a stored event.

Guards: a small body limit (:data:`MAX_EVENT_BYTES`), at most :data:`~recommender.events.schema.MAX_BATCH`
events a request, a per-client rate limit (``events_rate`` requests per second, a moving window kept in memory:
the address is used for that and never stored), and the origin: a browser's ``Origin`` must be one the server
allows (``--cors-origin``) or its own. The widget sends ``text/plain`` beacons (no CORS preflight).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from recommender.events.log import EventLog, EventLogClosed
from recommender.events.schema import EventError, parse_batch
from recommender.serving.http.errors import error_response
from recommender.serving.http.metrics import Metrics
from recommender.serving.http.schemas import ErrorResponse
from recommender.settings import Settings

#: Largest events request body (a batch of impressions of 50 long ids fits).
MAX_EVENT_BYTES = 64 * 1024


class EventsResponse(BaseModel):
    accepted: int
    rejected: list[dict[str, Any]]


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_events_router(store: EventLog, settings: Settings, metrics: Metrics) -> APIRouter:
    from limits import RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter

    router = APIRouter()
    limiter = MovingWindowRateLimiter(MemoryStorage())
    rate = RateLimitItemPerSecond(max(1, int(settings.events_rate))) if settings.events_rate > 0 else None
    allowed = set(settings.cors_origins)

    def refuse(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.events_refused.labels(kind).inc()
        return error_response(status, kind, message, headers)

    @router.post(
        "/v1/events",
        response_model=EventsResponse,
        responses={
            403: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            429: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    async def post_events(request: Request) -> JSONResponse:
        """Store a batch ``{"events": [...]}`` of impressions and clicks (see the README); 200 once stored."""
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin and origin != own and origin not in allowed and "*" not in allowed:
            return refuse(403, "forbidden_origin", f"origin {origin!r} is not allowed to report events")
        client = request.client.host if request.client else "-"
        if rate is not None and not limiter.hit(rate, "events", client):
            return refuse(429, "rate_limited", "too many event requests; retry shortly", {"Retry-After": "1"})
        try:
            batch = parse_batch(await _body(request, MAX_EVENT_BYTES))
        except _TooLarge:
            return refuse(413, "payload_too_large", f"events body over {MAX_EVENT_BYTES} bytes")
        except EventError as exc:
            return refuse(422, "invalid_events", str(exc))
        rejected = [{"index": n, "error": reason} for n, reason in batch.rejected]
        if rejected:
            metrics.events_refused.labels("invalid_event").inc(len(rejected))
        if not batch.events:
            return error_response(422, "invalid_events", "; ".join(f"{r['index']}: {r['error']}" for r in rejected))
        now = datetime.now(UTC)
        try:
            await asyncio.wrap_future(store.append([event.record(now) for event in batch.events]))
        except (OSError, EventLogClosed) as exc:
            return refuse(503, "events_unavailable", f"events not stored: {exc}", {"Retry-After": "1"})
        for event in batch.events:
            metrics.events.labels(event.type).inc()
        return JSONResponse({"accepted": len(batch.events), "rejected": rejected})

    return router
