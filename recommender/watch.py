"""Following a site: read its feeds and sitemaps again every few minutes and add what is new or changed.

Each round reads every SOURCE through the normal write path (:func:`recommender.writer.add_articles`, or
:func:`~recommender.writer.build_index` when there is no index yet), so a new story enters its older
neighbours' lists at once, an unchanged story is skipped by its record hash, and a sitemap page with an
unchanged ``lastmod`` is not even fetched. A source that does not answer, a bad page or a busy index is
reported and tried again next round: the watcher itself never stops on them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.errors import RecommenderError
from recommender.ingest.records import IngestOptions
from recommender.ingest.sources import Source
from recommender.reports import WriteReport

log = logging.getLogger(__name__)

_INTERVAL_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_interval(text: str) -> float:
    """``--every``: ``30s``, ``5m``, ``1h`` or plain seconds, as seconds (at least 1)."""
    match = _INTERVAL_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an interval (use e.g. 30s, 5m or 1h)")
    seconds = float(match[1]) * _UNIT_SECONDS[(match[2] or "s").lower()]
    if seconds < 1:
        raise ValueError(f"{text!r}: the interval must be at least 1 second")
    return seconds


@dataclass(frozen=True)
class RoundResult:
    """What one round did with one SOURCE: a write report, or the error that kept it from being read."""

    round: int
    source: str
    report: WriteReport | None = None
    error: str | None = None


def watch(
    index_dir: Path | str,
    sources: Sequence[Source],
    *,
    every: float,
    rounds: int | None = None,
    ingest: IngestOptions | None = None,
    on_result: Callable[[RoundResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **write_options: Any,
) -> int:
    """Read ``sources`` into the index every ``every`` seconds, ``rounds`` times (None: until interrupted).
    ``write_options`` go to :func:`~recommender.writer.add_articles` (``embedder``, ``backend``, ``policy``,
    ``lock_timeout``; ``model`` only for the first build). Returns the rounds done."""
    from recommender.storage.store import IndexStore
    from recommender.writer import add_articles, build_index

    index_dir = Path(index_dir)
    model = write_options.pop("model", None)
    done = 0
    while rounds is None or done < rounds:
        started = time.monotonic()
        done += 1
        for source in sources:
            try:
                if IndexStore.exists(index_dir):
                    report = add_articles(index_dir, [source], ingest=ingest, **write_options)
                else:
                    report = build_index([source], index_dir, model=model, ingest=ingest, **write_options)
                result = RoundResult(done, str(source), report=report)
            except RecommenderError as exc:
                result = RoundResult(done, str(source), error=str(exc))
            except (OSError, ValueError) as exc:  # a file vanished, a disk hiccup: try again next round
                result = RoundResult(done, str(source), error=f"{type(exc).__name__}: {exc}")
            if result.error:
                log.warning("round %d: %s: %s", done, source, result.error)
            if on_result is not None:
                on_result(result)
        if rounds is not None and done >= rounds:
            break
        sleep(max(0.0, every - (time.monotonic() - started)))
    return done
