"""Running the app: one uvicorn process, or several worker processes on one port (each a replica of the index).

Workers are replicas of one index folder: each holds the index in memory, writes go through the catalog's lock
and change log, and every worker follows the others' writes (as separate ``serve`` processes behind a load
balancer do). They get the settings the parent resolved, as JSON in :data:`recommender.settings.SETTINGS_ENV`.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import SETTINGS_ENV, Settings, from_environment

#: Workers look for each other's writes this often (seconds): a story PUT through one worker is in every
#: worker's answers within this time.
WORKER_CHECK_INTERVAL = 0.05


def serve_settings(settings: Settings, log_level: str = "info") -> None:
    """Serve the index ``settings`` name on its host and port with ``settings.workers`` processes. The index is
    opened (and checked) first, so a missing or broken one is a clear error before anything listens."""
    import uvicorn

    service = Service(settings)
    service.load()  # fail fast with a clear message when there is no usable index
    options = dict(
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        proxy_headers=True,
        access_log=False,
        loop="auto",  # uvloop and httptools when installed (the serve extra has them)
        http="auto",
    )
    if settings.workers <= 1:
        uvicorn.run(create_app(service, settings), **options)  # type: ignore[arg-type]
        return
    service.close()
    os.environ[SETTINGS_ENV] = settings.to_json()
    uvicorn.run(
        "recommender.serving.http.workers:app_from_environment",
        factory=True,
        workers=settings.workers,
        **options,  # type: ignore[arg-type]
    )


def app_from_environment() -> FastAPI:
    """The app of one worker process (a uvicorn factory), with the settings its parent resolved."""
    settings = from_environment()
    return create_app(Service(settings, check_interval=WORKER_CHECK_INTERVAL), settings)


__all__ = ["WORKER_CHECK_INTERVAL", "app_from_environment", "serve_settings"]
