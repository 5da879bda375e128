"""What editors' rules and "why this?" cost on the read path: ``Recommender.related(id, k=5)`` for every story of an
index, in process (no HTTP), p50/p99 in microseconds:

- plain (no rule stored; the same call the code before rules made);
- with ``--rules`` rules stored (blocks of random stories, a section and a tag excluded, pins under random stories);
- with ``explain=True`` on top.

    .venv/bin/python scripts/bench_read_rules.py --index /tmp/ecb-index

The index is copied first (rules are written to the copy). Run it with ``PYTHONPATH`` at an older checkout to get
the plain figure of the code before rules (the other rows are then skipped).
"""

# ruff: noqa: T201 - a script prints its report
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from recommender import Recommender


def timings(rec: Recommender, ids: list[str], rounds: int, **kwargs: object) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        for article_id in ids:
            started = time.perf_counter()
            rec.related(article_id, 5, **kwargs)  # type: ignore[arg-type]
            samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rules-"))
    index = work / "index"
    shutil.copytree(args.index, index)
    rows = []
    with Recommender.open(index) as rec:
        ids = [str(r[0]) for r in rec.store.catalog.conn.execute("SELECT id FROM articles ORDER BY key")]
        timings(rec, ids, 1)  # warm caches
        rows.append(("no rules", *timings(rec, ids, args.rounds)))
    try:
        from recommender.controls.rules import Rule, add_rule
    except ImportError:
        print("(code without rules: only the plain row)")
    else:
        rng = random.Random(7)
        for n in range(args.rules):
            kind = n % 5
            if kind < 3:
                add_rule(index, Rule.block(rng.choice(ids)))
            elif kind == 3:
                story, target = rng.sample(ids, 2)
                add_rule(index, Rule.pin(story, target, 1 + n % 3))
            else:
                add_rule(index, Rule.exclude(section=f"section-{n}") if n % 2 else Rule.exclude(tag=f"tag-{n}"))
        with Recommender.open(index) as rec:
            timings(rec, ids, 1)
            rows.append((f"{args.rules} rules", *timings(rec, ids, args.rounds)))
            rows.append((f"{args.rules} rules, explain", *timings(rec, ids, args.rounds, explain=True)))
    print(f"{len(ids)} stories x {args.rounds} rounds, related(id, k=5), in process")
    print("| case | p50 µs | p99 µs |")
    print("|---|---|---|")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.0f} | {p99:.0f} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
