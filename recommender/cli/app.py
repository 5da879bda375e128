"""The ``recommender`` command: a thin typer layer that parses, calls the library, and formats.

Exit codes: 0 done; 1 error, nothing written; 2 usage error; 3 done, but some articles were rejected
(they are listed on stderr; the valid ones were indexed).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from recommender import settings
from recommender.errors import BatchRejected, RecommenderError

app = typer.Typer(
    name="recommender",
    help='Self-hosted "Also Read" suggestions for news sites: build an index, query it, serve it.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_ERROR = 1
EXIT_REJECTED = 3

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("recommender")


def _err(message: str) -> None:
    typer.echo(message, err=True)


def handle_errors(func: F) -> F:
    """Domain errors become one line on stderr and exit code 1; Ctrl-C says what was kept. No tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BatchRejected as exc:
            for rejection in exc.rejections:
                _err(f"rejected: {rejection}")
            _err(f"Error: {exc}")
            raise typer.Exit(EXIT_ERROR) from None
        except RecommenderError as exc:
            _err(f"Error: {exc}")
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            _err("Interrupted: the index is as it was before this command (embeddings made so far are kept).")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index", "-i", envvar="RECOMMENDER_INDEX", help="Index folder [default: ./index]", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
KOpt = Annotated[
    int | None, typer.Option("-k", "--k", min=1, max=100, help="How many stories [default: 5]", show_default=False)
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="RECOMMENDER_MODEL",
        help="sentence-transformers model name or local path [default: the index's model, or all-MiniLM-L6-v2]",
        show_default=False,
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        envvar="RECOMMENDER_BACKEND",
        help="Embedding backend: torch, onnx, onnx-int8 or onnx-int8-192 [default: the index's, or onnx-int8-192]",
        show_default=False,
    ),
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        envvar="RECOMMENDER_MAX_MEMORY",
        help="RAM budget of the vector index, e.g. 4GB or 512MiB; picks a compressed index when needed "
        "[default: the index's, or no limit]",
        show_default=False,
    ),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Refuse the whole batch if any article is invalid.")]
SourcesArg = Annotated[
    list[Path],
    typer.Argument(help="JSONL/JSON/CSV files, folders of .html pages, RSS/Atom feed files.", show_default=False),
]
SectionOpt = Annotated[str | None, typer.Option("--section", help="Only stories of this section.")]
SinceOpt = Annotated[datetime | None, typer.Option("--since", help="Only stories published on or after (ISO date).")]
UntilOpt = Annotated[datetime | None, typer.Option("--until", help="Only stories published on or before (ISO date).")]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", help="Never suggest this id (repeatable).")]


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO) on stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _index_dir(value: Path | None) -> Path:
    return Path(settings.resolve("index", value))


class _ProgressBar:
    """A rich progress bar on a terminal; log lines every few thousand texts otherwise."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._last_logged = 0

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self._progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self._progress = Progress(
                    TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
                )
                self._progress.start()
                self._task = self._progress.add_task("embed", total=total)
            self._progress.update(self._task, completed=done)
        elif done == total or done - self._last_logged >= 5000:
            log.info("embedded %d/%d", done, total)
            self._last_logged = done

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _report(report: Any, as_json: bool) -> None:
    for rejection in report.rejected:
        _err(f"rejected: {rejection}")
    for missing in report.not_found:
        _err(f"not found: {missing!r}")
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(report.summary())
    if report.rejected or report.not_found:
        raise typer.Exit(EXIT_REJECTED)


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
    from recommender.storage.vector_index import parse_size
    from recommender.writer import build_index

    budget = settings.resolve("max_memory", max_memory)
    try:
        max_memory_bytes = parse_size(budget) if budget is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max-memory") from None
    with _ProgressBar() as bar:
        report = build_index(
            sources,
            _index_dir(index),
            model=settings.resolve("model", model),
            backend=settings.resolve("backend", backend),
            strict=strict,
            progress=bar,
            max_memory_bytes=max_memory_bytes,
            lock_timeout=float(settings.resolve("lock_timeout")),
            **_ray_arguments(ray, ray_workers),
        )
    _report(report, as_json)


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

    with _ProgressBar() as bar:
        report = add_articles(
            _index_dir(index),
            sources,
            backend=settings.resolve("backend", backend),
            strict=strict,
            progress=bar,
            lock_timeout=float(settings.resolve("lock_timeout")),
        )
    _report(report, as_json)


@app.command()
@handle_errors
def delete(
    ids: Annotated[list[str], typer.Argument(help="Article ids to remove.", show_default=False)],
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove articles from the index (they leave every list at once)."""
    from recommender.writer import delete_articles

    report = delete_articles(_index_dir(index), ids, lock_timeout=float(settings.resolve("lock_timeout")))
    _report(report, as_json)


