"""The routes: thin translations between HTTP and :class:`recommender.serving.service.Service`.

GET answers are encoded once per index version and kept in the :class:`ResponseCache`; the
:class:`~recommender.serving.http.middleware.CachedAnswers` middleware replays them. A first request looks the
stored list up on the event loop only when that cannot wait (the index lock is free and the list answers it);
anything else runs in a worker thread.

(No ``from __future__ import annotations`` here: the list routes' query models are made per server, for its
configured k, and FastAPI reads an endpoint's annotations as objects.)
"""

import asyncio
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import pydantic_core
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from recommender.errors import ArticleNotFound, InvalidArticle, InvalidRequest
from recommender.events.variants import assign_variant
from recommender.ranking.policy import Filters
from recommender.serving.http.auth import key_required
from recommender.serving.http.cache import ResponseCache
from recommender.serving.http.errors import error_response
from recommender.serving.http.metrics import Metrics
from recommender.serving.http.middleware import cached_response
from recommender.serving.http.querymodel import QueryModelRoute
from recommender.serving.http.render import render_demo, render_fragment
from recommender.serving.http.schemas import (
    ErrorResponse,
    RelatedHtmlQuery,
    RelatedQuery,
    RelatedResponse,
    TextQuery,
    WriteResponse,
    related_query,
)
from recommender.serving.service import Busy, Served, Service
from recommender.settings import Settings

#: How often, and how long each time, a first request waits on the event loop for the index lock before it hands
#: its read to a worker thread (a write or a live search holds the lock longer than this).
BUSY_RETRIES = 4
BUSY_WAIT_SECONDS = 0.0005


def encode(article_id: str | None, served: Served) -> bytes:
    """The JSON answer for a related list, as sent and cached (the static export writes the same shape): compact
    UTF-8, by pydantic-core's encoder (a sixth of :func:`json.dumps`'s time, on the path of every first read)."""
    return pydantic_core.to_json(served.body(article_id))


def pick_variant(
    service: Service, request: Request, variant: str | None, reader: str | None
) -> tuple[str | None, bytes | None]:
    """The variant a request reads (``variant`` as given, else the one ``reader`` hashes to; None when neither)
    and the query string its answer is cached under: with ``reader`` replaced by the variant, so readers of one
    variant share cached answers."""
    if variant is None and reader is None:
        return None, None
    names = service.variants()
    if variant is not None and variant not in names:
        raise InvalidRequest(f"variant {variant!r} is not one of {', '.join(names)}")
    if variant is None and reader is not None:
        variant = assign_variant(reader, names)
    if reader is None:
        return variant, None
    pairs = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k not in ("reader", "variant")]
    return variant, urlencode([*pairs, ("variant", variant or "")]).encode("latin-1")


