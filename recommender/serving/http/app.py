"""The HTTP app: a thin FastAPI layer over :class:`recommender.serving.service.Service`.

Routes (OpenAPI at ``/openapi.json``, docs at ``/docs``)::

    GET    /v1/articles/{id}/related?k=5[&section&language&since&until&exclude]   the stored list (a lookup)
    GET    /v1/articles/{id}/related.html?k=5                                     the same as an HTML fragment
    POST   /v1/related            {"text": ..., "k": 5} or {"url": ...}           drafts and pages
    PUT    /v1/articles/{id}      article JSON (API key)                          publish / edit
    DELETE /v1/articles/{id}      (API key)                                       unpublish
    GET/POST /v1/rules, DELETE /v1/rules/{id}   (API key)                         editors' rules (.controls)
    POST   /v1/events             {"events": [...]}                               impressions, clicks (.events)
    GET    /livez  /readyz  /metrics  /widget.js  /demo

Errors always have the shape ``{"error": {"type": ..., "message": ...}}`` (:mod:`.errors`); shapes are in
:mod:`.schemas`, routes in :mod:`.routes`, middleware in :mod:`.middleware`, worker processes in :mod:`.workers`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from recommender import __version__
from recommender.errors import RecommenderError
from recommender.events.log import EventLog
from recommender.serving.http.cache import ResponseCache
from recommender.serving.http.controls import build_rules_router
from recommender.serving.http.errors import install_error_handlers
from recommender.serving.http.events import EventIntake, EventsEndpoint, build_events_router
from recommender.serving.http.metrics import Metrics
from recommender.serving.http.middleware import BodyLimit, CachedAnswers, Observe, Shed
from recommender.serving.http.querymodel import QueryModelRoute
from recommender.serving.http.routes import add_routes
from recommender.serving.http.schemas import ErrorResponse
from recommender.serving.service import Service
from recommender.settings import Settings

log = logging.getLogger(__name__)

#: FastAPI's native OpenTelemetry, all of it off (its per-request check reads the environment three times).
TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False}


def fastapi_telemetry(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """FastAPI's telemetry settings: its defaults (OpenTelemetry through the global providers) when the operator
    configures OpenTelemetry in the environment (``OTEL_*``, as ``opentelemetry-instrument`` does, or
    ``FASTAPI_OTEL_AUTO_CONFIGURE``), else off: the server's own metrics are Prometheus' (``/metrics``)."""
    if any(name.startswith(("OTEL_", "FASTAPI_OTEL_")) for name in environ):
        return None
    return dict(TELEMETRY_OFF)


async def follow_index(service: Service) -> None:
    """Other processes' writes and rebuilt indexes picked up every ``check_interval``: a look on the event loop
    (:meth:`Service.looks_changed`, microseconds), the work (replaying changes, a reload) in a thread only when
    something changed. A polling thread would take the GIL from the requests at every round, which measured as
    a longer latency tail."""
    while True:
        await asyncio.sleep(service.check_interval)
        try:
            if service.looks_changed():
                await run_in_threadpool(service.follow)
        except Exception:  # the server's log; the follower goes on at the next round
            log.exception("following the index failed")


def create_app(service: Service, settings: Settings | None = None) -> FastAPI:
    """The FastAPI app serving ``service``; the index is loaded at start-up if it is not yet."""
    settings = settings or Settings()
    metrics = Metrics()
    cache = ResponseCache(settings.cache_bytes)
    events = EventLog(settings.events_folder if settings.events_dir else service.index_dir / "events")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not service.ready:
            try:
                service.load()
            except RecommenderError as exc:
                service.last_error = str(exc)
                log.error("index not loaded, /readyz will say so: %s", exc)
        service.start(follow=False)
        follower = asyncio.create_task(follow_index(service)) if service.check_interval > 0 else None
        yield
        if follower is not None:
            follower.cancel()
        service.close()
        events.close()

    # /docs serves Swagger UI's files from the fastapi-offline package (no CDN: it works offline);
    # no slash redirects: Starlette builds them from the Host header, an open redirect for any client
    app = FastAPIOffline(
        title="recommender",
        summary='"Also Read" suggestions for news sites',
        version=__version__,
        lifespan=lifespan,
        responses={
            503: {"model": ErrorResponse, "description": "index not ready, busy or overloaded"},
            507: {"model": ErrorResponse, "description": "the disk is full: the write was not done"},
        },
        redoc_url=None,
        redirect_slashes=False,
        telemetry=fastapi_telemetry(os.environ),
    )
    install_error_handlers(app, service)
    add_routes(app.router, service, settings, cache, metrics)
    # the list routes first: they are most requests, and each route before them (the docs') is one more match
    routes = app.router.routes
    routes[:] = sorted(routes, key=lambda route: not isinstance(route, QueryModelRoute))  # (a stable sort)
    app.include_router(build_rules_router(service, settings))
    intake = EventIntake(events, settings, metrics)
    app.include_router(build_events_router(intake))
    # added innermost first: shedding sees only what the cache did not answer; then replayed answers, CORS,
    # the body limit, and metrics around all. The events endpoint is in front of the whole stack.
    app.add_middleware(
        Shed, metrics=metrics, max_in_flight=settings.max_in_flight, max_per_client=settings.max_per_client
    )
    app.add_middleware(CachedAnswers, service=service, cache=cache, max_age=settings.cache_max_age)
    if settings.cors_origins:  # else no page elsewhere may read answers: nothing to add, not even "Vary: Origin"
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            max_age=600,
        )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout)
    app.add_middleware(Observe, metrics=metrics)
    app.add_middleware(EventsEndpoint, intake=intake)  # beacons: in front of it all, metrics included (.events)
    return app


__all__ = ["create_app"]
