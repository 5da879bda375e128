"""``similar``, ``query``, ``eval``: reading "Also Read" lists, and scoring them on labelled sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recommender.cli.common import (
    BackendOpt,
    ExcludeOpt,
    IndexOpt,
    JsonOpt,
    KOpt,
    LanguageOpt,
    ModelOpt,
    SectionOpt,
    SinceOpt,
    UntilOpt,
    app,
    err,
    handle_errors,
    load_settings,
    make_filters,
)
from recommender.errors import RecommenderError

if TYPE_CHECKING:
    from recommender.articles import Article
    from recommender.recommender import Recommender, RelatedList
    from recommender.settings import Settings


def print_related(article: Article | None, related: RelatedList, as_json: bool, k: int) -> None:
    """A list as a table (or JSON: the same items the HTTP API's ``related`` holds). Titles are printed as
    text, never read as console markup."""
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in related.items], ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(soft_wrap=False)
    if article is not None:
        heading = Text.assemble(("Also read", "bold"), f" for {article.id}: {article.title}")
        console.print(heading, highlight=False)
    table = Table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("relevance", justify="right")  # what the list is ordered by
    table.add_column("cosine", justify="right")  # the JSON's "score"
    table.add_column("id")
    table.add_column("title", overflow="fold", ratio=1)
    dated = any(s.published_at for s in related.items)
    sectioned = any(s.section for s in related.items)
    explained = any(s.reason for s in related.items)
    if dated:
        table.add_column("published")
    if sectioned:
        table.add_column("section")
    if explained:
        table.add_column("why", overflow="fold", ratio=1)
    for n, s in enumerate(related.items, start=1):
        relevance = "pinned" if s.pinned else "-" if s.relevance is None else f"{s.relevance:.3f}"
        cells = [Text(str(n)), Text(relevance), Text(f"{s.score:.3f}"), Text(s.id), Text(s.title)]
        if dated:
            cells.append(Text((s.published_at or "")[:10] + (f" {s.relation}" if s.relation else "")))
        if sectioned:
            cells.append(Text(s.section or ""))
        if explained:
            cells.append(Text(s.reason or ""))
        table.add_row(*cells)
    console.print(table)
    if related.short:
        console.print(
            Text(f"only {len(related.items)} of {k} stories are related enough (list not padded)"), highlight=False
        )


def warn_if_policy_differs(rec: Recommender, settings: Settings) -> None:
    """A read never rewrites lists: say so when the config file asks for another policy than the index has."""
    if settings.ranking is not None and settings.ranking != rec.policy:
        err(
            "note: the config file's [ranking] differs from the index's policy; lists follow the index's until "
            "the next write (build, add, delete, serve) or `recommender policy apply`"
        )


@app.command()
@handle_errors
def similar(
    article_id: Annotated[
        str, typer.Argument(metavar="ID", help="An indexed article id (or its URL).", show_default=False)
    ],
    index: IndexOpt = None,
    k: KOpt = None,
    section: SectionOpt = None,
    language: LanguageOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    exclude: ExcludeOpt = None,
    explain: Annotated[bool, typer.Option("--explain", help='Say why each story is there ("why this?").')] = False,
    as_json: JsonOpt = False,
) -> None:
    """The k most related stories to an indexed article (never itself, never a copy of it): the list the HTTP
    API, the widget and the static export show, editors' rules applied."""
    from recommender.recommender import Recommender

    settings = load_settings(index=index, k=k)
    with Recommender.open(settings.index_dir) as rec:
        warn_if_policy_differs(rec, settings)
        article = rec.find(article_id)
        filters = make_filters(section, language, since, until, exclude)
        related = rec.related(article.id, settings.k, filters, explain=explain)
        print_related(article, related, as_json, settings.k)


@app.command()
@handle_errors
def query(
    text: Annotated[str, typer.Argument(help="Free text, e.g. a draft not yet published.", show_default=False)],
    index: IndexOpt = None,
    k: KOpt = None,
    backend: BackendOpt = None,
    section: SectionOpt = None,
    language: LanguageOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    exclude: ExcludeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The k most related stories to free text."""
    from recommender.recommender import Recommender

    if not text.strip():
        raise RecommenderError("TEXT is empty")
    settings = load_settings(index=index, k=k, backend=backend)
    with Recommender.open(settings.index_dir, backend=settings.backend) as rec:
        warn_if_policy_differs(rec, settings)
        related = rec.related_to_text(text, settings.k, make_filters(section, language, since, until, exclude))
        print_related(None, related, as_json, settings.k)


@app.command("eval")
@handle_errors
def eval_(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE.jsonl", help="Articles with 'event' and/or 'topic' labels.", show_default=False),
    ],
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="What counts as related: event or topic [default: event if the file has it, else topic]",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score the "Also Read" lists on a labelled file, next to a TF-IDF baseline (throwaway index).

    Embeddings are cached per model, backend and text under $RECOMMENDER_CACHE (default ~/.cache/recommender).
    The ranking policy is the config file's [ranking], else the defaults.
    """
    from recommender.evaluation.evaluate import evaluate_file

    if not file.exists():
        raise RecommenderError(f"{file}: no such file")
    settings = load_settings(model=model, backend=backend)
    report = evaluate_file(file, label=label, model=settings.model, backend=settings.backend, policy=settings.ranking)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    ours, base = report.recommender.to_dict(), report.tfidf.to_dict()
    typer.echo(
        f"{file}: {report.articles} articles, relevant = same {report.label}, model {report.model} ({report.backend})"
    )
    timeless = report.without_time.to_dict() if report.without_time is not None else None
    typer.echo(f"{'metric':<10} {'recommender':>11}" + (f" {'time off':>9}" if timeless else "") + f" {'tfidf':>7}")
    for key in ours:
        middle = f" {timeless[key]:>9.3f}" if timeless else ""
        typer.echo(f"{key:<10} {ours[key]:>11.3f}{middle} {base[key]:>7.3f}")
