"""The HTTP API: a thin FastAPI layer over :class:`recommender.serving.service.Service`.

Routes (OpenAPI at ``/openapi.json``, docs at ``/docs``)::

    GET    /v1/articles/{id}/related?k=5[&section&since&until&exclude]   lookup of the precomputed list
    GET    /v1/articles/{id}/related.html?k=5                              the same as an HTML fragment
    POST   /v1/related            {"text": ..., "k": 5} or {"url": ...}    drafts and pages
    PUT    /v1/articles/{id}      article JSON (API key)                   publish / edit
    DELETE /v1/articles/{id}      (API key)                                unpublish
    GET    /livez  /readyz  /metrics  /widget.js  /demo

Errors always have the shape ``{"error": {"type": ..., "message": ...}}``; one table maps domain errors to
statuses (:data:`ERROR_STATUS`).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.errors import (
    ArticleNotFound,
    BatchRejected,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    InvalidArticle,
    ModelUnavailable,
    NotReady,
    Overloaded,
    RecommenderError,
    SourceError,
)
from recommender.recommender import RelatedList
from recommender.serving.service import Service

log = logging.getLogger(__name__)

MAX_K = 50

#: One table from domain error to HTTP status.
ERROR_STATUS: dict[type[RecommenderError], int] = {
    ArticleNotFound: 404,
    InvalidArticle: 422,
    BatchRejected: 422,
    SourceError: 422,
    IndexMismatch: 409,
    IndexBusy: 503,
    NotReady: 503,
    IndexNotFound: 503,
    IndexCorrupt: 503,
    ModelUnavailable: 503,
    Overloaded: 503,
}


K = Annotated[int, Query(ge=1, le=MAX_K, description="how many stories (1-50)")]
Section = Annotated[str | None, Query(description="only stories of this section")]
Since = Annotated[datetime | None, Query(description="only stories published on or after")]
Until = Annotated[datetime | None, Query(description="only stories published on or before")]
Exclude = Annotated[list[str], Query(description="ids never to suggest (repeat or comma-separate)")]


@dataclass
class ApiConfig:
    """Limits and switches of the HTTP layer (each has a CLI flag and a ``RECOMMENDER_*`` twin)."""

    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 1_000_000
    max_text_chars: int = 20_000
    cache_max_age: int = 60
    max_in_flight: int = 64
    response_cache_size: int = 10_000


class RelatedItem(BaseModel):
    id: str
    title: str
    url: str | None
    score: float = Field(description="cosine similarity to the story, higher is closer")
    relevance: float | None = Field(
        default=None,
        description="the ranking score the list is ordered by (cosine blended with keyword evidence, times freshness)",
    )
    published_at: str | None
    section: str | None


class RelatedResponse(BaseModel):
    article_id: str | None
    related: list[RelatedItem]
    short: bool = Field(description="fewer than k related stories exist above the minimum similarity")
    model: str
    index_version: str


class TextQuery(BaseModel):
    text: str | None = Field(default=None, description="free text, e.g. a draft")
    url: str | None = Field(default=None, description="the URL of an indexed page")
    k: int = Field(default=5, ge=1, le=MAX_K)
    section: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def one_of_text_or_url(self) -> TextQuery:
        if bool(self.text and self.text.strip()) == bool(self.url):
            raise ValueError("give exactly one of 'text' or 'url'")
        return self


class WriteResponse(BaseModel):
    id: str
    status: str
    index_version: str


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not they declare a Content-Length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _error(413, "payload_too_large", f"request body over {self.limit} bytes")(scope, receive, send)
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
            await _error(413, "payload_too_large", f"request body over {self.limit} bytes")(scope, receive, send)


class _TooLarge(Exception):
    pass


class Metrics:
    """Prometheus metrics in a registry of this app's own (several apps can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "recommender_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "recommender_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.articles = Gauge("recommender_index_articles", "Articles in the index", registry=self.registry)
        self.index_bytes = Gauge("recommender_index_bytes", "Size of the saved FAISS file", registry=self.registry)
        self.version = Gauge(
            "recommender_index_info",
            "Index version (label) and model",
            ["index_version", "model"],
            registry=self.registry,
        )
        self.shed = Counter(
            "recommender_http_shed_total", "Requests refused because too many were in flight", registry=self.registry
        )


