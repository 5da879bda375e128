"""The ``recommender`` command (typer): parses, calls the library, formats."""

from recommender.cli.app import app

__all__ = ["app"]
