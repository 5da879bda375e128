"""Settings with one precedence, resolved once: CLI flag > ``RECOMMENDER_*`` environment variable > config file >
default, into a frozen, validated :class:`Settings` that the CLI, the server and its worker processes share.

The config file is ``recommender.toml`` in the working folder, or the file ``RECOMMENDER_CONFIG`` names. Its
settings sit at the top level or under ``[recommender]``; a ``[ranking]`` table sets the ranking policy
(:class:`recommender.ranking.policy.RankingPolicy`). Every bad value, wherever it comes from, is one
:class:`SettingsError` naming the key, the value and what is allowed (the bounds the CLI flags have too).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from recommender.errors import RecommenderError
from recommender.ranking.policy import PolicyError, RankingPolicy

CONFIG_FILE = "recommender.toml"
#: The most stories one request may ask for (CLI and HTTP alike); stored lists hold 20, more is a live search.
MAX_K = 50
CONFIG_ENV = "RECOMMENDER_CONFIG"
#: Where a worker process finds the settings its parent resolved (JSON of :meth:`Settings.to_json`).
SETTINGS_ENV = "RECOMMENDER_SETTINGS_JSON"


class SettingsError(RecommenderError):
    """A setting has a value it cannot have (a usage error: exit 2 at the CLI)."""


@dataclass(frozen=True)
class Spec:
    """What one setting accepts (the same bounds as its CLI flag)."""

    kind: type
    low: float | None = None
    high: float | None = None
    optional: bool = True

    def allowed(self) -> str:
        if self.kind is list:
            return "a list of strings (or one comma-separated string)"
        if self.kind is str:
            return "a string"
        what = "a number" if self.kind is float else "a whole number"
        if self.low is not None and self.high is not None:
            return f"{what} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{what} of at least {self.low:g}"
        return what

    def parse(self, value: Any) -> Any:
        """``value`` (from a flag, an environment string, TOML or JSON) in this setting's type; ValueError else."""
        if value is None:
            return None
        if self.kind is list:
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return tuple(part.strip() for v in value for part in v.split(",") if part.strip())
            raise ValueError
        if self.kind is str:
            if isinstance(value, Path):
                return str(value)
            if not isinstance(value, str) or not value.strip():
                raise ValueError
            return value
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str):
            value = value.strip()
            number: float = float(value) if self.kind is float else int(value)
        elif isinstance(value, int | float):
            if self.kind is int and not float(value).is_integer():
                raise ValueError
            number = self.kind(value)
        else:
            raise ValueError
        if (
            number != number
            or (self.low is not None and number < self.low)
            or (self.high is not None and number > self.high)
        ):
            raise ValueError
        return number


