"""Build a large archive on Ray: reading and embedding run on Ray Data, the result is the normal index.

``recommender build SOURCE ... --ray [ADDRESS]`` (or ``build_index(..., ray_address=...)``) runs like this:

1. the driver (this process) splits every SOURCE into shards: byte ranges of ``shard_size`` lines of a JSONL
   file, ``shard_size`` pages of an HTML folder, any other file whole (:func:`plan_shards`);
2. Ray Data maps the shards over a pool of actors (``map_batches`` with a callable class, so each worker loads
   the model once, through :func:`recommender.embedding.load_embedder`: every backend works). An actor reads
   and validates its shard with the same readers as a local build and embeds only the texts whose content
   hash is not among the vectors the catalog already holds (a sorted array, put in the object store once);
3. the driver consumes the results as a stream, in source order: vectors are committed to the catalog's
   ``vectors`` table in shards as they arrive -- a killed build keeps them, so a re-run embeds only what is
   missing or changed -- and the articles go through the same staging, commit, FAISS build (which reads the
   vectors back from the catalog in batches) and manifest switch as a local build
   (:func:`recommender.writer.apply_batch`).

The driver holds the shard list, the known-hash array (8 bytes a vector) and one block at a time; duplicate
ids are found in a disk-backed temp table, so its memory stays flat whatever the archive's size.
Ray is an optional extra (``pip install 'recommender[ray]'``); this module imports it only when called.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .catalog import Catalog, _article_from_json
from .embedding import Embedder, load_embedder
from .errors import DistributedError, IndexMismatch, InvalidArticle, RecommenderError
from .sources import (
    Loaded,
    Record,
    check_sources,
    detect_format,
    html_files,
    jsonl_is_array,
    read_html_folder,
    read_jsonl_range,
    read_source,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from .store import IndexStore
    from .writer import Progress, WriteReport

log = logging.getLogger(__name__)

#: What to install when Ray is missing (one line, shown as the CLI's error).
INSTALL_HINT = "building on Ray needs the ray extra: pip install 'recommender[ray]'"
#: Texts a worker embeds at a time. (Ray Data joins a task's outputs into blocks of up to 128 MB, so the driver
#: gets one shard's results at a time: ``shard_size`` sets both the driver's memory and how often it commits.)
BLOCK_ROWS = 256
#: ``RECOMMENDER_PLUGINS``: comma-separated modules each worker imports before loading the model, so an
#: embedder registered with :func:`recommender.embedding.register_embedder` exists on the cluster too.
PLUGINS_ENV = "RECOMMENDER_PLUGINS"


def _plugins_from_env() -> tuple[str, ...]:
    return tuple(p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip())


@dataclass(frozen=True)
class RayOptions:
    """How a build uses Ray. The defaults suit a local Ray on this machine and a cluster alike."""

    #: Embedding actors; None: as many as the cluster's CPUs allow at ``cpus_per_worker`` each.
    workers: int | None = None
    #: CPUs (and inference threads) of each actor.
    cpus_per_worker: int = 1
    #: Most articles (JSONL lines, HTML pages) per read-and-embed task; a small archive is cut finer, into
    #: about four shards per worker, so that every worker gets some.
    shard_size: int = 1000
    #: Modules imported on each worker before the model is loaded (see :data:`PLUGINS_ENV`).
    plugins: tuple[str, ...] = field(default_factory=_plugins_from_env)
    #: CPUs of a local Ray started for the job (None: all of this machine's).
    num_cpus: int | None = None
    #: Object store of a local Ray started for the job, in bytes (None: Ray's default).
    object_store_memory: int | None = None


# -- addresses and the Ray session ------------------------------------------------------------------------------


_ADDRESS = re.compile(r"(local|auto|ray://\S+|[\w.\-]+:\d{1,5})")


def looks_like_address(value: str) -> bool:
    """Whether ``value`` is a Ray address (``local``, ``auto``, ``ray://HOST:PORT``, ``HOST:PORT``), not a SOURCE."""
    return _ADDRESS.fullmatch(value.strip()) is not None


def normalise_address(address: str | None) -> str:
    """``local`` (a Ray started for this job), ``auto`` (the cluster this machine belongs to), ``ray://HOST:PORT``
    (Ray Client) or ``HOST:PORT`` (a head node's GCS); None means ``local``."""
    value = (address or "local").strip() or "local"
    if not looks_like_address(value):
        raise DistributedError(f"not a Ray address: {value!r} "
                               "(use auto, ray://HOST:PORT or HOST:PORT; nothing for a local Ray)")
    return value


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line :class:`DistributedError` saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the part a build needs; missing when only ray (core) is installed
    except ImportError:
        raise DistributedError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None, options: RayOptions) -> Iterator[str]:
    """Ray for the length of one build: started locally (and shut down after) or connected to a cluster.

    A Ray already initialised in this process (a notebook, a test) is used as it is and left running.
    Yields the address that was used, for the manifest.
    """
    ray = import_ray()
    address = normalise_address(address)
    if ray.is_initialized():
        yield "existing"
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address != "local":
        _check_reachable(address)
    try:
        if address == "local":
            # on loopback: a Ray started for one job is nobody else's business; its default token auth stays on
            with _quiet("ray._private.authentication.authentication_token_setup"):
                ray.init(address="local", num_cpus=options.num_cpus, object_store_memory=options.object_store_memory,
                         _node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here; each is one clear message
        ray.shutdown()
        where = "start a local Ray" if address == "local" else f"connect to the Ray cluster at {address}"
        raise DistributedError(f"cannot {where}: {_first_line(exc)}") from None
    try:
        yield address
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when a HOST:PORT or ray://HOST:PORT is not listening (Ray itself retries
    its connection for a long time before it gives up)."""
    target = address.removeprefix("ray://")
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DistributedError(f"cannot connect to the Ray cluster at {address}: {reason}") from None


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Warnings of one of Ray's loggers left out (advice meant for cluster operators, not a one-off local job)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _domain_error(exc: BaseException) -> RecommenderError:
    """The domain error behind a failed Ray job (a worker's ModelUnavailable, say), else a DistributedError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # a RayTaskError carries the worker's exception here
        if isinstance(cause, BaseException):
            current = cause
            continue
        if isinstance(current, RecommenderError):
            return current
        current = current.__cause__ or current.__context__
    return DistributedError(f"the Ray job failed: {_first_line(exc)}")


# -- shards ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """One unit of read-and-embed work: a byte range of a JSONL file, some pages of an HTML folder, or a file."""

    kind: str  # "jsonl" | "html" | "file"
    path: str
    start: int = 0
    end: int = 0
    first_line: int = 1
    files: tuple[str, ...] = ()
    rows: int = 0  # articles expected (0: unknown until read), for progress

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        raw = json.loads(text)
        raw["files"] = tuple(raw["files"])
        return cls(**raw)

    def read(self) -> Iterator[Loaded]:
        """Every record or rejection of this shard, exactly as a local build's reader yields them."""
        path = Path(self.path)
        if self.kind == "jsonl":
            yield from read_jsonl_range(path, self.start, self.end, self.first_line)
        elif self.kind == "html":
            yield from read_html_folder(path, [path / name for name in self.files])
        else:
            yield from read_source(path)


def plan_shards(sources: Iterable[Path | str], shard_size: int = 1000) -> list[Shard]:
    """Split SOURCEs into shards of about ``shard_size`` articles, in source order.

    A JSONL file is scanned once for line starts (no parsing) and cut every ``shard_size`` lines; an HTML folder
    every ``shard_size`` pages; CSV, feeds and ``.json`` arrays are one shard each (a quoted CSV field may span
    lines, so a CSV cannot be cut at any newline).
    """
    if shard_size < 1:
        raise DistributedError("shard_size must be at least 1")
    shards: list[Shard] = []
    for path in check_sources(Path(s) for s in sources):
        fmt = detect_format(path)
        if fmt == "jsonl" and not jsonl_is_array(path):
            shards.extend(_jsonl_shards(path, shard_size))
        elif fmt == "html" and path.is_dir():
            names = [p.relative_to(path).as_posix() for p in html_files(path)]
            for start in range(0, len(names), shard_size):
                chunk = tuple(names[start : start + shard_size])
                shards.append(Shard("html", str(path), files=chunk, rows=len(chunk)))
        else:
            shards.append(Shard("file", str(path), rows=1 if fmt == "html" else 0))
    return shards


def _jsonl_shards(path: Path, shard_size: int) -> Iterator[Shard]:
    start = position = 0
    first_line = 1
    lines = 0
    with path.open("rb") as handle:
        for raw_line in handle:
            position += len(raw_line)
            lines += 1
            if lines == shard_size:
                yield Shard("jsonl", str(path), start, position, first_line, rows=lines)
                start, first_line, lines = position, first_line + lines, 0
    if lines:
        yield Shard("jsonl", str(path), start, position, first_line, rows=lines)


# -- the worker side -----------------------------------------------------------------------------------------------


def _output_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("location", pa.string()),
        ("error", pa.string()),         # set for a rejected article
        ("data", pa.large_string()),    # the article as JSON (Article.to_dict)
        ("content_hash", pa.string()),
        ("vector", pa.binary()),        # float32 bytes, only when this worker embedded the text
    ])


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
    parts = []
    last = ""
    while True:
        rows = catalog.conn.execute(
            "SELECT content_hash FROM vectors WHERE content_hash > ? ORDER BY content_hash LIMIT ?", (last, page)
        ).fetchall()
        if not rows:
            break
        hashes = [r[0] for r in rows]
        parts.append(hash_keys(hashes))
        last = hashes[-1]
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

    def __init__(self, model: str, backend: str, plugins: Sequence[str], known: list[Any], threads: int,
                 cwd: str | None, embed: bool = True) -> None:
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
                texts = [_article_from_json(columns["data"][row]).text for row in rows]
                vectors = np.ascontiguousarray(self.embedder.embed(texts), dtype=np.float32)
                for row, vector in zip(rows, vectors, strict=True):
                    columns["vector"][row] = vector.tobytes()
        return pa.table(columns, schema=_output_schema())