def _print_related(article: Any, related: Any, as_json: bool, k: int) -> None:
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in related.items], ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False)
    if article is not None:
        console.print(f"[bold]Also read[/bold] for {article.id}: {article.title}", markup=True, highlight=False)
    table = Table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("relevance", justify="right")  # what the list is ordered by
    table.add_column("cosine", justify="right")  # the JSON's "score"
    table.add_column("id")
    table.add_column("title", overflow="fold", ratio=1)
    dated = any(s.published_at for s in related.items)
    sectioned = any(s.section for s in related.items)
    if dated:
        table.add_column("published")
    if sectioned:
        table.add_column("section")
    for n, s in enumerate(related.items, start=1):
        relevance = "-" if s.relevance is None else f"{s.relevance:.3f}"
        cells = [str(n), relevance, f"{s.score:.3f}", s.id, s.title]
        if dated:
            cells.append((s.published_at or "")[:10])
        if sectioned:
            cells.append(s.section or "")
        table.add_row(*cells)
    console.print(table)
    if related.short:
        console.print(f"only {len(related.items)} of {k} stories are related enough (list not padded)", highlight=False)


def _filters(
    section: str | None, since: datetime | None, until: datetime | None, exclude: list[str] | None
) -> dict[str, Any]:

    def aware(d: datetime | None) -> datetime | None:
        return d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d

    return {"section": section, "since": aware(since), "until": aware(until), "exclude": exclude or None}