def create_app(service: Service, config: ApiConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``service``; the index is loaded at start-up if it is not yet."""
    config = config or ApiConfig()
    metrics = Metrics()
    responses = ResponseCache(config.response_cache_size)
    in_flight = 0

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if not service.ready:
            try:
                service.load()
            except RecommenderError as exc:
                service.last_error = str(exc)
                log.error("index not loaded, /readyz will say so: %s", exc)
        service.start()
        yield
        service.close()

    app = FastAPI(
        title="recommender",
        summary='"Also Read" suggestions for news sites',
        version="0.1.0",
        lifespan=lifespan,
        responses={503: {"model": ErrorResponse, "description": "index not ready, busy or overloaded"}},
    )

    # -- errors -------------------------------------------------------------------------------------------------
    @app.exception_handler(RecommenderError)
    async def domain_error(request: Request, exc: RecommenderError) -> JSONResponse:
        status = next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 500)
        headers = {"Retry-After": "1"} if status == 503 else None
        return _error(status, type(exc).__name__, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return _error(
            exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail), getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug, logged
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal error (logged on the server)")

    # -- middleware: metrics + load shedding (plain ASGI: BaseHTTPMiddleware costs a task per request) --------
    class Observe:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal in_flight
            if scope["type"] != "http":
                await self.inner(scope, receive, send)
                return
            path = scope.get("path", "")
            if in_flight >= config.max_in_flight and path not in ("/livez", "/readyz", "/metrics"):
                metrics.shed.inc()
                await _error(503, "Overloaded", "too many requests in flight; retry shortly", {"Retry-After": "1"})(
                    scope, receive, send
                )
                return
            in_flight += 1
            started = time.perf_counter()
            status = 500

            async def record(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.inner(scope, receive, record)
            finally:
                in_flight -= 1
                route = getattr(scope.get("route"), "path", "unmatched")
                method = scope.get("method", "")
                metrics.requests.labels(method, route, str(status)).inc()
                metrics.latency.labels(method, route).observe(time.perf_counter() - started)

    # -- helpers ------------------------------------------------------------------------------------------------
    async def cached(request: Request, make: Callable[[], bytes], media_type: str = "application/json") -> Response:
        """A GET answer from the in-process cache (keyed by index version and query), or made and kept.

        Any write changes the version, so a cached answer is never stale; the ETag is the version too.
        """
        service.refresh_if_due()
        version = service.index_version
        etag = f'W/"{version}"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={config.cache_max_age}"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        key = (version, request.scope["path"], request.scope.get("query_string", b""))
        hit = responses.get(key)
        if hit is not None:
            return Response(hit[0], media_type=hit[1], headers=headers)
        payload = await run_in_threadpool(make)  # a miss may wait for the index lock: never on the event loop
        responses.put(key, (payload, media_type))
        return Response(payload, media_type=media_type, headers=headers)

    class CachedGets:
        """Answer a GET the cache already holds before routing and validation (most of a request's cost)."""

        route = type("CachedRoute", (), {"path": "/v1/articles/{article_id:path}/related (cached)"})()
        lookup_route = type("LookupRoute", (), {"path": "/v1/articles/{article_id:path}/related"})()

        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] == "http"
                and scope["method"] == "GET"
                and scope["path"].startswith("/v1/articles/")
                and service.ready
            ):
                service.refresh_if_due()  # other processes' writes must change the version here too
                version = service.index_version
                hit = responses.get((version, scope["path"], scope.get("query_string", b"")))
                if hit is not None:
                    scope["route"] = self.route
                    await self.answer(scope, send, version, *hit)
                    return
                if await self.plain_miss(scope, send, version):
                    return
            await self.inner(scope, receive, send)

        @staticmethod
        async def answer(scope: Scope, send: Send, version: str, payload: bytes, media_type: str) -> None:
            """Send an answer made for ``version``, with its ETag and caching headers (304 when the client
            already holds it), as the routes' :func:`cached` does."""
            etag = f'W/"{version}"'.encode()
            headers = [(b"etag", etag), (b"cache-control", f"public, max-age={config.cache_max_age}".encode())]
            if etag in dict(scope["headers"]).get(b"if-none-match", b""):
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            headers += [(b"content-type", media_type.encode()), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

        async def plain_miss(self, scope: Scope, send: Send, version: str) -> bool:
            """Answer an uncached ``GET .../related`` with no query but ``k`` without FastAPI's routing and
            parameter validation (the cost of a first request, with the list itself a lookup). Anything else
            -- filters, an unknown id, a bad k -- goes to the route, which answers (and explains errors) itself."""
            match = _PLAIN_RELATED.fullmatch(scope["path"])
            k = _plain_k(scope.get("query_string", b""))
            if match is None or k is None:
                return False
            article_id = match.group(1)
            try:
                result = service.related_nowait(article_id, k)
                if result is None:  # a write holds the index: wait for it off the event loop
                    result = await run_in_threadpool(service.related, article_id, k)
            except RecommenderError:
                return False
            payload = encoded(article_id, result)
            responses.put((version, scope["path"], scope.get("query_string", b"")), (payload, "application/json"))
            scope["route"] = self.lookup_route
            await self.answer(scope, send, version, payload, "application/json")
            return True

    app.add_middleware(CachedGets)  # innermost: CORS headers and metrics still apply to cached answers
    app.add_middleware(
        CORSMiddleware,
        allow_origins=config.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(Observe)

    def body(article_id: str | None, related: RelatedList) -> dict[str, Any]:
        return {
            "article_id": article_id,
            "related": [s.to_dict() for s in related.items],
            "short": related.short,
            "model": service.model,
            "index_version": service.index_version,
        }

    def encoded(article_id: str | None, related: RelatedList) -> bytes:
        """The JSON answer for a related list, as sent and cached."""
        return json.dumps(body(article_id, related), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def filters(
        section: str | None, since: datetime | None, until: datetime | None, exclude: list[str]
    ) -> dict[str, Any]:
        ids = [part for item in exclude for part in item.split(",") if part]
        return {"section": section, "since": _aware(since), "until": _aware(until), "exclude": ids or None}

    def require_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not config.api_key:
            raise StarletteHTTPException(403, "writes are disabled: the server has no API key configured")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), config.api_key.encode()):
            raise StarletteHTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})

    # -- routes -------------------------------------------------------------------------------------------------
    @app.get(
        "/v1/articles/{article_id:path}/related.html",
        response_class=HTMLResponse,
        responses={404: {"model": ErrorResponse}},
    )
    async def related_html(
        request: Request,
        article_id: str,
        k: K = 5,
        section: Section = None,
        since: Since = None,
        until: Until = None,
        exclude: Exclude = [],
    ) -> Response:  # noqa: B006 - FastAPI copies defaults
        """The article's "Also Read" list as an HTML fragment (empty when there is nothing to show)."""

        def make() -> bytes:
            related = service.related(article_id, k, **filters(section, since, until, exclude))
            return render_fragment(related).encode("utf-8")

        return await cached(request, make, "text/html; charset=utf-8")

    @app.get(
        "/v1/articles/{article_id:path}/related",
        response_model=RelatedResponse,
        responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    async def related(
        request: Request,
        article_id: str,
        k: K = 5,
        section: Section = None,
        since: Since = None,
        until: Until = None,
        exclude: Exclude = [],
    ) -> Response:  # noqa: B006
        """The article's related stories, from its precomputed list (a lookup, not a search)."""

        def make() -> bytes:
            result = service.related(article_id, k, **filters(section, since, until, exclude))
            return encoded(article_id, result)

        return await cached(request, make)

    @app.post(
        "/v1/related",
        response_model=RelatedResponse,
        responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    def related_post(query: TextQuery) -> dict[str, Any]:
        """Related stories for free text (a draft) or for an indexed page's URL."""
        chosen = filters(query.section, query.since, query.until, query.exclude)
        if query.url:
            article, result = service.related_to_url(query.url, query.k, **chosen)
            return body(article.id, result)
        text = query.text or ""
        if len(text) > config.max_text_chars:
            raise InvalidArticle("text", f"is {len(text):,} characters (limit {config.max_text_chars:,})")
        return body(None, service.related_to_text(text, query.k, **chosen))

    @app.put(
        "/v1/articles/{article_id:path}",
        response_model=WriteResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    def put_article(article_id: str, article: dict[str, Any]) -> dict[str, Any]:
        """Publish or edit: embedded now; enters its neighbours' lists before this returns. Durable on 2xx."""
        status = service.upsert(article_id, article)
        return {"id": article_id, "status": status, "index_version": service.index_version}

    @app.delete(
        "/v1/articles/{article_id:path}",
        response_model=WriteResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    )
    def delete_article(article_id: str) -> dict[str, Any]:
        """Unpublish: the story leaves every list before this returns."""
        if not service.delete(article_id):
            raise ArticleNotFound(article_id)
        return {"id": article_id, "status": "deleted", "index_version": service.index_version}

    @app.get("/livez")
    def livez() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    def readyz() -> Response:
        """The index is loaded and passed its checks."""
        if not service.ready:
            return _error(503, "NotReady", service.last_error or "index not loaded yet")
        info = service.info()
        return JSONResponse(
            {
                "status": "ready",
                "articles": info["articles"],
                "index_version": info["index_version"],
                "last_error": service.last_error,
            }
        )

    @app.get("/metrics", response_class=Response)
    def metrics_route() -> Response:
        """Prometheus metrics: requests, latencies, index size and version."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if service.ready:
            info = service.info()
            metrics.articles.set(info["articles"])
            metrics.index_bytes.set(info["index_bytes"] or 0)
            metrics.version.clear()
            metrics.version.labels(info["index_version"], info["model"]).set(1)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/widget.js", response_class=Response)
    def widget() -> Response:
        """The embeddable widget (one script tag; see the README)."""
        script = resources.files("recommender").joinpath("static/widget.js").read_text("utf-8")
        return Response(
            script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": f"public, max-age={config.cache_max_age}"},
        )

    @app.get("/demo", response_class=HTMLResponse)
    def demo(id: str | None = None) -> HTMLResponse:  # noqa: A002 - the query parameter's public name
        """A page that shows one story with the widget under it (for trying the service out)."""
        rec_info = service.info() if service.ready else {}
        return HTMLResponse(render_demo(service, id, rec_info))

    return app


_PLAIN_RELATED = re.compile(r"/v1/articles/(.+)/related")


def _plain_k(query: bytes) -> int | None:
    """k from a query string that holds nothing else (empty = the default 5); None for anything else."""
    if not query:
        return 5
    name, _, value = query.partition(b"=")
    if name != b"k" or not value.isdigit() or len(value) > 3:
        return None
    k = int(value)
    return k if 1 <= k <= MAX_K else None


class ResponseCache:
    """A bounded LRU of encoded GET answers. Keys carry the index version, so entries never go stale: after a
    write, new keys are used and old ones age out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, bytes], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, bytes]) -> tuple[bytes, str] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, bytes], value: tuple[bytes, str]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def render_fragment(related: RelatedList, heading: str = "Also read") -> str:
    """An accessible list (nav + heading + links), or the empty string: never an empty or broken box."""
    items = [s for s in related.items if s.url]
    if not items:
        return ""
    links = "".join(
        f'<li class="also-read__item"><a class="also-read__link" href="{html.escape(s.url or "", quote=True)}">'
        f"{html.escape(s.title or s.id)}</a></li>"
        for s in items
    )
    return (
        f'<nav class="also-read" aria-label="{html.escape(heading, quote=True)}">'
        f'<h2 class="also-read__heading">{html.escape(heading)}</h2><ul class="also-read__list">{links}</ul></nav>'
    )