#: Every setting: its spec. Defaults are on :class:`Settings`.
SPECS: dict[str, Spec] = {
    "index": Spec(str),
    "model": Spec(str),
    "backend": Spec(str),
    "k": Spec(int, 1, MAX_K),
    "host": Spec(str),
    "port": Spec(int, 0, 65535),
    "api_key": Spec(str),
    "cors_origins": Spec(list),
    "lock_timeout": Spec(float, 0, 3600),
    "max_memory": Spec(str),
    "max_body_bytes": Spec(int, 1_000, 1_000_000_000),
    "max_text_chars": Spec(int, 1, 10_000_000),
    "cache_max_age": Spec(int, 0, 31_536_000),
    "max_in_flight": Spec(int, 1, 100_000),
    "workers": Spec(int, 1, 64),
    "events_dir": Spec(str),
    "events_rate": Spec(float, 0, 1_000_000),
    "api_key_file": Spec(str),
    "max_header_bytes": Spec(int, 1_024, 1_048_576),
    "max_headers": Spec(int, 8, 1_000),
    "max_url_bytes": Spec(int, 256, 1_048_576),
    "header_timeout": Spec(float, 0.1, 3600),
    "body_timeout": Spec(float, 0.1, 3600),
    "keep_alive_timeout": Spec(float, 0.1, 3600),
    "max_connections": Spec(int, 8, 1_000_000),
    "max_per_client": Spec(int, 1, 100_000),
    "max_live_searches": Spec(int, 1, 1_000),
    "cache_bytes": Spec(int, 0, 100_000_000_000),
    "trusted_proxies": Spec(list),
}


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved and checked. Build one with :func:`load`."""

    index: str = "index"
    model: str | None = None  # None: the index's own model, or the default model for a new index
    backend: str | None = None  # None: the index's own backend, or embedding.DEFAULT_BACKEND for a new index
    k: int = 5
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    lock_timeout: float = 10.0
    max_memory: str | None = None  # e.g. "4GB": RAM budget of the vector index (build); None: no limit
    max_body_bytes: int = 1_000_000
    max_text_chars: int = 20_000
    cache_max_age: int = 60
    max_in_flight: int = 64
    workers: int = 1
    events_dir: str | None = None  # where POST /v1/events stores impressions and clicks; None: INDEX/events
    events_rate: float = 50.0  # event requests per second per client address before 429 (0: no limit)
    #: A file holding the API key (first line), so the key is not on the command line for ``ps`` to show.
    api_key_file: str | None = None
    # Limits of the HTTP server itself (recommender.serving.http.limits): enforced before the app sees a request.
    max_header_bytes: int = 32_768  # request line + headers; over it: 431 and the connection is closed
    max_headers: int = 100  # header fields; over it: 431
    max_url_bytes: int = 8_192  # the request target (path + query); over it: 414
    header_timeout: float = 10.0  # seconds from a request's first byte (or the connection) to its last header
    body_timeout: float = 30.0  # seconds to receive a request body
    keep_alive_timeout: float = 5.0  # an idle kept-alive connection is closed after this
    max_connections: int = 1_000  # open connections; past it the oldest idle or still-reading one is closed
    max_per_client: int = 32  # uncached requests in flight from one client address; over it: 429
    max_live_searches: int = 2  # live searches (k beyond the stored list, unmatched filters, free text) at once
    cache_bytes: int = 64 * 1024 * 1024  # memory of the in-process cache of encoded GET answers
    #: Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (the client address the limits count).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    #: The ``[ranking]`` table of the config file, applied over the defaults; None when the file has none (an
    #: index then keeps the policy it records).
    ranking: RankingPolicy | None = None

    @property
    def index_dir(self) -> Path:
        return Path(self.index)

    @property
    def events_folder(self) -> Path:
        """The event store (:mod:`recommender.events.log`): ``events_dir``, else ``events`` in the index folder."""
        return Path(self.events_dir) if self.events_dir else self.index_dir / "events"

    def to_json(self) -> str:
        data = asdict(self)
        data["ranking"] = self.ranking.to_dict() if self.ranking is not None else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        ranking = data.pop("ranking", None)
        data["cors_origins"] = tuple(data.get("cors_origins") or ())
        data["trusted_proxies"] = tuple(data.get("trusted_proxies") or ())
        return cls(**data, ranking=RankingPolicy.from_mapping(ranking) if ranking is not None else None)


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, CONFIG_FILE))


def read_config(path: Path) -> tuple[dict[str, Any], RankingPolicy | None]:
    """The settings and the ranking policy a config file sets (both empty when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}, None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path}: {exc}") from None
    ranking_table = data.pop("ranking", None)
    section = data.get("recommender", data) if "recommender" in data else data
    if not isinstance(section, dict):
        raise SettingsError(f"config file {path}: [recommender] must be a table")
    values = {key.replace("-", "_"): value for key, value in section.items()}
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise SettingsError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(SPECS)}, [ranking])"
        )
    policy = None
    if ranking_table is not None:
        if not isinstance(ranking_table, dict):
            raise SettingsError(f"config file {path}: [ranking] must be a table")
        try:
            policy = RankingPolicy.from_mapping({k.replace("-", "_"): v for k, v in ranking_table.items()})
        except PolicyError as exc:
            raise SettingsError(f"config file {path}: {exc}") from None
    return values, policy


def _checked(name: str, value: Any, where: str) -> Any:
    spec = SPECS[name]
    try:
        return spec.parse(value)
    except (ValueError, TypeError):
        raise SettingsError(f"{where}: {name} = {value!r}: must be {spec.allowed()}") from None


def load(flags: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting once: ``flags`` (None = not given) > ``RECOMMENDER_<NAME>`` > config file > default.

    The CLI passes its flags (typer has already filled a flag from its environment twin); a setting the command
    has no flag for is still read from the environment here.
    """
    flags = dict(flags or {})
    unknown = set(flags) - set(SPECS)
    if unknown:  # a programming error, not a user's
        raise ValueError(f"unknown settings {sorted(unknown)}")
    env = os.environ if environ is None else environ
    path = Path(env.get(CONFIG_ENV, CONFIG_FILE))
    config, policy = read_config(path)
    config = {name: _checked(name, value, f"config file {path}") for name, value in config.items()}  # all of it
    values: dict[str, Any] = {}
    for name in SPECS:
        if flags.get(name) is not None:
            values[name] = _checked(name, flags[name], f"--{name.replace('_', '-')}")
        elif env.get(f"RECOMMENDER_{name.upper()}"):
            values[name] = _checked(name, env[f"RECOMMENDER_{name.upper()}"], f"RECOMMENDER_{name.upper()}")
        elif name in config:
            values[name] = config[name]
    if values.get("api_key") is None and values.get("api_key_file") is not None:
        values["api_key"] = read_key_file(values["api_key_file"])
    return Settings(**values, ranking=policy)


def read_key_file(path: str) -> str:
    """The API key in ``path`` (its first line, surrounding space dropped): a key given this way is not on the
    command line, where ``ps`` shows it to every user of the machine."""
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--api-key-file {path}: cannot be read ({exc})") from None
    if not key:
        raise SettingsError(f"--api-key-file {path}: the file is empty")
    return key


def from_environment() -> Settings:
    """The settings of a worker process: what its parent resolved, else resolved here."""
    text = os.environ.get(SETTINGS_ENV)
    return Settings.from_json(text) if text else load()


def with_overrides(settings: Settings, **values: Any) -> Settings:
    """``settings`` with some values replaced (checked like any other)."""
    checked = {name: _checked(name, value, f"--{name.replace('_', '-')}") for name, value in values.items()}
    return replace(settings, **checked)


__all__ = ["MAX_K", "SPECS", "Settings", "SettingsError", "config_path", "from_environment", "load", "with_overrides"]