@app.command()
@handle_errors
def similar(
    article_id: Annotated[
        str, typer.Argument(metavar="ID", help="An indexed article id (or its URL).", show_default=False)
    ],
    index: IndexOpt = None,
    k: KOpt = None,
    section: SectionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    exclude: ExcludeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The k most related stories to an indexed article (never itself, never a copy of it)."""
    from recommender.recommender import Recommender

    k = int(settings.resolve("k", k))
    with Recommender.open(_index_dir(index)) as rec:
        filters = _filters(section, since, until, exclude)
        article = rec.find(article_id)
        related = rec.related(article.id, k, **filters)
        _print_related(article, related, as_json, k)


@app.command()
@handle_errors
def query(
    text: Annotated[str, typer.Argument(help="Free text, e.g. a draft not yet published.", show_default=False)],
    index: IndexOpt = None,
    k: KOpt = None,
    backend: BackendOpt = None,
    section: SectionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    exclude: ExcludeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The k most related stories to free text."""
    from recommender.recommender import Recommender

    if not text.strip():
        raise RecommenderError("TEXT is empty")
    k = int(settings.resolve("k", k))
    with Recommender.open(_index_dir(index), backend=settings.resolve("backend", backend)) as rec:
        related = rec.related_to_text(text, k, **_filters(section, since, until, exclude))
        _print_related(None, related, as_json, k)


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
    """
    from recommender.evaluation.evaluate import evaluate_file

    if not file.exists():
        raise RecommenderError(f"{file}: no such file")
    report = evaluate_file(
        file, label=label, model=settings.resolve("model", model), backend=settings.resolve("backend", backend)
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    ours, base = report.recommender.to_dict(), report.tfidf.to_dict()
    typer.echo(
        f"{file}: {report.articles} articles, relevant = same {report.label}, model {report.model} ({report.backend})"
    )
    typer.echo(f"{'metric':<10} {'recommender':>11} {'tfidf':>7}")
    for key in ours:
        typer.echo(f"{key:<10} {ours[key]:>11.3f} {base[key]:>7.3f}")


@app.command()
@handle_errors
def info(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Model, dimension, article count, index type and build time of an index."""
    from recommender.recommender import Recommender

    with Recommender.open(_index_dir(index)) as rec:
        facts = rec.info()
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        typer.echo(f"{key.ljust(width)}  {'-' if value is None else value}")


@app.command()
@handle_errors
def check(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Check an index's integrity (checksums, counts, vectors, lists). Exit 1 when something is wrong."""
    from recommender.storage.integrity import check_index

    report = check_index(_index_dir(index))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            _err(f"problem: {problem}")
        for note in report.notes:
            typer.echo(f"note: {note}")
        status = "ok" if report.ok else "DAMAGED"
        typer.echo(f"{status}: {report.articles} articles, {report.index_entries} index entries")
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


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
            help="Bearer key for PUT/DELETE (writes are refused without one).",
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
        int,
        typer.Option(
            "--workers",
            envvar="RECOMMENDER_WORKERS",
            min=1,
            max=64,
            help="Worker processes on the port, each a replica of the index (one per core).",
        ),
    ] = 1,
) -> None:
    """Serve related stories over HTTP (FastAPI + uvicorn), with the widget at /widget.js and a /demo page."""
    from recommender.serving.http.app import ApiConfig, create_app
    from recommender.serving.http.app import serve as run_server
    from recommender.serving.service import Service

    origins = [
        o.strip()
        for item in (cors_origin or settings.resolve("cors_origins") or [])
        for o in item.split(",")
        if o.strip()
    ]
    config = ApiConfig(
        api_key=settings.resolve("api_key", api_key),
        cors_origins=origins,
        max_body_bytes=int(settings.resolve("max_body_bytes", max_body_bytes)),
        max_text_chars=int(settings.resolve("max_text_chars", max_text_chars)),
        cache_max_age=int(settings.resolve("cache_max_age", cache_max_age)),
        max_in_flight=int(settings.resolve("max_in_flight", max_in_flight)),
    )
    service = Service(
        _index_dir(index),
        backend=settings.resolve("backend", backend),
        lock_timeout=float(settings.resolve("lock_timeout")),
    )
    service.load()  # fail fast with a clear message when there is no usable index
    if not config.api_key:
        log.warning("no API key: PUT and DELETE are refused (set --api-key or RECOMMENDER_API_KEY)")
    bind_host, bind_port = settings.resolve("host", host), int(settings.resolve("port", port))
    if workers > 1:
        from recommender.serving.http.app import serve_workers

        service.close()
        serve_workers(
            {
                "index": str(_index_dir(index)),
                "backend": settings.resolve("backend", backend),
                "api_key": config.api_key,
                "cors_origins": config.cors_origins,
                "max_body_bytes": config.max_body_bytes,
                "max_text_chars": config.max_text_chars,
                "cache_max_age": config.cache_max_age,
                "max_in_flight": config.max_in_flight,
                "lock_timeout": settings.resolve("lock_timeout"),
            },
            bind_host,
            bind_port,
            workers,
        )
        return
    run_server(create_app(service, config), bind_host, bind_port)


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

    with Recommender.open(_index_dir(index)) as rec:
        report = export_static(rec, out, k=int(k or 10))
    for skipped in report.skipped:
        _err(f"skipped: id {skipped[:60]!r}... has no portable file name")
    typer.echo(f"{report.summary()} into {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