def _remote_embed(model: str, backend: str, plugins: Sequence[str], threads: int, cwd: str | None,
                  texts: Sequence[str]) -> tuple[str, int, np.ndarray]:
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
            name, dimension, vectors = ray.get(task.remote(self.name, self.backend, self._options.plugins,
                                                           self._options.cpus_per_worker, self._cwd, list(texts)))
        except Exception as exc:  # noqa: BLE001 - translated to the domain error behind it
            raise _domain_error(exc) from None
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


# -- the driver side -----------------------------------------------------------------------------------------------


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
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, location FROM temp.ray_seen WHERE id IN ({marks})"
            out.update(self.conn.execute(query, chunk).fetchall())
        return out

    def add(self, rows: Sequence[tuple[str, str]]) -> None:
        self.conn.executemany("INSERT INTO temp.ray_seen(id, location) VALUES (?, ?)", rows)

    def drop(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS temp.ray_seen")


@dataclass
class RayJob:
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


def _dataset(shards: Sequence[Shard], job: RayJob, model: str, backend: str, known: list[Any], embed: bool) -> Any:
    ray = import_ray()
    items = [{"shard": shard.to_json()} for shard in shards]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    kwargs = {"model": model, "backend": backend, "plugins": tuple(job.options.plugins), "known": known,
              "threads": job.options.cpus_per_worker, "cwd": job.cwd, "embed": embed}
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
        raise _domain_error(exc) from None


def stream_loaded(store: IndexStore, shards: Sequence[Shard], job: RayJob, model: str, backend: str,
                  report: WriteReport, progress: Progress | None, strict: bool) -> Iterator[Loaded]:
    """The articles of every shard, read and embedded on Ray, in source order; vectors are committed to the
    catalog as they arrive. What :func:`recommender.writer.apply_batch` stages and commits."""
    catalog = store.catalog
    if not shards:  # nothing to read (an empty folder of pages)
        return
    with _data_context():
        if strict:  # refuse before anything is embedded, as a local --strict build does
            rejections = [item for item in _consume(catalog, _dataset(shards, job, model, backend, [], False),
                                                    report, None, 0) if isinstance(item, InvalidArticle)]
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


def _consume(catalog: Catalog, ds: Any, report: WriteReport, progress: Progress | None,
             total: int) -> Iterator[Loaded]:
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
            ids = [(row, _article_from_json(row["data"])) for row in rows if row["error"] is None]
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
                    yield InvalidArticle(row["location"],
                                         f"duplicate id {article.id!r} (first at {first}); kept the first")
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


def ray_build(
    sources: Iterable[Path | str],
    index_dir: Path | str,
    *,
    address: str | None = None,
    options: RayOptions | None = None,
    model: str | None = None,
    backend: str | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    max_memory_bytes: int | None = None,
    lock_timeout: float = 10.0,
) -> WriteReport:
    """:func:`recommender.writer.build_index` with reading and embedding on Ray (see this module's docstring).

    ``address``: None or ``local`` starts a local Ray for the job and shuts it down after; ``auto``,
    ``ray://HOST:PORT`` or ``HOST:PORT`` use an existing cluster, whose workers must see the SOURCE paths
    (a shared mount) and have this package and the model installed.
    """
    from .writer import _write

    started = time.monotonic()
    options = options or RayOptions()
    import_ray()  # the missing extra is the first thing said, before any file is read
    sources = check_sources(Path(s) for s in sources)
    index_dir = Path(index_dir)
    with ray_session(address, options) as used:
        import ray

        job = RayJob(options=options, cwd=os.getcwd(), address=used)
        shards = plan_shards(sources, options.shard_size)
        small = -(-sum(shard.rows for shard in shards) // (4 * job.wanted_workers()))
        if 0 < small < options.shard_size:  # a small archive: smaller shards, so that every worker gets some
            shards = plan_shards(sources, small)
        job.info.update(method="ray", ray_address=used, ray_version=ray.__version__, shards=len(shards))

        def loaded(store: IndexStore, model_name: str, backend_name: str, report: WriteReport) -> Iterable[Loaded]:
            return stream_loaded(store, shards, job, model_name, backend_name, report, progress, strict)

        def embedder_factory(name: str, backend_name: str) -> Embedder:
            return RemoteEmbedder(name, backend_name, options, job.cwd)

        report = _write(
            index_dir,
            loaded,
            create=True,
            model=model,
            backend=backend,
            strict=strict,
            embedder=None,
            embedder_factory=embedder_factory,
            progress=None,
            rebuild=True,
            max_memory_bytes=max_memory_bytes,
            lock_timeout=lock_timeout,
            build_info=job.info,
        )
    report.seconds = time.monotonic() - started  # the whole job, Ray's start included
    return report

