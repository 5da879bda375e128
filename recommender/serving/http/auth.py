"""The write key: PUT, DELETE and the editors' rules need ``Authorization: Bearer KEY``."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.settings import Settings


def key_required(settings: Settings) -> Callable[..., None]:
    """A FastAPI dependency refusing requests without the server's key: 401 for a wrong or missing key, 403 when
    the server has none (writes are then off). Compared in constant time."""

    def require_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not settings.api_key:
            raise StarletteHTTPException(403, "writes are disabled: the server has no API key configured")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise StarletteHTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})

    return require_key
