"""``report``: impressions, clicks and CTR of the "Also Read" box, by position, section and variant, and how much
of the archive it shows (see :mod:`recommender.events.report`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recommender.cli.common import IndexOpt, JsonOpt, app, handle_errors, load_settings

if TYPE_CHECKING:
    from recommender.events.report import Rate, Report


@app.command("report")
@handle_errors
def report_command(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events from then on: a date, a date-time or a duration back (7d, 24h)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as an HTML page to FILE.", metavar="FILE")
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            envvar="RECOMMENDER_EVENTS_DIR",
            help="Event store folder [default: INDEX/events]",
            show_default=False,
        ),
    ] = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Is the box clicked, at which positions, in which sections and variants (with confidence intervals and a
    verdict on significance), and how much of the archive does it show?"""
    from recommender.events.report import report_for_index
    from recommender.when import parse_when

    settings = load_settings(index=index, events_dir=events)
    start = parse_when(since, datetime.now(UTC), past=True) if since else None
    result = report_for_index(settings.index_dir, settings.events_folder, start)
    if html is not None:
        from recommender.events.html import render_html

        html.write_text(render_html(result), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print(result)
    if html is not None:
        typer.echo(f"HTML report written to {html}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _row(name: str, rate: Rate) -> str:
    ci = rate.interval
    interval = "-" if ci is None else f"{ci[0]:.1%}-{ci[1]:.1%}"
    return f"{name:<16} {rate.views:>8,} {rate.clicked:>8,} {_pct(rate.ctr):>7} {interval:>13}"


def _print(result: Report) -> None:
    span = f"{result.first} .. {result.last}" if result.first else "no events"
    typer.echo(f"events: {span}; {result.impressions:,} impressions, {result.clicks:,} clicks")
    if result.orphan_clicks:
        typer.echo(f"({result.orphan_clicks} clicks without a reported impression are left out of the rates)")
    header = f"{'':<16} {'views':>8} {'clicked':>8} {'CTR':>7} {'95% interval':>13}"
    typer.echo(header)
    typer.echo(_row("overall", result.overall))
    for title, rows in (
        ("position", result.by_position),
        ("section", result.by_section),
        ("variant", result.by_variant),
    ):
        typer.echo(f"by {title}:")
        for name, rate in rows.items():
            typer.echo(_row(f"  {name}", rate))
    typer.echo(result.comparison.verdict)
    e = result.exposure
    gini = "-" if e.gini is None else f"{e.gini:.2f}"
    typer.echo(
        f"exposure: {e.shown:,} of {e.archive:,} stories shown at least once ({_pct(e.share_shown)}); "
        f"Gini {gini}; top 10% of stories took {_pct(e.top_decile_share)} of impressions"
    )
