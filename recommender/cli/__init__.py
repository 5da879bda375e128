"""The ``recommender`` command (typer): parses, calls the library, formats. Entry point: :data:`.app.app`."""
