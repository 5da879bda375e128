"""The ``recommender`` command: a thin typer layer that parses, calls the library, and formats.

Commands live in modules by what they do (:mod:`.indexing`, :mod:`.querying`, :mod:`.admin`, :mod:`.serving`,
:mod:`.watch`, :mod:`.rules`, :mod:`.report`); this module registers them on the one typer app and sets up
logging. Exit codes: see :mod:`.common`.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from recommender.cli import admin, indexing, querying, report, rules, serving, watch  # noqa: F401 - registers them
from recommender.cli.common import app


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO) on stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # page extraction narrates every page it finds thin; a failed page is one "rejected:" line
        for name in ("trafilatura", "htmldate", "courlan"):
            logging.getLogger(name).setLevel(logging.ERROR)


__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
