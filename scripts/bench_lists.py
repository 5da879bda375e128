#!/usr/bin/env python
# ruff: noqa: T201 - a script that prints its report
"""The list precompute on an existing index: loading the archive (time, peak RSS) and recomputing every list.

    .venv/bin/python scripts/bench_lists.py INDEX_DIR            # e.g. an index left by bench.py --workdir

Rewrites the index's precomputed lists (the same lists, recomputed). Run it on a benchmark index, not a live one.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender import Recommender  # noqa: E402
from recommender.ranking import bulk  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", type=Path)
    args = parser.parse_args(argv)
    with Recommender.open(args.index) as rec:
        before = peak_mb()
        started = time.perf_counter()
        archive = bulk.load_archive(rec.store.catalog, rec.policy)
        print(
            f"load archive: {time.perf_counter() - started:.1f} s, peak RSS {peak_mb():.0f} MB "
            f"(index open: {before:.0f} MB), arrays {archive.nbytes / 1e6:.0f} MB, {len(archive.keys):,} articles"
        )
        del archive
        started = time.perf_counter()
        count = rec.lists.refresh_all()
        print(f"refresh_all: {count:,} lists in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
