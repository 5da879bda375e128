"""``watch``: follow a site's feeds and sitemaps, adding new and changed stories as they appear."""

from __future__ import annotations

from typing import Annotated

import typer

from recommender.cli.common import BackendOpt, IndexOpt, ModelOpt, app, err, handle_errors, load_settings
from recommender.cli.indexing import (
    BaseUrlOpt,
    ConcurrencyOpt,
    MapOpt,
    SourcesArg,
    TimezoneOpt,
    ingest_options,
    source_list,
)

EveryOpt = Annotated[str, typer.Option("--every", help="How often to read the SOURCEs again: 30s, 5m, 1h.")]
RoundsOpt = Annotated[
    int | None,
    typer.Option("--rounds", min=1, help="Stop after this many rounds [default: until stopped]", show_default=False),
]


@app.command()
@handle_errors
def watch(
    sources: SourcesArg,
    every: EveryOpt = "5m",
    rounds: RoundsOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    field_map: MapOpt = None,
    timezone: TimezoneOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = 4,
) -> None:
    """Read feeds and sitemaps again and again, adding new and changed stories to the index (each enters
    older stories' lists at once). A source that fails is reported and tried again next round."""
    from recommender.watch import RoundResult, parse_interval
    from recommender.watch import watch as follow

    try:
        seconds = parse_interval(every)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from None
    settings = load_settings(index=index, model=model, backend=backend)
    options = ingest_options(field_map, timezone, base_url, concurrency, None)

    def show(result: RoundResult) -> None:
        if result.error is not None:
            err(f"error: round {result.round}: {result.error}")
            return
        assert result.report is not None
        for rejection in result.report.rejected:
            err(f"rejected: {rejection}")
        typer.echo(f"round {result.round}: {result.source}: {result.report.summary()}")

    done = 0
    try:
        done = follow(
            settings.index_dir,
            source_list(sources),
            every=seconds,
            rounds=rounds,
            ingest=options,
            on_result=show,
            model=settings.model,
            backend=settings.backend,
            lock_timeout=settings.lock_timeout,
            policy=settings.ranking,
        )
    except KeyboardInterrupt:
        err("stopped: every round that finished is in the index")
        return
    typer.echo(f"watched {len(sources)} source(s) for {done} round(s)")
