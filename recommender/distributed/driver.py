"""The driver side: the Ray Data job, and its results streamed in order into the normal write path."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.articles import article_from_json
from recommender.distributed.session import RayOptions, domain_error, import_ray, ray_session
from recommender.distributed.shards import Shard, plan_shards
from recommender.distributed.worker import ReadAndEmbed, RemoteEmbedder, known_hash_keys
from recommender.embedding import Embedder
from recommender.errors import InvalidArticle, RecommenderError
from recommender.ingest.sources import Loaded, Record, check_sources
from recommender.reports import Progress, WriteReport
from recommender.storage.catalog import Catalog
from recommender.storage.sql import in_chunks

if TYPE_CHECKING:
    import pyarrow as pa

    from recommender.storage.store import IndexStore

log = logging.getLogger(__name__)


class _SeenIds:
    """Ids already read in this batch, in a temp table of the catalog connection (disk-backed, not in RAM):
    a later article with the same id is rejected, naming where the first was, as a local build does."""

    def __init__(self, catalog: Catalog) -> None:
        self.conn = catalog.conn
        self.conn.execute("DROP TABLE IF EXISTS temp.ray_seen")
        self.conn.execute("CREATE TEMP TABLE ray_seen (id TEXT PRIMARY KEY, location TEXT) WITHOUT ROWID")

    def first_locations(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        wanted = list(set(ids))
        for chunk, marks in in_chunks(wanted):
            query = f"SELECT id, location FROM temp.ray_seen WHERE id IN ({marks})"
            out.update(self.conn.execute(query, chunk).fetchall())
        return out

    def add(self, rows: Sequence[tuple[str, str]]) -> None:
        self.conn.executemany("INSERT INTO temp.ray_seen(id, location) VALUES (?, ?)", rows)

    def drop(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS temp.ray_seen")


@dataclass
class JobSettings:
    """One build's Ray settings, resolved against the cluster; ``info`` goes into the manifest's ``build``."""

    options: RayOptions
    cwd: str | None
    address: str
    info: dict[str, Any] = field(default_factory=dict)

    def wanted_workers(self) -> int:
        """``workers``, else as many as the cluster's CPUs allow at ``cpus_per_worker`` each."""
        if self.options.workers:
            return self.options.workers
        cpus = float(import_ray().cluster_resources().get("CPU", 1))
        return max(1, int(cpus // max(1, self.options.cpus_per_worker)))

    def workers(self, shards: int) -> int:
        return max(1, min(self.wanted_workers(), shards))


def _dataset(shards: Sequence[Shard], job: JobSettings, model: str, backend: str, known: list[Any], embed: bool) -> Any:
    ray = import_ray()
    items = [{"shard": shard.to_json()} for shard in shards]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    kwargs = {
        "model": model,
        "backend": backend,
        "plugins": tuple(job.options.plugins),
        "known": known,
        "threads": job.options.cpus_per_worker,
        "cwd": job.cwd,
        "embed": embed,
    }
    workers = job.workers(len(shards))
    job.info.update(workers=workers, cpus_per_worker=job.options.cpus_per_worker)
    return ds.map_batches(
        ReadAndEmbed,
        fn_constructor_kwargs=kwargs,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=job.options.cpus_per_worker,
    )


@contextmanager
def _data_context() -> Iterator[None]:
    """Results in source order (the first of two articles with one id wins, as locally); our progress bar, not
    Ray's; Ray Data's INFO lines only with ``--verbose``."""
    ray = import_ray()
    ctx = ray.data.DataContext.get_current()
    before = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    from ray.util.debug import log_once

    log_once("ray_data_progress_manager_disabled")  # Ray Data's "Progress bars disabled" notice: we show ours
    if not log.isEnabledFor(logging.INFO):
        data_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = before
        data_logger.setLevel(level)


def _iter_blocks(ds: Any) -> Iterator[pa.Table]:
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2)
    except (RecommenderError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - a failed Ray job becomes its domain error
        raise domain_error(exc) from None


def stream_loaded(
    store: IndexStore,
    shards: Sequence[Shard],
    job: JobSettings,
    model: str,
    backend: str,
    report: WriteReport,
    progress: Progress | None,
    strict: bool,
) -> Iterator[Loaded]:
    """The articles of every shard, read and embedded on Ray, in source order; vectors are committed to the
    catalog as they arrive. What :func:`recommender.writer.apply_batch` stages and commits."""
    catalog = store.catalog
    if not shards:  # nothing to read (an empty folder of pages)
        return
    with _data_context():
        if strict:  # refuse before anything is embedded, as a local --strict build does
            rejections = [
                item
                for item in _consume(catalog, _dataset(shards, job, model, backend, [], False), report, None, 0)
                if isinstance(item, InvalidArticle)
            ]
            if rejections:
                yield from rejections
                return
        ray = import_ray()
        keys = known_hash_keys(catalog)
        known = [ray.put(keys)] if len(keys) else []
        job.info["known_vectors"] = int(len(keys))
        del keys
        total = sum(shard.rows for shard in shards)
        started = time.monotonic()
        yield from _consume(catalog, _dataset(shards, job, model, backend, known, True), report, progress, total)
        job.info["embed_seconds"] = round(time.monotonic() - started, 3)
        job.info["embedded"] = report.embedded


def _consume(catalog: Catalog, ds: Any, report: WriteReport, progress: Progress | None, total: int) -> Iterator[Loaded]:
    seen = _SeenIds(catalog)
    pending_hashes: list[str] = []
    pending_vectors: list[bytes] = []
    done = 0

    def flush() -> None:
        if pending_hashes:
            missing = catalog.missing_vectors(pending_hashes)
            keep = [(h, v) for h, v in zip(pending_hashes, pending_vectors, strict=True) if h in missing]
            if keep:
                vectors = np.vstack([np.frombuffer(v, dtype=np.float32) for _, v in keep])
                catalog.store_vectors([h for h, _ in keep], vectors)  # committed: a killed build keeps this work
                report.embedded += len(keep)
            pending_hashes.clear()
            pending_vectors.clear()

    try:
        for block in _iter_blocks(ds):
            rows = block.to_pylist()
            ids = [(row, article_from_json(row["data"])) for row in rows if row["error"] is None]
            firsts = seen.first_locations([article.id for _, article in ids])
            new_ids: list[tuple[str, str]] = []
            articles = iter(ids)
            for row in rows:
                if row["error"] is not None:
                    yield InvalidArticle(row["location"], row["error"])
                    continue
                _, article = next(articles)
                first = firsts.get(article.id)
                if first is not None:
                    yield InvalidArticle(
                        row["location"], f"duplicate id {article.id!r} (first at {first}); kept the first"
                    )
                    continue
                firsts[article.id] = row["location"]
                new_ids.append((article.id, row["location"]))
                if row["vector"] is not None:
                    pending_hashes.append(row["content_hash"])
                    pending_vectors.append(row["vector"])
                yield Record(row["location"], article)
            seen.add(new_ids)
            flush()  # one shard's vectors per commit, as they arrive
            done += len(rows)
            if progress:
                progress(done, max(total, done))
    finally:
        seen.drop()


@dataclass
class RayJob:
    """What a build on Ray hands to :func:`recommender.writer.write`: the records (read and embedded on Ray,
    vectors committed as they arrive), an embedder for texts the workers left out, and facts for the manifest."""

    loaded: Callable[[IndexStore, str, str, WriteReport], Iterable[Loaded]]
    embedder_factory: Callable[[str, str], Embedder]
    info: dict[str, Any]


@contextmanager
def ray_job(
    sources: Iterable[Path | str],
    *,
    address: str | None = None,
    options: RayOptions | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> Iterator[RayJob]:
    """A Ray session planned for ``sources`` (see this module's docstring); the build runs inside the block.

    ``address``: None or ``local`` starts a local Ray for the job and shuts it down after; ``auto``,
    ``ray://HOST:PORT`` or ``HOST:PORT`` use an existing cluster, whose workers must see the SOURCE paths
    (a shared mount) and have this package and the model installed.
    """
    options = options or RayOptions()
    import_ray()  # the missing extra is the first thing said, before any file is read
    paths = check_sources(sources)
    with ray_session(address, options) as used:
        import ray

        job = JobSettings(options=options, cwd=os.getcwd(), address=used)
        shards = plan_shards(paths, options.shard_size)
        small = -(-sum(shard.rows for shard in shards) // (4 * job.wanted_workers()))
        if 0 < small < options.shard_size:  # a small archive: smaller shards, so that every worker gets some
            shards = plan_shards(paths, small)
        job.info.update(method="ray", ray_address=used, ray_version=ray.__version__, shards=len(shards))

        def loaded(store: IndexStore, model_name: str, backend_name: str, report: WriteReport) -> Iterable[Loaded]:
            return stream_loaded(store, shards, job, model_name, backend_name, report, progress, strict)

        def embedder_factory(name: str, backend_name: str) -> Embedder:
            return RemoteEmbedder(name, backend_name, options, job.cwd)

        yield RayJob(loaded, embedder_factory, job.info)
