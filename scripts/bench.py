#!/usr/bin/env python
# ruff: noqa: T201 - a script that prints its report
"""Speed and scale on one machine: embedding backends, build, memory, latency in process and over HTTP.

    .venv/bin/python scripts/bench.py --articles 10000 100000          # the full run (tens of minutes)
    .venv/bin/python scripts/bench.py --quick                          # seconds: a toy embedder, 100 articles

Sections (each says what its numbers are made of):

1. embedding: texts/s of each backend on the bundled ECB+ articles (article-length text), measured in the
   same run with the backends interleaved round by round (so a neighbour's load hits all alike), with the
   ratio to torch fp32 and the cosine of each backend's vectors to torch's;
2. eval (``--eval``): ``recommender eval``'s scores on the ECB+ sample for each backend, and the difference to
   torch fp32 in points;
3. index at N articles: the real ECB+ articles repeated with a unique title suffix; their vectors are the real
   model's vectors of the source article plus seeded noise (the real model cannot embed 100k texts here in a
   reasonable time: the embedding time of a real build is N / texts_per_s from section 1). The build runs the
   normal library path (catalog, FAISS, precomputed lists) in a child process for its peak RSS; serving figures
   come from another child that opens the index like a server does;
4. HTTP: ``recommender serve`` under ``wrk`` at a fixed concurrency (see :func:`http_latency`).

Performance is measured here and recorded in docs/benchmarks.md, never asserted in tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender.articles import validate_article  # noqa: E402
from recommender.embedding import BACKENDS, DEFAULT_BACKEND, DEFAULT_MODEL, available_threads, normalise  # noqa: E402
from recommender.errors import ModelUnavailable  # noqa: E402

SAMPLE = ROOT / "data" / "ecbplus-sample.jsonl"
QUICK_MODEL = "bench-hashing"
_TAG = re.compile(r"\[#(\d+)\]")
_WORD = re.compile(r"\w{3,}")


# -- embedders used for the index part --------------------------------------------------------------------------
class HashingEmbedder:
    """A toy bag-of-words embedder (``--quick``): no model, deterministic, similar words give similar vectors."""

    def __init__(self, name: str = QUICK_MODEL, backend: str = "hashing", dimension: int = 384) -> None:
        self.name = name
        self.backend = backend
        self._dimension = dimension
        self._table = np.random.default_rng(0).standard_normal((4096, dimension)).astype(np.float32)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            rows = [
                int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little") % 4096
                for w in _WORD.findall(text.casefold())
            ]
            if rows:
                out[row] = self._table[rows].sum(axis=0)
        return normalise(out)


class PerturbedEmbedder:
    """Vectors for the scaled-up archive: the source article's real vector plus seeded noise, renormalised.

    A text carries its copy number as ``[#n]`` in its title; copy ``n`` of source article ``n % len(base)`` gets
    noise seeded by ``n``, scaled so a copy keeps a cosine of about ``1 / sqrt(1 + noise**2)`` to its source.
    """

    def __init__(self, base: np.ndarray, name: str, backend: str, noise: float = 0.6) -> None:
        self.base = base
        self.name = name
        self.backend = backend
        self.noise = noise

    @property
    def dimension(self) -> int:
        return int(self.base.shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        scale = self.noise / np.sqrt(self.dimension)
        for row, text in enumerate(texts):
            match = _TAG.search(text)
            n = int(match.group(1)) if match else int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            rng = np.random.default_rng(n)
            out[row] = self.base[n % len(self.base)] + scale * rng.standard_normal(self.dimension)
        return normalise(out)


class MemoEmbedder:
    """Wraps an embedder and remembers vectors by text (the eval re-uses section 1's vectors)."""

    def __init__(self, inner: Any, known: dict[str, np.ndarray] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.backend = inner.backend
        self.known = dict(known or {})

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.known]
        if todo:
            self.known.update(zip(todo, self.inner.embed(todo), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([self.known[t] for t in texts])


# -- small helpers ----------------------------------------------------------------------------------------------
def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples`` (seconds) in milliseconds."""
    if not samples:
        return float("nan"), float("nan")
    arr = np.asarray(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sample_articles() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]


def sample_texts() -> list[str]:
    return [validate_article(row, "sample").text for row in sample_articles()]


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for module in ("torch", "onnxruntime", "faiss", "numpy"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            pass
    return (
        f"{cpu}; {os.cpu_count()} cpus, {available_threads()} usable; python {platform.python_version()}; "
        + ", ".join(versions)
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (the report is pasted into docs/benchmarks.md as is)."""
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


# -- 1. embedding ---------------------------------------------------------------------------------------------------
def load_backend(name: str, quick: bool, model: str = DEFAULT_MODEL) -> Any:
    if quick or name == "hashing":
        return HashingEmbedder()
    from recommender.embedding import load_embedder

    return load_embedder(model, name)


def variant_label(model: str, backend: str, models: Sequence[str]) -> str:
    """How a (model, backend) pair is named in the tables: the backend alone when one model is compared."""
    return backend if len(models) == 1 else f"{model.rsplit('/', 1)[-1]} {backend}"


def embedding_throughput(
    backends: Sequence[str],
    texts: Sequence[str],
    rounds: int,
    quick: bool,
    models: Sequence[str] = (DEFAULT_MODEL,),
) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """texts/s per (model, backend), interleaved round by round; returns the report, the embedders and vectors.

    The first variant is the reference of the speed ratio; cosines compare each variant with the first variant of
    the same model (two models' vectors live in different spaces).
    """
    embedders: dict[str, Any] = {}
    load_s: dict[str, float] = {}
    model_of: dict[str, str] = {}
    for model in models:
        for backend in backends:
            name = variant_label(model, backend, models)
            model_of[name] = model
            started = time.perf_counter()
            try:
                embedders[name] = load_backend(backend, quick, model)
            except ModelUnavailable as exc:  # e.g. an int8 backend refused for this architecture: say so, go on
                print(f"skipped {name}: {exc}", file=sys.stderr)
                continue
            embedders[name].embed(list(texts[:4]))  # warm-up (and, the first time, the ONNX export)
            load_s[name] = time.perf_counter() - started
    backends = list(embedders)
    speeds: dict[str, list[float]] = {name: [] for name in backends}
    single: dict[str, list[float]] = {name: [] for name in backends}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name in backends:
            started = time.perf_counter()
            vectors[name] = embedders[name].embed(list(texts))
            speeds[name].append(len(texts) / (time.perf_counter() - started))
            for text in texts[:10]:  # one short query at a time: what a free-text request costs
                started = time.perf_counter()
                embedders[name].embed([text[:200]])
                single[name].append(time.perf_counter() - started)
    reference = backends[0]
    ref_speed = statistics.median(speeds[reference])
    rows = []
    for name in backends:
        speed = statistics.median(speeds[name])
        same_model = next(n for n in backends if model_of[n] == model_of[name])
        cos = np.sum(vectors[name] * vectors[same_model], axis=1)
        rows.append(
            [
                name,
                f"{speed:.1f}",
                f"{speed / ref_speed:.2f}x",
                f"{cos.mean():.4f} / {cos.min():.4f}",
                f"{percentiles(single[name])[0]:.1f}",
                f"{load_s[name]:.1f}",
            ]
        )
    mean_chars = int(np.mean([len(t) for t in texts]))
    report = (
        f"{len(texts)} texts (mean {mean_chars} characters), {rounds} rounds interleaved, median shown; "
        f"{available_threads()} threads\n\n"
        + table(
            [
                "backend",
                "texts/s",
                f"vs {reference}",
                "cosine to the model's first backend mean / min",
                "one 200-char query p50 ms",
                "load s",
            ],
            rows,
        )
    )
    return report, embedders, vectors


# -- 2. eval ----------------------------------------------------------------------------------------------------------
def eval_backends(embedders: dict[str, Any], texts: Sequence[str], vectors: dict[str, np.ndarray]) -> str:
    from recommender.evaluation.evaluate import evaluate_file

    rows = []
    reference: dict[str, float] | None = None
    for name, embedder in embedders.items():
        memo = MemoEmbedder(embedder, dict(zip(texts, vectors[name], strict=True)))
        scores = evaluate_file(SAMPLE, embedder=memo).recommender.to_dict()
        reference = reference or scores
        delta = max(abs(scores[k] - reference[k]) * 100 for k in ("p_at_5", "mrr", "ndcg_at_5"))
        rows.append(
            [
                name,
                f"{scores['p_at_5']:.4f}",
                f"{scores['mrr']:.4f}",
                f"{scores['ndcg_at_5']:.4f}",
                f"{scores['coverage']:.4f}",
                f"{delta:.2f}",
            ]
        )
    return (
        "`recommender eval` on data/ecbplus-sample.jsonl (relevant = same event), the full ranking pipeline\n\n"
        + table(["backend", "P@5", "MRR", "nDCG@5", "coverage", "largest change vs first, points"], rows)
    )


# -- 3. index at N articles -------------------------------------------------------------------------------------------
def write_archive(path: Path, n: int, body_chars: int | None = None, language: str | None = None) -> None:
    """``n`` articles: the ECB+ sample repeated, each copy with a unique ``[#n]`` title tag and its own date;
    with ``language``, each record says its language (else the build detects it)."""
    rows = sample_articles()
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            src = rows[i % len(rows)]
            day = 1 + (i * 7919) % 1500
            article = {
                "id": f"a{i}",
                "title": f"{src.get('title') or ''} [#{i}]",
                "body": (src.get("body") or "")[:body_chars],
                "url": f"https://news.example/{i}",
                "published_at": f"{2020 + day // 365}-{1 + (day % 365) // 31:02d}-{1 + day % 28:02d}T08:00:00Z",
                "section": f"topic-{src.get('topic', 'x')}",
            }
            if language:
                article["language"] = language
            handle.write(json.dumps(article) + "\n")


def _child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``target(*args)`` in a fresh process (its peak RSS is its own) and return its result dict."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run_child, args=(child, target, args))
    proc.start()
    result = parent.recv()
    proc.join()
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def _run_child(conn: Any, target: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    try:
        conn.send(target(*args))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        conn.send({"error": f"{exc!r}\n{traceback.format_exc()}"})


def build_child(
    source: str, index_dir: str, base: np.ndarray, name: str, backend: str, max_memory: int | None
) -> dict[str, Any]:
    from recommender import build_index

    before = current_rss_mb()
    embedder = PerturbedEmbedder(base, name, backend) if name != QUICK_MODEL else HashingEmbedder()
    started = time.perf_counter()
    report = build_index(
        [source], index_dir, model=name, backend=backend, embedder=embedder, max_memory_bytes=max_memory
    )
    seconds = time.perf_counter() - started
    m = report.manifest
    assert m is not None
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "start_rss_mb": before,
        "index_type": m.index_type,
        "index_bytes": m.index_bytes,
        "recall_at_10": m.recall_at_10,
        "articles": m.articles,
    }


def serve_child(index_dir: str, backend: str, quick: bool, samples: int, queries: list[str]) -> dict[str, Any]:
    """Open the index as a server does and time related-by-id, free text and add-one in process."""
    from recommender.serving.service import Service
    from recommender.settings import Settings

    before = current_rss_mb()
    embedder = HashingEmbedder() if quick else None
    started = time.perf_counter()
    service = Service(Settings(index=index_dir, backend=backend), embedder=embedder, autosave_seconds=0)
    service.load()
    open_s = time.perf_counter() - started
    rec = service._current()
    open_rss = current_rss_mb()
    total = rec.store.catalog.count()
    rng = random.Random(7)
    ids = [f"a{rng.randrange(total)}" for _ in range(samples)]
    for article_id in ids[:20]:
        service.related(article_id, 5)
    lookup = []
    for article_id in ids:
        t = time.perf_counter()
        service.related(article_id, 5)
        lookup.append(time.perf_counter() - t)
    live = []
    for article_id in ids[: max(20, samples // 5)]:
        t = time.perf_counter()
        rec.live_related(article_id, 5)
        live.append(time.perf_counter() - t)
    service.related_to_text(queries[0], 5)  # loads the model
    text = []
    for query in queries:
        t = time.perf_counter()
        service.related_to_text(query, 5)
        text.append(time.perf_counter() - t)
    rows = sample_articles()
    if not quick:  # a one-time load, not timed (as the embedding model's above): an add detects its language
        from recommender.ingest.language import detect_language

        detect_language("The language model loads once, before the first article without a language.")
    adds = []
    for n in range(5 if quick else 30):
        src = rows[(n * 37) % len(rows)]
        payload = {
            "title": f"Breaking: {src.get('title')} (update {n})",
            "body": f"Update {n}. {src.get('body')}",
            "published_at": "2026-01-01T08:00:00Z",
        }
        t = time.perf_counter()
        service.upsert(f"new-{n}", payload)
        adds.append(time.perf_counter() - t)
    result = {
        "open_s": open_s,
        "start_rss_mb": before,
        "open_rss_mb": open_rss,
        "peak_rss_mb": peak_rss_mb(),
        "lookup": percentiles(lookup),
        "live": percentiles(live),
        "text": percentiles(text),
        "add": percentiles(adds),
        "samples": [len(lookup), len(live), len(text), len(adds)],
    }
    service._dirty = False  # a benchmark index: no need to save the FAISS file on close
    service.close()
    return result


def index_section(
    n: int,
    workdir: Path,
    base: np.ndarray,
    name: str,
    backend: str,
    quick: bool,
    max_memory: int | None,
    samples: int,
    queries: list[str],
    language: str | None = None,
) -> tuple[list[Any], Path]:
    source = workdir / f"archive-{n}.jsonl"
    index_dir = workdir / f"index-{n}"
    write_archive(source, n, body_chars=300 if quick else None, language=language)
    built = _child(build_child, str(source), str(index_dir), base, name, backend, max_memory)
    catalog_bytes = sum(p.stat().st_size for p in index_dir.glob("catalog.sqlite*"))
    served = _child(serve_child, str(index_dir), backend, quick, samples, queries)
    recall = built["recall_at_10"]
    opened = served["open_rss_mb"] - served["start_rss_mb"]
    row = [
        f"{n:,}",
        built["index_type"],
        "exact" if recall is None else f"{recall:.3f}",
        f"{built['seconds']:.1f}",
        f"{built['peak_rss_mb']:.0f}",
        f"{built['index_bytes'] / n:,.0f}",
        f"{catalog_bytes / n:,.0f}",
        f"{opened:.0f} ({opened * 2**20 / n:,.0f} B/article)",
        "{:.2f} / {:.2f}".format(*served["lookup"]),
        "{:.1f} / {:.1f}".format(*served["live"]),
        "{:.1f} / {:.1f}".format(*served["text"]),
        "{:.0f} / {:.0f}".format(*served["add"]),
    ]
    return row, index_dir


INDEX_HEADERS = [
    "articles",
    "index",
    "recall@10",
    "build s",
    "build peak RSS MB",
    "FAISS B/article",
    "catalog B/article",
    "served RSS MB",
    "related-by-id p50/p99 ms (stored list)",
    "live search p50/p99 ms",
    "free text p50/p99 ms",
    "add one p50/p99 ms",
]


def clustered_vectors(start: int, stop: int, dimension: int = 384, centres: int = 1000) -> np.ndarray:
    """Rows ``start..stop`` of a synthetic archive: ``centres`` topics, each row its topic plus noise (seeded)."""
    topics = np.random.default_rng(0).standard_normal((centres, dimension)).astype(np.float32)
    rng = np.random.default_rng(start + 1)
    noise = rng.standard_normal((stop - start, dimension)).astype(np.float32)
    rows = topics[np.arange(start, stop) % centres] + 0.9 * noise
    return normalise(rows)


def vector_index_child(n: int, max_memory: int | None, workdir: str) -> dict[str, Any]:
    """The FAISS index alone at ``n`` synthetic vectors: build time, peak RSS, bytes, search latency, recall."""
    from recommender.storage.store import RECALL_QUERIES
    from recommender.storage.vector_index import (
        choose_index_type,
        measure_recall,
        new_index,
        single_thread,
        write_index,
    )

    dimension, chunk = 384, 50_000
    start_rss = current_rss_mb()
    kind = choose_index_type(n, dimension, max_memory)
    started = time.perf_counter()
    index = new_index(kind, dimension, n)
    if not index.is_trained:
        index.train(clustered_vectors(0, min(n, 100_000)))
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        index.add_with_ids(clustered_vectors(lo, hi), np.arange(lo, hi, dtype=np.int64))
    build_s = time.perf_counter() - started
    built_rss = current_rss_mb()
    path = Path(workdir) / f"synthetic-{n}.faiss"
    write_index(index, path)
    size = path.stat().st_size
    path.unlink()
    queries = clustered_vectors(n, n + 1000)  # unseen rows of the same topics
    latency = []
    for row in queries:
        t = time.perf_counter()
        with single_thread():  # as IndexStore.search does
            index.search(row.reshape(1, -1), 36)  # what a k=5 request asks the index for
        latency.append(time.perf_counter() - t)
    batches = (clustered_vectors(lo, min(n, lo + chunk)) for lo in range(0, n, chunk))
    recall = 1.0 if kind == "flat" else measure_recall(index, queries[:RECALL_QUERIES], batches, k=10)
    return {
        "kind": kind,
        "build_s": build_s,
        "bytes": size,
        "rss_mb": built_rss - start_rss,
        "peak_rss_mb": peak_rss_mb(),
        "search": percentiles(latency),
        "recall": recall,
    }


def vector_index_section(sizes: Sequence[int], max_memory: int | None, workdir: Path) -> str:
    rows = []
    for n in sizes:
        r = _child(vector_index_child, n, max_memory, str(workdir))
        rows.append(
            [
                f"{n:,}",
                r["kind"],
                f"{r['recall']:.3f}",
                f"{r['build_s']:.1f}",
                f"{r['bytes'] / n:,.0f}",
                f"{r['rss_mb']:,.0f} ({r['rss_mb'] * 2**20 / n:,.0f} B/article)",
                f"{r['peak_rss_mb']:,.0f}",
                "{:.2f} / {:.2f}".format(*r["search"]),
            ]
        )
        print(f"(vector index {n:,} done)", file=sys.stderr, flush=True)
    return table(
        [
            "vectors",
            "index",
            "recall@10",
            "build s",
            "file B/vector",
            "RSS growth MB",
            "peak RSS MB",
            "search k=36 p50/p99 ms",
        ],
        rows,
    )


# -- 4. HTTP -----------------------------------------------------------------------------------------------------
WRK_SCRIPT = """
math.randomseed(7)
local n = {n}
request = function()
  return wrk.format("GET", "/v1/articles/a" .. math.random(0, n - 1) .. "/related?k=5")
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def http_latency(
    index_dir: Path, articles: int, backend: str, concurrency: Sequence[int], seconds: int, workers: int = 1
) -> str:
    """HTTP latency over ``recommender serve`` with a real load generator: wrk from Debian (``apt-get install -y wrk``).

    GET /v1/articles/{id}/related?k=5 for random ids at a fixed concurrency (wrk: 2 threads, each of
    ``concurrency`` connections in turn, on one server); the server and wrk share this machine's cores. Reports
    requests/s, p50/p99 and every error (socket errors and non-2xx responses) per concurrency.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return "skipped: wrk is not installed (apt-get install -y wrk)"
    cli = ROOT / ".venv" / "bin" / "recommender"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "recommender.cli.app"]
    port = _free_port()
    env = dict(os.environ, RECOMMENDER_BACKEND=backend)
    server = subprocess.Popen(
        [*command, "serve", "--index", str(index_dir), "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode(errors="replace")[-500:] if server.stderr else ""
                return f"skipped: the server did not become ready ({err.strip()})"
            time.sleep(0.5)
        script = index_dir / "wrk.lua"
        script.write_text(WRK_SCRIPT.replace("{n}", str(articles)))
        outputs = []
        for connections in concurrency:
            base = [wrk, "-t2", f"-c{connections}", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"]
            subprocess.run([*base[:4], "-d3s", *base[4:]], capture_output=True, text=True, timeout=60)  # warm-up
            outputs.append(
                (
                    connections,
                    subprocess.run(
                        [*base[:4], f"-d{seconds}s", *base[4:]], capture_output=True, text=True, timeout=seconds + 60
                    ).stdout,
                )
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    rows = []
    for connections, out in outputs:
        row = _wrk_row(out, articles, workers, connections, seconds)
        if isinstance(row, str):
            return row
        rows.append(row)
    return table(
        ["articles", "workers", "connections", "seconds", "requests", "requests/s", "p50 ms", "p99 ms", "errors"], rows
    )


def _wrk_row(out: str, articles: int, workers: int, concurrency: int, seconds: int) -> list[str] | str:
    """One table row from wrk's report (or the reason it could not be read)."""
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    if not (rps and p50 and p99 and total):
        return "failed to parse wrk output:\n" + out
    return [
        f"{articles:,}",
        str(workers),
        str(concurrency),
        f"{seconds}",
        total.group(1),
        f"{float(rps.group(1)):,.0f}",
        f"{_wrk_ms(p50.group(1)):.2f}",
        f"{_wrk_ms(p99.group(1)):.2f}",
        str(errors),
    ]


# -- main ------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, nargs="+", default=None, help="archive sizes (default 10000)")
    parser.add_argument(
        "--archive-language",
        default=None,
        help="give every archive record this language (e.g. en): the build then detects none",
    )
    parser.add_argument("--quick", action="store_true", help="seconds: toy embedder, 100 short articles, no HTTP")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        choices=BACKENDS,
        help="embedding backends to compare, the first is the reference (default: all)",
    )
    parser.add_argument(
        "--serve-backend",
        default=DEFAULT_BACKEND,
        choices=BACKENDS,
        help=f"backend for free-text queries, adds and the server (default {DEFAULT_BACKEND})",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[DEFAULT_MODEL],
        help="models to compare, each on every backend (more than one needs --embedding-only), e.g. "
        "all-MiniLM-L6-v2 all-mpnet-base-v2",
    )
    parser.add_argument("--embed-texts", type=int, default=331, help="ECB+ texts per embedding round")
    parser.add_argument("--rounds", type=int, default=2, help="embedding rounds per backend")
    parser.add_argument("--eval", action="store_true", help="also run recommender eval per backend")
    parser.add_argument(
        "--embedding-only", action="store_true", help="stop after section 1 (and 2 with --eval): no index, no HTTP"
    )
    parser.add_argument("--max-memory", default=None, help="memory budget for the built indexes, e.g. 4GB")
    parser.add_argument("--http", action="store_true", help="also measure HTTP with wrk (needs recommender serve)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers for the HTTP measurement")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[32],
        help="HTTP connections (several values: one wrk run each, on the same server)",
    )
    parser.add_argument("--http-seconds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000, help="related-by-id requests timed in process")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the built indexes here")
    parser.add_argument(
        "--vector-sizes",
        type=int,
        nargs="*",
        default=None,
        help="also time the FAISS index alone on synthetic clustered vectors (e.g. 100000 1000000)",
    )
    args = parser.parse_args(argv)
    if len(args.models) > 1 and not args.embedding_only:
        parser.error("--models with more than one model needs --embedding-only")

    quick = args.quick
    sizes = args.articles or ([100] if quick else [10_000])
    backends = ["hashing"] if quick else list(args.backends or BACKENDS)
    from recommender.storage.vector_index import parse_size

    max_memory = parse_size(args.max_memory) if args.max_memory else None
    print("# recommender benchmark\n")
    print(f"command: `{' '.join(['scripts/bench.py', *(argv if argv is not None else sys.argv[1:])])}`  ")
    print(f"machine: {machine()}  ")
    mode = "  \nmode: --quick (toy hashing embedder, tiny sizes)" if quick else ""
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}{mode}")

    texts = sample_texts()[: (24 if quick else args.embed_texts)]
    print("\n## 1. embedding throughput\n")
    report, embedders, vectors = embedding_throughput(
        backends, texts, 1 if quick else args.rounds, quick, args.models[:1] if quick else args.models
    )
    print(report, flush=True)

    if args.eval and not quick:
        print("\n## 2. relevance per backend\n")
        print(eval_backends(embedders, texts if len(texts) == 331 else sample_texts(), vectors), flush=True)
    if args.embedding_only:
        return 0

    if quick:
        base = HashingEmbedder().embed(sample_texts())
        name, backend = QUICK_MODEL, "hashing"
    else:
        ref = args.serve_backend if args.serve_backend in embedders else backends[0]
        all_texts = sample_texts()
        base = MemoEmbedder(embedders[ref], dict(zip(texts, vectors[ref], strict=True))).embed(all_texts)
        name, backend = DEFAULT_MODEL, args.serve_backend
    del embedders
    queries = [t[:200] for t in sample_texts()[: (20 if quick else 100)]]
    print("\n## 3. index: build, memory, latency in process\n")
    print(
        f"archive: the {len(base)} ECB+ articles repeated with a unique title tag; vectors = the real vector of the "
        f"source article ({'toy hashing embedder' if quick else backend}) + seeded noise (cosine to source about "
        f"{1 / np.sqrt(1 + 0.6**2):.2f}); embedding is not in the build time (see section 1: a real build adds "
        f"N / texts_per_s). Free text and add one embed for real with {backend}. In-process timings are single "
        "requests, one at a time.\n",
        flush=True,
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    built: list[tuple[int, Path]] = []
    try:
        for n in sizes:
            row, index_dir = index_section(
                n,
                workdir,
                base,
                name,
                backend,
                quick,
                max_memory,
                200 if quick else args.samples,
                queries,
                args.archive_language,
            )
            rows.append(row)
            built.append((n, index_dir))
            print(f"({n:,} done)", file=sys.stderr, flush=True)
        print(table(INDEX_HEADERS, rows), flush=True)

        vector_sizes = args.vector_sizes if args.vector_sizes is not None else ([2000] if quick else [])
        if vector_sizes:
            print("\n## 3b. the vector index alone, synthetic clustered vectors\n")
            print(
                "384-d unit vectors around 1,000 random topic centres (noise 0.9 per unit norm), ids as in the "
                "catalog; no catalog, no ranking. Search asks for 36 candidates, as a k=5 request does.\n"
            )
            print(vector_index_section(vector_sizes, max_memory, workdir), flush=True)

        print("\n## 4. HTTP: related by id over `recommender serve`\n")
        if quick or not args.http:
            print("skipped (run with --http; not in --quick)")
        else:
            print(
                f"wrk -t2 -c{'/'.join(map(str, args.concurrency))} -d{args.http_seconds}s, random ids, "
                "GET /v1/articles/{id}/related?k=5; "
                "server and load generator on the same machine\n"
            )
            for n, index_dir in built:
                print(
                    http_latency(index_dir, n, backend, args.concurrency, args.http_seconds, args.workers), flush=True
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