def render_demo(service: Service, article_id: str | None, info: dict[str, Any]) -> str:
    """A minimal article page embedding the widget exactly as a site would."""
    title, text = "recommender demo", "Pass ?id=ARTICLE_ID to show a story with its Also Read box."
    if article_id and service.ready:
        try:
            article = service.get(article_id)
            title, text = article.title, article.body
        except ArticleNotFound:
            text = f"No article {article_id!r} in the index."
    aid = html.escape(article_id or "", quote=True)
    widget = (
        f'<div class="also-read-slot" data-also-read data-article-id="{aid}" data-k="5" '
        f'data-url-template="/demo?id={{id}}" style="min-height:16em"></div>'
        if article_id
        else ""
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}</style>
</head><body><main><article><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></article>{widget}</main>
<footer><small>{html.escape(str(info.get("articles", "?")))} articles · model {html.escape(str(info.get("model", "?")))}</small></footer>
<script src="/widget.js" async></script></body></html>"""


def serve(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    """Run ``app`` with uvicorn in this process (see :func:`serve_workers` for several)."""
    import uvicorn

    uvicorn.run(
        app, host=host, port=port, log_level=log_level, proxy_headers=True, access_log=False, loop="auto", http="auto"
    )  # uvloop and httptools when installed (the serve extra has them)


#: Where :func:`app_from_environment` reads the settings of a worker process.
WORKER_ENV = {
    "index": "RECOMMENDER_INDEX",
    "backend": "RECOMMENDER_BACKEND",
    "api_key": "RECOMMENDER_API_KEY",
    "cors_origins": "RECOMMENDER_CORS_ORIGINS",
    "max_body_bytes": "RECOMMENDER_MAX_BODY_BYTES",
    "max_text_chars": "RECOMMENDER_MAX_TEXT_CHARS",
    "cache_max_age": "RECOMMENDER_CACHE_MAX_AGE",
    "max_in_flight": "RECOMMENDER_MAX_IN_FLIGHT",
    "lock_timeout": "RECOMMENDER_LOCK_TIMEOUT",
}


def app_from_environment() -> FastAPI:
    """The app of one worker process (a uvicorn factory): settings come from ``RECOMMENDER_*`` variables.

    Workers are replicas of one index folder: each holds the index in memory, writes go through the catalog's
    lock and change log, and every worker replays the others' writes before answering (as separate ``serve``
    processes behind a load balancer do).
    """
    env = {name: os.environ.get(var) for name, var in WORKER_ENV.items()}
    config = ApiConfig(
        api_key=env["api_key"] or None,
        cors_origins=[o for o in (env["cors_origins"] or "").split(",") if o],
        max_body_bytes=int(env["max_body_bytes"] or ApiConfig.max_body_bytes),
        max_text_chars=int(env["max_text_chars"] or ApiConfig.max_text_chars),
        cache_max_age=int(env["cache_max_age"] or ApiConfig.cache_max_age),
        max_in_flight=int(env["max_in_flight"] or ApiConfig.max_in_flight),
    )
    service = Service(
        env["index"] or "index",
        backend=env["backend"] or None,
        lock_timeout=float(env["lock_timeout"] or 5.0),
        check_interval=WORKER_CHECK_INTERVAL,
    )
    return create_app(service, config)


#: Workers look for each other's writes this often (seconds): a story PUT through one worker is in every
#: worker's answers within this time.
WORKER_CHECK_INTERVAL = 0.05


def serve_workers(settings_: dict[str, Any], host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Run ``workers`` uvicorn worker processes on one port, each a replica of the index (for multi-core boxes)."""
    import uvicorn

    for name, var in WORKER_ENV.items():
        value = settings_.get(name)
        if value is None or value == []:
            os.environ.pop(var, None)
        else:
            os.environ[var] = ",".join(value) if isinstance(value, list) else str(value)
    uvicorn.run(
        "recommender.serving.http.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
        access_log=False,
        loop="auto",
        http="auto",
    )


__all__ = [
    "ApiConfig",
    "ERROR_STATUS",
    "app_from_environment",
    "create_app",
    "render_fragment",
    "serve",
    "serve_workers",
]
