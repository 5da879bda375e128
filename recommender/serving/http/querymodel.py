"""Routes whose query string is one pydantic model, validated in one call.

FastAPI resolves each query parameter of a route on its own, every request (its dependency solver looks up each
field's kind, alias and validator anew): for the related routes' ten parameters that costs about 0.2 ms a
request, as much as the stored read it serves. A route of :class:`QueryModelRoute` declares its parameters as
one model in its signature (``query: Annotated[Model, Query()]``, FastAPI's documented query-parameter models,
which ``/openapi.json`` lists parameter by parameter) and validates the query string against it with one
pydantic call; a bad value is the same :class:`~fastapi.exceptions.RequestValidationError`, with the same
``("query", name)`` location, that FastAPI raises, so clients see the same 422.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: Validated query models a route remembers, by query string (a first request for another story usually repeats
#: one), and the longest query string remembered: at most 256 KB a route, whatever clients send.
REMEMBERED_QUERIES = 256
MAX_REMEMBERED_QUERY = 1024


class QueryModelRoute(APIRoute):
    """An APIRoute whose async endpoint ``(request, <path parameters>, query: Model) -> Response`` takes its whole
    query as one model is served by one validation (remembered for its query string: the endpoint must not change
    the model it is given); any other endpoint as FastAPI serves it.

    Such a route is also served without FastAPI's per-request wrapping (two exit stacks for dependencies with
    ``yield``, which it has none of, and a second exception handler around it: the app's own handles the same
    errors, with the same handlers, one layer out): about a tenth of a first read's time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        handler = self._one_model_handler()
        if handler is not None:
            self.app = _served(handler)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self._one_model_handler() or super().get_route_handler()

    def _one_model_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]] | None:
        fields = self.dependant.query_params
        model = fields[0].field_info.annotation if len(fields) == 1 else None
        dependant = self.dependant
        plain = not (dependant.dependencies or dependant.header_params or dependant.cookie_params or self.body_field)
        if not (plain and isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        name = fields[0].name
        names = frozenset(model.model_fields)
        lists = frozenset(n for n, f in model.model_fields.items() if typing.get_origin(f.annotation) is list)
        endpoint = self.endpoint
        seen: dict[bytes, BaseModel] = {}  # query string -> its model: most requests share a few ("k=5")

        async def handler(request: Request) -> Response:
            raw_query = request.scope.get("query_string", b"")
            query = seen.get(raw_query)
            if query is None:
                params = request.query_params
                raw = {n: params.getlist(n) if n in lists else params[n] for n in params.keys() if n in names}
                try:
                    query = model.model_validate(raw)
                except ValidationError as exc:
                    errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
                    raise RequestValidationError(errors) from None
                if len(raw_query) <= MAX_REMEMBERED_QUERY:
                    if len(seen) >= REMEMBERED_QUERIES:
                        del seen[next(iter(seen))]  # the oldest
                    seen[raw_query] = query
            response: Response = await endpoint(request, **request.path_params, **{name: query})
            return response

        return handler


def _served(handler: Callable[[Request], Coroutine[Any, Any, Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


__all__ = ["QueryModelRoute"]