def add_routes(router: APIRouter, service: Service, settings: Settings, cache: ResponseCache, metrics: Metrics) -> None:
    """Add the routes to ``router``: the app's own (an included router is one more level of routing for every
    request: about a tenth of a first read's time in FastAPI 0.165)."""
    JsonQuery = related_query(RelatedQuery, settings.k)  # noqa: N806 - a class
    HtmlQuery = related_query(RelatedHtmlQuery, settings.k)  # noqa: N806

    async def answer(
        request: Request,
        quick: Callable[[], Served | Busy | None],
        read: Callable[[], Served],
        render: Callable[[Served], bytes],
        media_type: str,
        query: bytes | None = None,
    ) -> Response:
        """A GET answer: from the cache, else made (on the loop when ``quick`` can, else in a thread) and kept
        under the version it was made for (and ``query``, when the request's own query string is not the key)."""
        if_none_match = request.headers.get("if-none-match", "")
        key = (request.scope["path"], request.scope.get("query_string", b"") if query is None else query)
        for attempt in range(BUSY_RETRIES + 1):
            version = service.index_version
            hit = cache.get((version, *key))
            if hit is not None:  # (after a wait: another request may have made it meanwhile)
                return cached_response(version, hit[0], hit[1], if_none_match, settings.cache_max_age)
            quickly = quick()
            if not isinstance(quickly, Busy) or attempt == BUSY_RETRIES:
                break
            # The lock is held: mostly for a moment (the index following other processes' writes, a read in a
            # thread). Waiting here a little keeps reads on the loop; handing each to a thread instead would
            # queue them all on the lock in threads, and keep them there.
            await asyncio.sleep(BUSY_WAIT_SECONDS)
        served = quickly if isinstance(quickly, Served) else await run_in_threadpool(read)
        payload = render(served)
        cache.put((served.version, *key), (payload, media_type))
        return cached_response(served.version, payload, media_type, if_none_match, settings.cache_max_age)

    async def related_html(
        request: Request,
        article_id: str,
        query: Annotated[HtmlQuery, Query()],  # type: ignore[valid-type] # made per server: k's default
    ) -> Response:
        """The article's "Also Read" list as an HTML fragment (empty when there is nothing to show); links go to
        ``url_template`` with ``{id}`` filled in when given, as the widget's ``data-url-template`` does."""
        q: RelatedHtmlQuery = query
        filters = Filters.build(q.section, q.language, q.since, q.until, q.exclude)
        chosen, cache_query = pick_variant(service, request, q.variant, q.reader)
        return await answer(
            request,
            lambda: service.related_nowait(article_id, q.k, filters, explain=q.explain, variant=chosen),
            lambda: service.related(article_id, q.k, filters, explain=q.explain, variant=chosen),
            lambda served: render_fragment(served.related, url_template=q.url_template).encode("utf-8"),
            "text/html; charset=utf-8",
            cache_query,
        )

    async def related(
        request: Request,
        article_id: str,
        query: Annotated[JsonQuery, Query()],  # type: ignore[valid-type] # made per server: k's default
    ) -> Response:
        """The article's related stories, from its precomputed list (a lookup, not a search), editors' rules
        applied; ``explain`` adds a reason to each, ``reader`` or ``variant`` picks an A/B test's variant."""
        q: RelatedQuery = query
        filters = Filters.build(q.section, q.language, q.since, q.until, q.exclude)
        chosen, cache_query = pick_variant(service, request, q.variant, q.reader)
        return await answer(
            request,
            lambda: service.related_nowait(article_id, q.k, filters, explain=q.explain, variant=chosen),
            lambda: service.related(article_id, q.k, filters, explain=q.explain, variant=chosen),
            lambda served: encode(article_id, served),
            "application/json",
            cache_query,
        )

    # the list routes validate their query as one model each (.querymodel); the JSON one first: most requests
    router.add_api_route(
        "/v1/articles/{article_id:path}/related",
        related,
        methods=["GET"],
        response_model=RelatedResponse,
        responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
        route_class_override=QueryModelRoute,
    )
    router.add_api_route(
        "/v1/articles/{article_id:path}/related.html",
        related_html,
        methods=["GET"],
        response_class=HTMLResponse,
        responses={404: {"model": ErrorResponse}},
        route_class_override=QueryModelRoute,
    )

    @router.post(
        "/v1/related",
        response_model=RelatedResponse,
        response_model_exclude_unset=True,  # relation, pinned, reason appear only where they apply, as in GET
        responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    def related_post(query: TextQuery) -> dict[str, Any]:
        """Related stories for free text (a draft) or for an indexed page's URL."""
        filters = Filters.build(query.section, query.language, query.since, query.until, query.exclude)
        if query.url:
            article_id, served = service.related_to_url(query.url, query.k, filters)
            return served.body(article_id)
        text = query.text or ""
        if len(text) > settings.max_text_chars:
            raise InvalidArticle("text", f"is {len(text):,} characters (limit {settings.max_text_chars:,})")
        return service.related_to_text(text, query.k, filters).body(None)

    require_key = key_required(settings)

    @router.put(
        "/v1/articles/{article_id:path}",
        response_model=WriteResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    def put_article(article_id: str, article: dict[str, Any]) -> dict[str, Any]:
        """Publish or edit: embedded now; enters its neighbours' lists before this returns. Durable on 2xx."""
        status = service.upsert(article_id, article)
        return {"id": article_id, "status": status, "index_version": service.index_version}

    @router.delete(
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

    @router.get("/livez")
    async def livez() -> dict[str, str]:
        """The process is up (answered on the event loop: busy worker threads never delay it)."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz() -> Response:
        """The index is loaded, passed its checks, and no damage was found while serving it."""
        if not service.ready:
            return error_response(503, "NotReady", service.last_error or "index not loaded yet")
        if service.damaged:
            return error_response(503, "IndexCorrupt", service.damaged, {"Retry-After": "30"})
        info = await run_in_threadpool(service.info)
        return JSONResponse(
            {
                "status": "ready",
                "articles": info["articles"],
                "index_version": info["index_version"],
                "last_error": service.last_error,
            }
        )

    @router.get("/metrics", response_class=Response)
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

    @router.get("/widget.js", response_class=Response)
    def widget() -> Response:
        """The embeddable widget (one script tag; see the README)."""
        script = resources.files("recommender").joinpath("static/widget.js").read_text("utf-8")
        return Response(
            script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": f"public, max-age={settings.cache_max_age}"},
        )

    @router.get("/demo", response_class=HTMLResponse)
    def demo(id: str | None = None) -> HTMLResponse:  # noqa: A002 - the query parameter's public name
        """A page that shows one story with the widget under it (for trying the service out)."""
        info = service.info() if service.ready else {}
        title = text = None
        if id and service.ready:
            try:
                article = service.get(id)
                title, text = article.title, article.body
            except ArticleNotFound:
                text = f"No article {id!r} in the index."
        return HTMLResponse(render_demo(id, title, text, info))
