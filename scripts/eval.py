"""Evaluate the default pipeline and the TF-IDF baseline on every labelled set in ../shared/data.

Usage (from the repository root)::

    .venv/bin/python scripts/eval.py                      # every set found, markdown tables on stdout
    .venv/bin/python scripts/eval.py --set keyword_weight=0   # ablation: embeddings only (any policy knob)
    .venv/bin/python scripts/eval.py --only ecbplus --json

Sets that are not there are skipped with a note. Embeddings are cached per (model, text) under
``$RECOMMENDER_CACHE`` (default ``~/.cache/recommender``), so a second run embeds nothing. Results and the exact
command are recorded in docs/evaluation.md.
"""

# ruff: noqa: T201 - a script prints its report
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender.embedding import DEFAULT_BACKEND, DEFAULT_MODEL  # noqa: E402
from recommender.evaluation.evaluate import cached_embedder, evaluate_file, evaluate_lee  # noqa: E402
from recommender.ranking.policy import RankingPolicy  # noqa: E402

#: (file or folder under the data folder, label, what it checks)
SETS = [
    ("ecbplus-events.jsonl", "event", "ECB+ events (relevant = same event)"),
    ("bbc-topics.jsonl", "topic", "BBC topics"),
    ("masakhanews-eng.jsonl", "topic", "MasakhaNEWS English"),
    ("masakhanews-fra.jsonl", "topic", "MasakhaNEWS French"),
    ("lee-similarity", None, "Lee pair similarity (50 articles, 1,225 human-rated pairs)"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of labelled sets")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help="embedding backend (torch, onnx, onnx-int8)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a ranking policy knob (repeatable)"
    )
    parser.add_argument("--only", action="append", default=[], help="run only sets whose name contains this")
    parser.add_argument("--json", action="store_true", help="one JSON object per set instead of tables")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    policy = RankingPolicy.from_assignments(args.set)
    embedder = cached_embedder(args.model, backend=args.backend)
    lists_rows: list[str] = []
    lee_rows: list[str] = []
    for name, label, title in SETS:
        if args.only and not any(o in name for o in args.only):
            continue
        path = args.data / name
        if not path.exists():
            print(f"skipped: {path} not found", file=sys.stderr)
            continue
        started = time.monotonic()
        if label is None:
            lee = evaluate_lee(path, embedder=embedder, policy=policy)
            seconds = time.monotonic() - started
            if args.json:
                print(json.dumps({"set": name, **lee.to_dict(), "seconds": round(seconds, 1)}))
            for system, scores in (("recommender", lee.recommender), ("tfidf", lee.tfidf)):
                lee_rows.append(f"| {title} | {system} | {scores['pearson']:.3f} | {scores['spearman']:.3f} |")
            continue
        report = evaluate_file(path, label=label, embedder=embedder, policy=policy)
        seconds = time.monotonic() - started
        if args.json:
            print(json.dumps({"set": name, **report.to_dict(), "seconds": round(seconds, 1)}))
        for system, s in (("recommender", report.recommender), ("tfidf", report.tfidf)):
            lists_rows.append(
                f"| {title} | {report.articles} | {system} | {s.p_at_5:.3f} | {s.mrr:.3f} | {s.ndcg_at_5:.3f} "
                f"| {s.copy_rate:.3f} | {s.coverage:.3f} |"
            )
        print(f"done: {name} in {seconds:.0f}s", file=sys.stderr)
    if not args.json:
        knobs = ", ".join(f"{k}={v}" for k, v in policy.to_dict().items())
        print(f"model {args.model} ({args.backend}), policy {knobs}\n")
        if lists_rows:
            print("| set | articles | system | P@5 | MRR | nDCG@5 | copy rate | coverage |")
            print("|---|---|---|---|---|---|---|---|")
            print("\n".join(lists_rows))
        if lee_rows:
            print("\n| set | system | Pearson | Spearman |")
            print("|---|---|---|---|")
            print("\n".join(lee_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
