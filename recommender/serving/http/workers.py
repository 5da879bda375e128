"""Running the app: one uvicorn process, or several worker processes on one port (each a replica of the index).

Workers are replicas of one index folder: each holds the index in memory, writes go through the catalog's lock
and change log, and every worker follows the others' writes (as separate ``serve`` processes behind a load
balancer do). They get the settings the parent resolved, as JSON in :data:`recommender.settings.SETTINGS_ENV`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from fastapi import FastAPI

from recommender.errors import RecommenderError
from recommender.serving.http.app import create_app
from recommender.serving.http.limits import LimitedHttpToolsProtocol, RequestLimits, connection_cap
from recommender.serving.service import Service
from recommender.settings import SETTINGS_ENV, Settings, from_environment

#: How often (seconds) Python hands the GIL between threads in a server process (default 0.005): live searches
#: run in worker threads, and a shorter interval lets the event loop answer cached and stored reads between their
#: slices instead of waiting several 5 ms turns (measured in docs/reliability.md).
GIL_SWITCH_INTERVAL = 0.0005
#: Workers look for each other's writes this often (seconds): a story PUT through one worker is in every
#: worker's answers within this time.
WORKER_CHECK_INTERVAL = 0.05


def request_limits(settings: Settings) -> RequestLimits:
    """The server-level limits of ``settings`` (see :mod:`recommender.serving.http.limits`)."""
    return RequestLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        max_url_bytes=settings.max_url_bytes,
        header_timeout=settings.header_timeout,
        max_connections=connection_cap(settings.max_connections),
    )


def server_config(settings: Settings, app: Any, log_level: str = "info", **extra: Any) -> Any:
    """The uvicorn configuration: the limited httptools protocol with the request limits of ``settings``
    (carried on the config, which uvicorn hands to every worker process)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        proxy_headers=True,
        forwarded_allow_ips=list(settings.trusted_proxies) or [],
        access_log=False,
        loop="auto",  # uvloop when installed (the serve extra has it)
        http=LimitedHttpToolsProtocol,
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]  # a float works (call_later)
        server_header=False,
        **extra,
    )
    config.request_limits = request_limits(settings)  # type: ignore[attr-defined]
    return config


def serve_settings(settings: Settings, log_level: str = "info") -> None:
    """Serve the index ``settings`` name on its host and port with ``settings.workers`` processes. The index is
    opened (and checked) first, so a missing or broken one is a clear error before anything listens."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    service = Service(settings)
    service.load()  # fail fast with a clear message when there is no usable index (or a damaged catalog)
    if settings.workers <= 1:
        server = uvicorn.Server(server_config(settings, create_app(service, settings), log_level))
        server.run()
        if not server.started:  # e.g. the port is taken: uvicorn has logged why
            raise RecommenderError(f"the server did not start on {settings.host}:{settings.port} (see the log above)")
        return
    service.close()
    os.environ[SETTINGS_ENV] = settings.to_json()
    config = server_config(
        settings,
        "recommender.serving.http.workers:app_from_environment",
        log_level,
        factory=True,
        workers=settings.workers,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()


def app_from_environment() -> FastAPI:
    """The app of one worker process (a uvicorn factory), with the settings its parent resolved."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    settings = from_environment()
    return create_app(Service(settings, check_interval=WORKER_CHECK_INTERVAL), settings)


__all__ = ["WORKER_CHECK_INTERVAL", "app_from_environment", "request_limits", "serve_settings", "server_config"]
