"""``serve`` and ``export``: suggestions for a site, over HTTP or as static JSON for a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recommender.cli.common import BackendOpt, IndexOpt, KOpt, app, err, handle_errors, load_settings, log


def _limit(flag: str, text: str) -> Any:
    """A server limit's option: its environment twin is ``RECOMMENDER_`` + the flag's name."""
    return typer.Option(flag, envvar="RECOMMENDER_" + flag[2:].replace("-", "_").upper(), help=text, show_default=False)


@app.command()
@handle_errors
def serve(
    index: IndexOpt = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", envvar="RECOMMENDER_HOST", help="Address to bind [default: 127.0.0.1]", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", envvar="RECOMMENDER_PORT", help="Port [default: 8000]", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="RECOMMENDER_API_KEY",
            help="Bearer key for PUT/DELETE (writes are refused without one). Visible in ps: prefer --api-key-file.",
            show_default=False,
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            envvar="RECOMMENDER_CORS_ORIGINS",
            help="Origin allowed to call the API from a browser (repeatable; env: comma-separated).",
            show_default=False,
        ),
    ] = None,
    backend: BackendOpt = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-body-bytes",
            envvar="RECOMMENDER_MAX_BODY_BYTES",
            help="Largest request body [default: 1000000]",
            show_default=False,
        ),
    ] = None,
    max_text_chars: Annotated[
        int | None,
        typer.Option(
            "--max-text-chars",
            envvar="RECOMMENDER_MAX_TEXT_CHARS",
            help="Longest free text for POST /v1/related [default: 20000]",
            show_default=False,
        ),
    ] = None,
    cache_max_age: Annotated[
        int | None,
        typer.Option(
            "--cache-max-age",
            envvar="RECOMMENDER_CACHE_MAX_AGE",
            help="Cache-Control max-age of GET responses, seconds [default: 60]",
            show_default=False,
        ),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            "--max-in-flight",
            envvar="RECOMMENDER_MAX_IN_FLIGHT",
            help="Requests in flight before shedding with 503 [default: 64]",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            envvar="RECOMMENDER_WORKERS",
            min=1,
            max=64,
            help="Worker processes on the port, each a replica of the index (one per core) [default: 1]",
            show_default=False,
        ),
    ] = None,
    events_dir: Annotated[
        Path | None,
        typer.Option(
            "--events-dir",
            envvar="RECOMMENDER_EVENTS_DIR",
            help="Where POST /v1/events stores impressions and clicks [default: INDEX/events]",
            show_default=False,
        ),
    ] = None,
    events_rate: Annotated[
        float | None,
        typer.Option(
            "--events-rate",
            envvar="RECOMMENDER_EVENTS_RATE",
            help="Event requests per second per client address before 429; 0 = no limit [default: 50]",
            show_default=False,
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            envvar="RECOMMENDER_API_KEY_FILE",
            help="Read the API key from this file's first line (unlike --api-key, not visible in ps).",
            show_default=False,
        ),
    ] = None,
    max_header_bytes: Annotated[
        int | None, _limit("--max-header-bytes", "Request line + headers, bytes; over: 431 [default: 32768]")
    ] = None,
    max_headers: Annotated[int | None, _limit("--max-headers", "Header fields; over: 431 [default: 100]")] = None,
    max_url_bytes: Annotated[
        int | None, _limit("--max-url-bytes", "Request target (path + query), bytes; over: 414 [default: 8192]")
    ] = None,
    header_timeout: Annotated[
        float | None,
        _limit("--header-timeout", "Seconds to receive a request's headers; over: 408, closed [default: 10]"),
    ] = None,
    body_timeout: Annotated[
        float | None, _limit("--body-timeout", "Seconds to receive a request body; over: 408 [default: 30]")
    ] = None,
    keep_alive_timeout: Annotated[
        float | None, _limit("--keep-alive-timeout", "Seconds an idle kept-alive connection stays open [default: 5]")
    ] = None,
    max_connections: Annotated[
        int | None,
        _limit(
            "--max-connections",
            "Open connections; past it the oldest idle or slow one is closed [default: 1000, under the file limit]",
        ),
    ] = None,
    max_per_client: Annotated[
        int | None,
        _limit("--max-per-client", "Uncached requests in flight from one client address; over: 429 [default: 32]"),
    ] = None,
    max_live_searches: Annotated[
        int | None,
        _limit(
            "--max-live-searches",
            "Live searches at once (k over 20, unmatched filters, free text); over: 503 [default: 2]",
        ),
    ] = None,
    cache_bytes: Annotated[
        int | None, _limit("--cache-bytes", "Memory of the answer cache, bytes [default: 67108864]")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            envvar="RECOMMENDER_TRUSTED_PROXIES",
            help="Address of a proxy whose X-Forwarded-For is believed (repeatable; env: comma-separated) "
            "[default: 127.0.0.1]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve related stories over HTTP (FastAPI + uvicorn), with the widget at /widget.js and a /demo page."""
    from recommender.serving.http.workers import serve_settings

    settings = load_settings(
        index=index,
        host=host,
        port=port,
        api_key=api_key,
        cors_origins=cors_origin,
        backend=backend,
        max_body_bytes=max_body_bytes,
        max_text_chars=max_text_chars,
        cache_max_age=cache_max_age,
        max_in_flight=max_in_flight,
        workers=workers,
        events_dir=events_dir,
        events_rate=events_rate,
        api_key_file=api_key_file,
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        max_url_bytes=max_url_bytes,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        max_connections=max_connections,
        max_per_client=max_per_client,
        max_live_searches=max_live_searches,
        cache_bytes=cache_bytes,
        trusted_proxies=trusted_proxy,
    )
    if settings.ranking is not None:
        from recommender.writer import apply_policy

        if apply_policy(settings.index_dir, settings.ranking, lock_timeout=settings.lock_timeout):
            log.warning("applied the config file's [ranking] policy: every list was recomputed")
    if not settings.api_key:
        log.warning("no API key: PUT and DELETE are refused (set --api-key-file, or RECOMMENDER_API_KEY)")
    serve_settings(settings)


@app.command()
@handle_errors
def export(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder to write <id>.json files and index.json into.", show_default=False),
    ],
    index: IndexOpt = None,
    k: KOpt = None,
) -> None:
    """Write every article's related list as static JSON (same shape as the HTTP API) for a CDN."""
    from recommender.recommender import Recommender
    from recommender.serving.export import export_static

    settings = load_settings(index=index, k=k)
    with Recommender.open(settings.index_dir) as rec:
        report = export_static(rec, out, k=settings.k)
    for skipped in report.skipped:
        err(f"skipped: id {skipped[:60]!r}... has no portable file name")
    typer.echo(f"{report.summary()} into {out}")
