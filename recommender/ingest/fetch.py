"""Fetching a site's pages politely: trafilatura's downloader, robots.txt, a user agent, bounded concurrency,
retries with backoff.

trafilatura's ``fetch_response`` does the HTTP (urllib3, redirects, size cap, decoding, and its own retry of a
429/5xx answer); this module adds what a crawl of a whole site needs on top: robots.txt is read once per host
and obeyed, a page that does not answer is tried again after 0.5, 1, 2... seconds, and every failure has a reason
that names the URL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.robotparser
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recommender")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
        return "0"


#: Says who is asking, so a site's logs and robots.txt rules can tell this indexer apart.
USER_AGENT = f"recommender/{_version()} (related-articles indexer)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class FetchSettings:
    """How pages are fetched. ``retries`` more tries after the first, waiting ``backoff`` x 1, 2, 4...
    seconds; ``concurrency`` pages at once; ``timeout`` seconds per request."""

    user_agent: str = USER_AGENT
    concurrency: int = 4
    retries: int = 2
    backoff: float = 0.5
    timeout: int = 20
    max_bytes: int = 20_000_000
    respect_robots: bool = True


class FetchError(Exception):
    """A URL gave no usable answer; the message says why (an HTTP status, a connection error, robots.txt)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Page:
    """A fetched document: the URL it ended at (after redirects), its bytes, status and headers."""

    url: str
    data: bytes
    status: int
    headers: dict[str, str]

    @property
    def text(self) -> str:
        from trafilatura.utils import decode_file

        return str(decode_file(self.data))


class _Reasons(logging.Handler):
    """trafilatura logs why a download failed and returns None; this keeps the last reason per URL."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: dict[str, str] = {}
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) >= 2 and isinstance(args[0], str):
            with self._guard:
                self.reasons[args[0]] = short_reason(str(args[1]))

    def pop(self, url: str) -> str | None:
        with self._guard:
            return self.reasons.pop(url, None)


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_CAUSE_RE = re.compile(r"\(Caused by (?:\w+Error\()?['\"]?([^'\"()]+)")


def short_reason(message: str) -> str:
    """urllib3's nested error text reduced to what a person needs: ``Connection refused``,
    ``too many 503 error responses``, ``Read timed out``."""
    message = " ".join(message.split())
    match = _ERRNO_RE.search(message) or _CAUSE_RE.search(message)
    return (match.group(1).strip() if match else message)[:200]


class _PoolFull(logging.Filter):
    """urllib3 says "Connection pool is full, discarding connection" when more pages are fetched at once than
    trafilatura's pool keeps open per host: harmless (the connection is closed), and noise on every crawl."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Connection pool is full")


_reasons = _Reasons()
_downloads_log = logging.getLogger("trafilatura.downloads")
_downloads_log.addHandler(_reasons)
_downloads_log.propagate = False  # its failures are reported once, by us, naming the URL and the reason
logging.getLogger("urllib3.connectionpool").addFilter(_PoolFull())


class Fetcher:
    """Fetches URLs with one set of :class:`FetchSettings`; robots.txt is cached per host."""

    def __init__(self, settings: FetchSettings | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings or FetchSettings()
        self._sleep = sleep
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._robots_guard = threading.Lock()
        self._config = self._trafilatura_config()

    def _trafilatura_config(self) -> Any:
        from trafilatura.settings import use_config

        config = use_config()
        config.set("DEFAULT", "USER_AGENTS", self.settings.user_agent)
        config.set("DEFAULT", "DOWNLOAD_TIMEOUT", str(self.settings.timeout))
        config.set("DEFAULT", "MAX_FILE_SIZE", str(self.settings.max_bytes))
        # The operator names the site to read (possibly an intranet CMS); trafilatura's guard against private
        # addresses is for servers that fetch what strangers ask for.
        config.set("DEFAULT", "SSRF_PROTECTION", "off")
        config.set("DEFAULT", "INSECURE_SSL_FALLBACK", "off")
        return config

    def get(self, url: str, *, check_robots: bool = True) -> Page:
        """The document at ``url``; :class:`FetchError` saying why when there is none (after the retries)."""
        if check_robots and not self.allowed(url):
            raise FetchError(url, "disallowed by robots.txt")
        from trafilatura.downloads import fetch_response

        reason = "no answer"
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self._sleep(self.settings.backoff * 2 ** (attempt - 1))
            try:
                response = fetch_response(url, config=self._config)
            except Exception as exc:  # noqa: BLE001 - a broken download is a failed page, whatever broke
                response, reason = None, f"{type(exc).__name__}: {exc}"
            if response is None or response.data is None:
                reason = _reasons.pop(url) or reason
                continue
            status = int(response.status)
            if status in RETRY_STATUSES:
                reason = f"HTTP {status}"
                continue
            if status >= 400:
                raise FetchError(url, f"HTTP {status}")
            return Page(str(response.url or url), bytes(response.data), status, dict(response.headers or {}))
        raise FetchError(url, f"{reason}, after {self.settings.retries + 1} tries")

    def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's host lets this user agent fetch it (no robots.txt: yes)."""
        if not self.settings.respect_robots:
            return True
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        with self._robots_guard:
            if host not in self._robots:
                self._robots[host] = self._read_robots(host)
            robots = self._robots[host]
        return robots is None or robots.can_fetch(self.settings.user_agent, url)

    def _read_robots(self, host: str) -> urllib.robotparser.RobotFileParser | None:
        robots = urllib.robotparser.RobotFileParser(f"{host}/robots.txt")
        try:
            page = self.get(f"{host}/robots.txt", check_robots=False)
        except FetchError as exc:
            if exc.reason in ("HTTP 401", "HTTP 403"):
                robots.parse(["User-agent: *", "Disallow: /"])  # the standard reading: hidden rules allow nothing
                return robots
            return None  # none (404) or unreachable: nothing is disallowed
        robots.parse(page.text.splitlines())
        return robots

    def map(self, work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``work(item)`` for every item on ``concurrency`` threads, results in the items' order, at most a
        few batches in flight (a million-URL sitemap is not all queued at once)."""
        workers = max(1, self.settings.concurrency)
        window = workers * 4
        batch: list[T] = []
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            for item in items:
                batch.append(item)
                if len(batch) >= window:
                    yield from pool.map(work, batch)
                    batch = []
            if batch:
                yield from pool.map(work, batch)


def is_url(source: object) -> bool:
    """Whether a SOURCE is an http(s) URL rather than a file or folder."""
    return isinstance(source, str) and source.strip().lower().startswith(("http://", "https://"))
