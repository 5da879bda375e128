"""Ray for one build: the options, the address, starting or joining Ray, and its errors as domain errors."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import DistributedError, RecommenderError

#: What to install when Ray is missing (one line, shown as the CLI's error).
INSTALL_HINT = "building on Ray needs the ray extra: pip install 'recommender[ray]'"
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


_ADDRESS = re.compile(r"(local|auto|ray://\S+|[\w.\-]+:\d{1,5})")


def looks_like_address(value: str) -> bool:
    """Whether ``value`` is a Ray address (``local``, ``auto``, ``ray://HOST:PORT``, ``HOST:PORT``), not a SOURCE."""
    return _ADDRESS.fullmatch(value.strip()) is not None


def normalise_address(address: str | None) -> str:
    """``local`` (a Ray started for this job), ``auto`` (the cluster this machine belongs to), ``ray://HOST:PORT``
    (Ray Client) or ``HOST:PORT`` (a head node's GCS); None means ``local``."""
    value = (address or "local").strip() or "local"
    if not looks_like_address(value):
        raise DistributedError(
            f"not a Ray address: {value!r} (use auto, ray://HOST:PORT or HOST:PORT; nothing for a local Ray)"
        )
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
                ray.init(
                    address="local",
                    num_cpus=options.num_cpus,
                    object_store_memory=options.object_store_memory,
                    _node_ip_address="127.0.0.1",
                    **kwargs,
                )
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


def domain_error(exc: BaseException) -> RecommenderError:
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
