#!/usr/bin/env python
# ruff: noqa: T201 - a script that prints its report
"""Per-worker embedding throughput of ``recommender build --ray``, for the 10M-article plan in docs/scaling.md.

    .venv/bin/python scripts/bench_ray.py                                  # torch and onnx-int8, 1 and 2 workers
    .venv/bin/python scripts/bench_ray.py --backends onnx-int8 --workers 2 --articles 331
    .venv/bin/python scripts/bench_ray.py --quick                          # seconds: the fake embedder

What the numbers are made of:

* one local Ray (``--cpus``, default all cores) is started once for the whole run (its start time is printed);
* for each backend and worker count, two builds into fresh indexes: ``--articles`` articles (the bundled ECB+
  sample, repeated with a unique tag when more are asked for) and a small warm-up build of ``--small`` articles.
  Each build's ``embed_seconds`` (manifest ``build``: from the first shard sent to the last vector committed)
  includes starting the actors and loading the model; the difference of the two builds does not, so
  ``steady texts/s = (N - n) / (t_N - t_n)`` and ``per worker = steady / workers`` (each worker: 1 CPU, 1 thread);
* ``in process`` is the same texts embedded by one process with every core's threads (no Ray), for comparison;
* ``--driver N`` (no Ray, no model): what the machine holding the index does with N articles whose vectors are
  already made -- staging and committing them to the catalog (articles/s), building the HNSW index over them
  (vectors/s), and precomputing related lists (ms per article, timed on a sample of 200 articles).

Performance is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender import build_index, load_embedder  # noqa: E402
from recommender.articles import validate_article  # noqa: E402
from recommender.distributed import RayOptions  # noqa: E402

SAMPLE = ROOT / "data" / "ecbplus-sample.jsonl"


def corpus(n: int) -> list[dict[str, Any]]:
    """``n`` article-length news texts: the ECB+ sample, repeated with a unique tag (a new content hash)."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    out = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        if i >= len(rows):
            row["id"] = f"{row['id']}#{i}"
            row["title"] = f"{row['title']} [#{i}]"
        out.append(row)
    return out


