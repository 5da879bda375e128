"""``build``, ``add``, ``delete``: writing to an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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

SourcesArg = Annotated[
    list[Path],
    typer.Argument(help="JSONL/JSON/CSV files, folders of .html pages, RSS/Atom feed files.", show_default=False),
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
    as_json: JsonOpt = False,
) -> None:
    """Build (or bring up to date) an index from SOURCE files. Unchanged articles are not embedded again."""
    from recommender.writer import build_index

    settings = load_settings(index=index, model=model, backend=backend, max_memory=max_memory)
    max_memory_bytes = memory_budget(settings)
    with ProgressBar() as bar:
        report = build_index(
            sources,
            settings.index_dir,
            model=settings.model,
            backend=settings.backend,
            strict=strict,
            progress=bar,
            max_memory_bytes=max_memory_bytes,
            lock_timeout=settings.lock_timeout,
            policy=settings.ranking,
            **_ray_arguments(ray, ray_workers),
        )
    print_report(report, as_json)


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
    as_json: JsonOpt = False,
) -> None:
    """Add or update articles in an existing index (no rebuild)."""
    from recommender.writer import add_articles

    settings = load_settings(index=index, backend=backend)
    with ProgressBar() as bar:
        report = add_articles(
            settings.index_dir,
            sources,
            backend=settings.backend,
            strict=strict,
            progress=bar,
            lock_timeout=settings.lock_timeout,
            policy=settings.ranking,
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
