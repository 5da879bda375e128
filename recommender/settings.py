"""Settings with one precedence: CLI flag > ``RECOMMENDER_*`` environment variable > config file > default.

Typer fills a flag from its environment twin, so by the time a value reaches :func:`resolve` it is either the
flag/env value or ``None``; ``None`` falls through to the config file (``recommender.toml`` in the working
folder, or the file named by ``RECOMMENDER_CONFIG``), then to the default below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from recommender.errors import RecommenderError

DEFAULTS: dict[str, Any] = {
    "index": "index",
    "model": None,  # None: the index's own model, or the default model for a new index
    "backend": None,  # None: the index's own backend, or embedding.DEFAULT_BACKEND (onnx-int8-192) for a new index
    "k": 5,
    "host": "127.0.0.1",
    "port": 8000,
    "api_key": None,
    "cors_origins": [],
    "lock_timeout": 10.0,
    "max_memory": None,  # e.g. "4GB": RAM budget of the vector index (build); None: no limit
    "max_body_bytes": 1_000_000,
    "max_text_chars": 20_000,
    "cache_max_age": 60,
    "max_in_flight": 64,
}

CONFIG_FILE = "recommender.toml"


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RecommenderError(f"config file {path}: {exc}") from None
    section = data.get("recommender", data)
    unknown = set(section) - set(DEFAULTS)
    if unknown:
        raise RecommenderError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return {k.replace("-", "_"): v for k, v in section.items()}


def config_path() -> Path:
    return Path(os.environ.get("RECOMMENDER_CONFIG", CONFIG_FILE))


def resolve(name: str, value: Any = None) -> Any:
    """The setting ``name``: ``value`` (flag or env) if given, else the config file's, else the default."""
    if value is not None:
        return value
    config = _read_config(str(config_path()))
    if name in config:
        return config[name]
    return DEFAULTS[name]
