"""Run the real CLI in a subprocess with the fake embedder (for kill -9 tests).

``FAKE_BATCH_DELAY`` seconds are slept before each embedding batch and ``FAKE_MARKER_DIR`` (if set) gets one
file per finished batch, so a test can kill the process at a known point.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.cli.app import app  # noqa: E402
from tests import fakes  # noqa: E402

embedder = fakes.install()
delay = float(os.environ.get("FAKE_BATCH_DELAY", "0"))
marker_dir = os.environ.get("FAKE_MARKER_DIR")


def before_batch(number: int) -> None:
    if marker_dir:
        Path(marker_dir, f"batch-{number}").touch()
    time.sleep(delay)


embedder.before_batch = before_batch
if __name__ == "__main__":  # worker processes (serve --workers) import this file again: no second CLI run
    app()
