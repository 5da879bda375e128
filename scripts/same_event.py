"""How often two stories close in time and in meaning report the same event: the "same event" wording of "why
this?" (recommender.controls.explain.SAME_EVENT_COSINE / SAME_EVENT_DAYS) is chosen from this table.

For every pair of articles of a dated, event-labelled set published at most DAYS apart, the share that share an
event label, by embedding cosine (default model and backend; embeddings cached under $RECOMMENDER_CACHE):

    .venv/bin/python scripts/same_event.py ../shared/data/allsides-dev.jsonl
"""

# ruff: noqa: T201 - a script prints its report
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.articles import compose_text  # noqa: E402
from recommender.embedding import DEFAULT_BACKEND, DEFAULT_MODEL, load_embedder  # noqa: E402
from recommender.embedding.cache import CachingEmbedder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--days", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.file.read_text("utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("published_at") and r.get("event")]
    embedder = CachingEmbedder(
        DEFAULT_MODEL, lambda: load_embedder(DEFAULT_MODEL, DEFAULT_BACKEND), backend=DEFAULT_BACKEND
    )
    vectors = embedder.embed([compose_text(r.get("title", ""), r.get("body", "")) for r in rows])
    when = np.array([datetime.fromisoformat(r["published_at"].replace("Z", "+00:00")).timestamp() for r in rows])
    events = np.array([r["event"] for r in rows])
    cosine = vectors @ vectors.T
    apart = np.abs(when[:, None] - when[None, :]) / 86400
    same = events[:, None] == events[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    print(f"{args.file.name}: {len(rows)} dated articles, model {DEFAULT_MODEL} ({DEFAULT_BACKEND})")
    print("| days apart at most | cosine at least | pairs | same event |")
    print("|---|---|---|---|")
    for days in args.days:
        for threshold in (0.4, 0.5, 0.6, 0.7, 0.8):
            pick = upper & (apart <= days) & (cosine >= threshold)
            pairs = int(pick.sum())
            share = f"{same[pick].mean():.1%}" if pairs else "-"
            print(f"| {days:g} | {threshold:.1f} | {pairs:,} | {share} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
