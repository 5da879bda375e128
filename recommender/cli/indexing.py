"""``build``, ``add``, ``delete``: writing to an index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from recommender.cli.common import (
    BackendOpt,
    IndexOpt,
    JsonOpt,
    MaxMemoryOpt,
    ModelOpt,
    ProgressBar,
    StrictOpt,
    app,
    handle_errors,
    load_settings,
    memory_budget,
    print_report,
)

if TYPE_CHECKING:
    from recommender.ingest import IngestOptions

SourcesArg = Annotated[
    list[str],
    typer.Argument(
        metavar="SOURCE...",
        help="JSONL/JSON/CSV files, WordPress exports (WXR), folders of .html pages, RSS/Atom feeds, files of URLs, "
        "or http(s) URLs: a sitemap, a feed, a WordPress REST listing (/wp-json/wp/v2/posts), a list of URLs.",
        show_default=False,
    ),
]
MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="SRC=FIELD,...",
        help="Name export columns for article fields, e.g. --map nid=id,body_value=body (repeatable; CMS names "
        "such as ID, post_title, post_date_gmt are recognised without it).",
        show_default=False,
    ),
]
TimezoneOpt = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        metavar="ZONE",
        help="Time zone of dates written without one (a CMS's site-local time), e.g. Europe/Berlin [default: UTC]",
        show_default=False,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        metavar="URL",
        help="The site's address, to make site-relative links in an export absolute (/politics/story -> URL/...).",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, max=64, help="Pages fetched at once from a sitemap or URL list.")
]


class _RayAddressCommand(TyperCommand):
    """``--ray`` takes an optional ADDRESS: alone (or before a SOURCE or another option) it means a local Ray.
    Typer has no optional option values, so a bare ``--ray`` gets ``local`` filled in before parsing."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from recommender.distributed import looks_like_address

        out: list[str] = []
        for position, arg in enumerate(args):
            out.append(arg)
            if arg == "--":
                out.extend(args[position + 1 :])
                break
            if arg == "--ray" and (position + 1 == len(args) or not looks_like_address(args[position + 1])):
                out.append("local")
        return super().parse_args(ctx, out)


RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        show_default=False,
        help="Read and embed on Ray (needs the ray extra): alone, a local Ray for this job; "
        "auto, ray://HOST:PORT or HOST:PORT, an existing cluster.",
    ),
]
RayWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--ray-workers",
        min=1,
        show_default=False,
        help="Embedding workers on Ray, one CPU each [default: one per CPU of the cluster]",
    ),
]


@app.command(cls=_RayAddressCommand)
@handle_errors
def build(
    sources: SourcesArg,
    index: IndexOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    strict: StrictOpt = False,
    max_memory: MaxMemoryOpt = None,
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = None,
    field_map: MapOpt = None,
    timezone: TimezoneOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = 4,
    as_json: JsonOpt = False,
) -> None:
    """Build (or bring up to date) an index from SOURCEs. Unchanged articles are not embedded again, and a
    sitemap page with an unchanged lastmod is not fetched again."""
    from recommender.writer import build_index

    settings = load_settings(index=index, model=model, backend=backend, max_memory=max_memory)
    max_memory_bytes = memory_budget(settings)
    with ProgressBar() as bar, ProgressBar("fetching") as fetching:
        report = build_index(
            source_list(sources),
            settings.index_dir,
            model=settings.model,
            backend=settings.backend,
            strict=strict,
            progress=bar,
            max_memory_bytes=max_memory_bytes,
            lock_timeout=settings.lock_timeout,
            policy=settings.ranking,
            ingest=ingest_options(field_map, timezone, base_url, concurrency, fetching),
            **_ray_arguments(ray, ray_workers),
        )
    print_report(report, as_json)


def source_list(sources: list[str]) -> list[Path | str]:
    """SOURCE arguments as the library takes them: URLs as strings, everything else as paths."""
    from recommender.ingest import is_url

    return [source if is_url(source) else Path(source) for source in sources]


def ingest_options(
    field_map: list[str] | None,
    timezone: str | None,
    base_url: str | None,
    concurrency: int,
    progress: ProgressBar | None,
) -> IngestOptions:
    """``--map``, ``--timezone``, ``--base-url`` and ``--concurrency`` as the library's :class:`IngestOptions`."""
    from recommender.errors import SourceError
    from recommender.ingest import FetchSettings, IngestOptions, parse_field_map, parse_timezone

    try:
        mapping = parse_field_map(field_map or [])
        zone = parse_timezone(timezone)
    except SourceError as exc:
        raise typer.BadParameter(str(exc)) from None
    if base_url is not None and not base_url.lower().startswith(("http://", "https://")):
        raise typer.BadParameter(f"{base_url!r} is not an http(s) URL", param_hint="--base-url")
    return IngestOptions(
        field_map=mapping,
        timezone=zone,
        base_url=base_url,
        fetch=FetchSettings(concurrency=concurrency),
        fetch_progress=progress,
    )


def _ray_arguments(address: str | None, workers: int | None) -> dict[str, Any]:
    if address is None:
        if workers is not None:
            raise typer.BadParameter("--ray-workers needs --ray", param_hint="--ray-workers")
        return {}
    from recommender.distributed import RayOptions

    return {"ray_address": address, "ray_options": RayOptions(workers=workers)}


@app.command()
@handle_errors
def add(
    sources: SourcesArg,
    index: IndexOpt = None,
    backend: BackendOpt = None,
    strict: StrictOpt = False,
    field_map: MapOpt = None,
    timezone: TimezoneOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = 4,
    as_json: JsonOpt = False,
) -> None:
    """Add or update articles in an existing index (no rebuild)."""
    from recommender.writer import add_articles

    settings = load_settings(index=index, backend=backend)
    with ProgressBar() as bar, ProgressBar("fetching") as fetching:
        report = add_articles(
            settings.index_dir,
            source_list(sources),
            backend=settings.backend,
            strict=strict,
            progress=bar,
            lock_timeout=settings.lock_timeout,
            policy=settings.ranking,
            ingest=ingest_options(field_map, timezone, base_url, concurrency, fetching),
        )
    print_report(report, as_json)


@app.command()
@handle_errors
def delete(
    ids: Annotated[list[str], typer.Argument(help="Article ids to remove.", show_default=False)],
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove articles from the index (they leave every list at once)."""
    from recommender.writer import delete_articles

    settings = load_settings(index=index)
    report = delete_articles(settings.index_dir, ids, lock_timeout=settings.lock_timeout, policy=settings.ranking)
    print_report(report, as_json)
