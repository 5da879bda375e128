"""The stored-list read every surface makes, timed in process: ``Service.related(id, 5)`` over random ids.

Runs against this checkout or, with ``PYTHONPATH`` set to an older checkout, against that code (its ``Service``
lived in ``recommender.service`` and took the index folder directly), so two versions can be compared back to
back on copies of one index:

    .venv/bin/python scripts/bench_read.py --index INDEX
    cd ../wt-old && PYTHONPATH=$PWD ../main/.venv/bin/python ../main/scripts/bench_read.py --index INDEX_COPY

Prints the p50 of each repetition (ms), so the spread between repetitions is visible.
"""

# ruff: noqa: T201 - a script prints its report
from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any


def open_service(index: str) -> Any:
    try:
        from recommender.serving.service import Service
        from recommender.settings import Settings
    except ImportError:  # the code before issue 11
        from recommender.service import Service  # type: ignore[no-redef]

        return Service(index, backend="onnx-int8-192", autosave_seconds=0)  # type: ignore[call-arg,arg-type]
    return Service(Settings(index=index, backend="onnx-int8-192"), autosave_seconds=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="an index built by scripts/bench.py (ids a0, a1, ...)")
    parser.add_argument("--articles", type=int, default=None, help="ids a0 .. a(N-1) (default: the catalog's count)")
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    service = open_service(args.index)
    service.load()
    total = args.articles or service._current().store.catalog.count()
    rng = random.Random(11)
    ids = [f"a{rng.randrange(total)}" for _ in range(args.reads)]
    for article_id in ids[:500]:
        service.related(article_id, 5)
    medians, cpu = [], []
    for _ in range(args.repetitions):
        times = []
        cpu_started = time.process_time()
        for article_id in ids:
            started = time.perf_counter()
            service.related(article_id, 5)
            times.append(time.perf_counter() - started)
        cpu.append((time.process_time() - cpu_started) / len(ids) * 1000)
        medians.append(statistics.median(times) * 1000)
    print("p50 ms per repetition:", " ".join(f"{m:.3f}" for m in medians))
    # CPU time is what a busy server pays, and it moves less than wall time when the machine is shared
    print("CPU ms per read, per repetition:", " ".join(f"{m:.3f}" for m in cpu))
    service._dirty = False  # a read-only run: nothing to save
    service.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
