"""What every command shares: the typer app, error translation, option types, settings, progress and reports.

Exit codes: 0 done; 1 error, nothing written; 2 usage error (a bad flag, setting or policy value); 3 done, but
some articles were rejected (they are listed on stderr; the valid ones were indexed); 4 written to the catalog,
but a later step (the FAISS file, the related lists) failed on I/O, e.g. a full disk (a warning says which; the
next open or write finishes it, or ``recommender reindex``).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from recommender import settings as settings_mod
from recommender.errors import BatchRejected, InvalidRule, InvalidTime, RecommenderError
from recommender.ranking.policy import Filters, PolicyError
from recommender.reports import WriteReport
from recommender.settings import MAX_K, Settings, SettingsError
from recommender.storage.faults import STORAGE_EXCEPTIONS, storage_error

app = typer.Typer(
    name="recommender",
    help='Self-hosted "Also Read" suggestions for news sites: build an index, query it, serve it.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_INCOMPLETE = 4

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("recommender")


def err(message: str) -> None:
    typer.echo(message, err=True)


def handle_errors(func: F) -> F:
    """Domain errors become one line on stderr and exit code 1 (2 for a bad setting); Ctrl-C says what was
    kept. No tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BatchRejected as exc:
            for rejection in exc.rejections:
                err(f"rejected: {rejection}")
            err(f"Error: {exc}")
            raise typer.Exit(EXIT_ERROR) from None
        except (SettingsError, PolicyError, InvalidRule, InvalidTime) as exc:
            err(f"Error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except RecommenderError as exc:
            err(f"Error: {exc}")
            raise typer.Exit(EXIT_ERROR) from None
        except STORAGE_EXCEPTIONS as exc:  # a full disk, a damaged catalog, an unreadable file: one line
            err(f"Error: {storage_error(exc)}")
            raise typer.Exit(EXIT_ERROR) from None
        except UnicodeError as exc:  # e.g. an argument with bytes that are not UTF-8 (a lone surrogate)
            err(f"Error: a value is not valid Unicode ({exc}); nothing was written")
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err("Interrupted: the index is as it was before this command (embeddings made so far are kept).")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def load_settings(**flags: Any) -> Settings:
    """Settings for this command: its flags over ``RECOMMENDER_*`` over the config file over the defaults."""
    return settings_mod.load(flags)


IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index", "-i", envvar="RECOMMENDER_INDEX", help="Index folder [default: ./index]", show_default=False
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


def memory_budget(settings: Settings) -> int | None:
    """``--max-memory`` in bytes (None: no limit given)."""
    from recommender.storage.vector_index import parse_size

    try:
        return parse_size(settings.max_memory) if settings.max_memory is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max-memory") from None


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
KOpt = Annotated[
    int | None,
    typer.Option("-k", "--k", min=1, max=MAX_K, help=f"How many stories (1-{MAX_K}) [default: 5]", show_default=False),
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
StrictOpt = Annotated[bool, typer.Option("--strict", help="Refuse the whole batch if any article is invalid.")]
SectionOpt = Annotated[str | None, typer.Option("--section", help="Only stories of this section.")]
LanguageOpt = Annotated[str | None, typer.Option("--language", help="Only stories in this language (e.g. en).")]
SinceOpt = Annotated[datetime | None, typer.Option("--since", help="Only stories published on or after (ISO date).")]
UntilOpt = Annotated[datetime | None, typer.Option("--until", help="Only stories published on or before (ISO date).")]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", help="Never suggest this id (repeatable).")]


def make_filters(
    section: str | None,
    language: str | None,
    since: datetime | None,
    until: datetime | None,
    exclude: list[str] | None,
) -> Filters:
    """The per-request filters of ``similar`` and ``query`` (a date without a zone is UTC)."""
    return Filters.build(section, language, since, until, exclude)


class ProgressBar:
    """A rich progress bar on a terminal; log lines every few thousand texts otherwise."""

    def __init__(self, label: str = "embedding") -> None:
        self.label = label
        self._progress: Any = None
        self._task: Any = None
        self._last_logged = 0

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self._progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self._progress = Progress(
                    TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
                )
                self._progress.start()
                self._task = self._progress.add_task("embed", total=total)
            self._progress.update(self._task, completed=done)
        elif done == total or done - self._last_logged >= 5000:
            log.info("%s %d/%d", self.label, done, total)
            self._last_logged = done

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def print_report(report: WriteReport, as_json: bool) -> None:
    """A write's summary (or JSON) on stdout, its rejections on stderr; exit 3 when something was rejected."""
    for rejection in report.rejected:
        err(f"rejected: {rejection}")
    for missing in report.not_found:
        err(f"not found: {missing!r}")
    if report.incomplete:
        err(f"warning: {report.incomplete}")
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(report.summary())
    if report.incomplete:
        raise typer.Exit(EXIT_INCOMPLETE)
    if report.rejected or report.not_found:
        raise typer.Exit(EXIT_REJECTED)
