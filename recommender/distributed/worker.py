"""The worker side: the Ray Data callable class that reads a shard and embeds what the catalog lacks."""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.articles import article_from_json
from recommender.distributed.session import RayOptions, domain_error, import_ray
from recommender.distributed.shards import Shard
from recommender.embedding import Embedder, load_embedder
from recommender.errors import IndexMismatch, InvalidArticle
from recommender.ingest.sources import Loaded
from recommender.storage.catalog import Catalog
from recommender.storage.sql import keyset_pages

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

#: Texts a worker embeds at a time. (Ray Data joins a task's outputs into blocks of up to 128 MB, so the driver
#: gets one shard's results at a time: ``shard_size`` sets both the driver's memory and how often it commits.)
BLOCK_ROWS = 256


def _output_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("location", pa.string()),
            ("error", pa.string()),  # set for a rejected article
            ("data", pa.large_string()),  # the article as JSON (Article.to_dict)
            ("content_hash", pa.string()),
            ("vector", pa.binary()),  # float32 bytes, only when this worker embedded the text
        ]
    )


def _prepare_worker(plugins: Sequence[str], threads: int, cwd: str | None) -> None:
    """Same conditions on every worker: inference threads = the actor's CPUs, plug-ins imported, relative
    SOURCE paths resolved against the driver's folder where that folder exists (a local Ray, a shared mount)."""
    os.environ["RECOMMENDER_THREADS"] = str(max(1, threads))
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    for module in plugins:
        importlib.import_module(module)


def hash_keys(hashes: Sequence[str]) -> np.ndarray:
    """64-bit keys of content hashes (their first 16 hex digits): what the workers check "already embedded" with.

    A key shared by two texts (odds about n^2 / 2^65) only means one text is not embedded by a worker; the
    driver then embeds it before the commit, as it does for any vector that is missing.
    """
    return np.fromiter((int(h[:16], 16) for h in hashes), dtype=np.uint64, count=len(hashes))


def known_hash_keys(catalog: Catalog, page: int = 100_000) -> np.ndarray:
    """The sorted keys of every content hash the catalog has a vector for, read a page at a time."""
    sql = "SELECT content_hash FROM vectors WHERE content_hash > ? ORDER BY content_hash LIMIT ?"
    parts = [hash_keys([r[0] for r in rows]) for rows in keyset_pages(catalog.conn, sql, "", page)]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.searchsorted(sorted_keys, keys)
    at[at == len(sorted_keys)] = 0
    return sorted_keys[at] == keys


class ReadAndEmbed:
    """The Ray Data callable class: one per actor, so the model is loaded once per worker.

    Each call gets shard descriptors and yields blocks of articles (or rejections), in order, with a vector for
    every text not already in the catalog. With ``embed=False`` it only reads and validates (a ``--strict``
    check before anything is embedded).
    """

    def __init__(
        self,
        model: str,
        backend: str,
        plugins: Sequence[str],
        known: list[Any],
        threads: int,
        cwd: str | None,
        embed: bool = True,
    ) -> None:
        _prepare_worker(plugins, threads, cwd)
        self.embedder: Embedder | None = None
        if embed:
            self.embedder = load_embedder(model, backend)
            if self.embedder.name != model:
                raise IndexMismatch(f"embedder {self.embedder.name!r} does not match the index's model {model!r}")
        self.known = np.zeros(0, dtype=np.uint64)
        if known:
            import ray

            self.known = ray.get(known[0])

    def __call__(self, batch: dict[str, Any]) -> Iterator[pa.Table]:
        for shard_json in list(batch["shard"]):
            shard = Shard.from_json(str(shard_json))
            block: list[Loaded] = []
            seen: set[str] = set()
            for item in shard.read():
                block.append(item)
                if len(block) >= BLOCK_ROWS:
                    yield self._block(block, seen)
                    block = []
            if block:
                yield self._block(block, seen)

    def _block(self, items: list[Loaded], seen: set[str]) -> pa.Table:
        import pyarrow as pa

        columns: dict[str, list[Any]] = {name: [] for name in _output_schema().names}
        todo: list[int] = []
        hashes: list[str] = []
        for item in items:
            columns["location"].append(item.location)
            columns["vector"].append(None)
            if isinstance(item, InvalidArticle):
                columns["error"].append(item.reason)
                columns["data"].append(None)
                columns["content_hash"].append(None)
                continue
            article = item.article
            content_hash = article.content_hash
            columns["error"].append(None)
            columns["data"].append(json.dumps(article.to_dict(), ensure_ascii=False))
            columns["content_hash"].append(content_hash)
            if self.embedder is not None and content_hash not in seen:
                seen.add(content_hash)  # a copy within the shard is embedded once
                todo.append(len(columns["location"]) - 1)
                hashes.append(content_hash)
        if todo:
            new = ~_contains(self.known, hash_keys(hashes))
            rows = [row for row, keep in zip(todo, new, strict=True) if keep]
            if rows:
                assert self.embedder is not None
                texts = [article_from_json(columns["data"][row]).text for row in rows]
                vectors = np.ascontiguousarray(self.embedder.embed(texts), dtype=np.float32)
                for row, vector in zip(rows, vectors, strict=True):
                    columns["vector"][row] = vector.tobytes()
        return pa.table(columns, schema=_output_schema())


def _remote_embed(
    model: str, backend: str, plugins: Sequence[str], threads: int, cwd: str | None, texts: Sequence[str]
) -> tuple[str, int, np.ndarray]:
    """A Ray task: ``(name, dimension, vectors)`` of ``texts`` (none: just the model's facts)."""
    _prepare_worker(plugins, threads, cwd)
    embedder = load_embedder(model, backend)
    vectors = embedder.embed(list(texts)) if texts else np.zeros((0, embedder.dimension), dtype=np.float32)
    return embedder.name, embedder.dimension, vectors


class RemoteEmbedder:
    """An :class:`Embedder` whose work runs as a Ray task: the dimension of a new index, and the rare text the
    actors left out (a concurrent writer pruned its vector, or two hashes shared a 64-bit key)."""

    def __init__(self, name: str, backend: str, options: RayOptions, cwd: str | None) -> None:
        self.name = name
        self.backend = backend
        self._options = options
        self._cwd = cwd
        self._dimension: int | None = None

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        ray = import_ray()
        task = ray.remote(num_cpus=self._options.cpus_per_worker)(_remote_embed)
        try:
            name, dimension, vectors = ray.get(
                task.remote(
                    self.name,
                    self.backend,
                    self._options.plugins,
                    self._options.cpus_per_worker,
                    self._cwd,
                    list(texts),
                )
            )
        except Exception as exc:  # noqa: BLE001 - translated to the domain error behind it
            raise domain_error(exc) from None
        if name != self.name:
            raise IndexMismatch(f"embedder {name!r} does not match the index's model {self.name!r}")
        self._dimension = int(dimension)
        return np.asarray(vectors, dtype=np.float32)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._run([])
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if texts:
            log.warning("embedding %d text(s) the Ray workers left out in one more Ray task", len(texts))
        return self._run(texts)
