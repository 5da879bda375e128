"""One table from domain error to HTTP status, and the one error shape: ``{"error": {"type", "message"}}``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.errors import (
    ArticleNotFound,
    BatchRejected,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    InvalidArticle,
    InvalidRequest,
    InvalidRule,
    InvalidTime,
    ModelUnavailable,
    NotReady,
    Overloaded,
    RecommenderError,
    RuleNotFound,
    SourceError,
    StorageError,
    StorageFull,
)
from recommender.ranking.policy import PolicyError
from recommender.storage.faults import STORAGE_EXCEPTIONS, storage_error

#: Seconds a refused request (429, 503 overloaded) waits before its answer, so a client that retries at once (a
#: flood on many connections) costs the server a few refusals a second per connection instead of as many as the
#: event loop can write: readers of cached answers keep their share of it (the shedding middleware uses it too).
REFUSAL_DELAY = 0.5

if TYPE_CHECKING:
    from recommender.serving.service import Service

log = logging.getLogger(__name__)

#: One table from domain error to HTTP status (the first matching class wins).
ERROR_STATUS: dict[type[RecommenderError], int] = {
    ArticleNotFound: 404,
    RuleNotFound: 404,
    InvalidRule: 422,
    InvalidRequest: 422,
    InvalidTime: 422,
    InvalidArticle: 422,
    BatchRejected: 422,
    SourceError: 422,
    PolicyError: 422,
    IndexMismatch: 409,
    IndexBusy: 503,
    NotReady: 503,
    IndexNotFound: 503,
    IndexCorrupt: 503,
    ModelUnavailable: 503,
    Overloaded: 503,
    StorageFull: 507,
    StorageError: 503,
}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def status_of(exc: RecommenderError) -> int:
    return next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 500)


def install_error_handlers(app: FastAPI, service: Service | None = None) -> None:
    """Every error leaves the app in the one shape; a bug is logged and answered 500 without details. An I/O
    failure (a full disk, a damaged catalog) is translated to its domain error and answered 507 or 503; a damaged
    catalog also takes ``service`` out of rotation (``/readyz`` says why)."""

    @app.exception_handler(RecommenderError)
    async def domain_error(request: Request, exc: RecommenderError) -> JSONResponse:
        status = status_of(exc)
        if service is not None and isinstance(exc, IndexCorrupt | StorageError | StorageFull):
            service.failed(exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        if isinstance(exc, Overloaded):  # held while it counts against its client (see middleware.REFUSAL_DELAY)
            await asyncio.sleep(REFUSAL_DELAY)
        return error_response(status, type(exc).__name__, str(exc), headers)

    async def storage_failure(request: Request, exc: Exception) -> JSONResponse:
        translated = storage_error(exc, "the index")
        assert translated is not None
        log.error("%s %s: %s", request.method, request.url.path, translated)
        return await domain_error(request, translated)

    for kind in STORAGE_EXCEPTIONS:
        app.add_exception_handler(kind, storage_failure)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail), getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug, logged
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error (logged on the server)")