def write(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / f"corpus-{len(rows)}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ray_build(src: Path, folder: Path, model: str, backend: str, workers: int, plugins: tuple[str, ...]) -> dict:
    index_dir = folder / f"index-{backend}-{workers}-{src.stem}"
    shutil.rmtree(index_dir, ignore_errors=True)
    rows = sum(1 for _ in src.open(encoding="utf-8"))
    shard = max(1, -(-rows // (workers * 4)))  # four shards per worker: balanced, few commits
    started = time.monotonic()
    report = build_index(
        [src],
        index_dir,
        model=model,
        backend=backend,
        ray_address="local",
        ray_options=RayOptions(workers=workers, shard_size=shard, plugins=plugins),
    )
    wall = time.monotonic() - started
    build = json.loads((index_dir / "manifest.json").read_text())["build"]
    shutil.rmtree(index_dir, ignore_errors=True)
    return {
        "embedded": report.embedded,
        "embed_seconds": build["embed_seconds"],
        "wall_seconds": round(wall, 2),
        "workers": build["workers"],
    }


def in_process(model: str, backend: str, rows: list[dict[str, Any]]) -> float:
    embedder = load_embedder(model, backend)
    texts = [validate_article(r, "bench").text for r in rows]
    embedder.embed(texts[:4])  # warm up
    started = time.monotonic()
    embedder.embed(texts)
    return len(texts) / (time.monotonic() - started)


def driver_side(n: int, folder: Path) -> dict[str, float]:
    """Catalog commit rate, HNSW build rate and related-list cost for ``n`` synthetic articles (384-d vectors)."""
    import numpy as np

    from recommender.ingest.sources import Record
    from recommender.ranking import lists as related_lists
    from recommender.recommender import Recommender
    from recommender.storage.store import build_faiss, create_store
    from recommender.writer import WriteReport, apply_batch
    from tests.fakes import FakeEmbedder

    rows = corpus(n)
    articles = [validate_article(r, f"bench {i}") for i, r in enumerate(rows)]
    rng = np.random.default_rng(7)
    base = {a.content_hash: None for a in articles}
    vectors = rng.standard_normal((len(base), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = create_store(folder / "driver-index", model="bench-384", backend="torch", dimension=384)
    try:
        started = time.monotonic()
        for start in range(0, len(base), 1000):  # vectors arrive in shards, as from the Ray workers
            chunk = list(base)[start : start + 1000]
            store.catalog.store_vectors(chunk, vectors[start : start + 1000])
        report = WriteReport()
        apply_batch(
            store,
            (Record(f"bench {i}", a) for i, a in enumerate(articles)),
            report,
            lambda: FakeEmbedder(dimension=384),
            sweep=True,
        )
        commit_s = time.monotonic() - started
        started = time.monotonic()
        index, _ = build_faiss(store.catalog, "hnsw", 384)
        hnsw_s = time.monotonic() - started
        store.index = index
        ranker = Recommender(store).lists.ranker()
        sample = [articles[i].id for i in rng.choice(len(articles), size=min(200, len(articles)), replace=False)]
        started = time.monotonic()
        for article_id in sample:
            ranker.rank(ranker.subject(article_id), related_lists.DEPTH)
        per_list_ms = (time.monotonic() - started) / len(sample) * 1000
    finally:
        store.close()
    return {
        "articles": n,
        "commit_articles_per_s": round(n / commit_s),
        "hnsw_vectors_per_s": round(n / hnsw_s),
        "related_list_ms": round(per_list_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=331)
    parser.add_argument("--small", type=int, default=16, help="articles of the warm-up build (start-up cost)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx-int8"])
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray [default: all]")
    parser.add_argument("--quick", action="store_true", help="the fake embedder and 200 articles: checks the script")
    parser.add_argument(
        "--driver",
        type=int,
        default=0,
        metavar="N",
        help="only the index machine's part for N articles (catalog, HNSW, related lists)",
    )
    args = parser.parse_args()
    if args.driver:
        with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
            print(json.dumps(driver_side(args.driver, Path(tmp))))
        return
    logging.basicConfig(level=logging.WARNING)
    model, plugins = "sentence-transformers/all-MiniLM-L6-v2", ()
    if args.quick:
        model, plugins, args.articles, args.backends = "fake-hashing", ("tests.ray_fake",), 200, ["torch"]
        os.environ["PYTHONPATH"] = str(ROOT)  # the workers import tests.ray_fake

    import ray

    started = time.monotonic()
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning")
    ray_start = time.monotonic() - started
    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f};"
        f" ray {ray.__version__} local, {cpus} CPUs, started in {ray_start:.1f}s"
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    rows = corpus(args.articles)
    big, small = write(folder, rows), write(folder, corpus(args.small))
    results = []
    try:
        for backend in args.backends:
            local_rate = None if args.quick else in_process(model, backend, rows[:64])
            for workers in args.workers:
                warm = ray_build(small, folder, model, backend, workers, plugins)
                full = ray_build(big, folder, model, backend, workers, plugins)
                extra_seconds = full["embed_seconds"] - warm["embed_seconds"]
                steady = (full["embedded"] - warm["embedded"]) / extra_seconds if extra_seconds > 0 else None
                results.append(
                    {
                        "backend": backend,
                        "workers": workers,
                        "articles": full["embedded"],
                        "embed_s": full["embed_seconds"],
                        "startup_s": round(warm["embed_seconds"], 1),
                        "wall_s": full["wall_seconds"],  # None below: too fast to tell from the start-up (the fake)
                        "steady_texts_per_s": None if steady is None else round(steady, 2),
                        "per_worker_texts_per_s": None if steady is None else round(steady / workers, 2),
                        "in_process_texts_per_s": None if local_rate is None else round(local_rate, 2),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(
        "| backend | workers | articles | embed s | start-up s | steady texts/s | per worker texts/s "
        "| in process texts/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['workers']} | {r['articles']} | {r['embed_s']} | {r['startup_s']} | "
            f"{r['steady_texts_per_s']} | {r['per_worker_texts_per_s']} | {r['in_process_texts_per_s'] or '-'} |"
        )


if __name__ == "__main__":
    main()
