"""Domain errors: raised inside the library, translated once at each edge (CLI exit code, HTTP status)."""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class of every error the library raises on purpose."""


class SourceError(RecommenderError):
    """A SOURCE cannot be read at all (missing, unknown format, not UTF-8)."""


class InvalidArticle(RecommenderError):
    """One article failed validation; ``location`` names the file and line (or id)."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


class BatchRejected(RecommenderError):
    """``--strict`` refused a whole batch because some of its articles were invalid."""

    def __init__(self, rejections: list[InvalidArticle]) -> None:
        super().__init__(f"batch refused: {len(rejections)} invalid article(s); nothing was written")
        self.rejections = rejections


class ArticleNotFound(RecommenderError):
    """The article id (or URL) is not in the catalog."""

    def __init__(self, article_id: str) -> None:
        super().__init__(f"article not found: {article_id!r}")
        self.article_id = article_id


class IndexNotFound(RecommenderError):
    """The index folder holds no index."""


class IndexMismatch(RecommenderError):
    """The index was built with another model (or dimension) than the one asked for."""


class IndexCorrupt(RecommenderError):
    """An index file fails its integrity check (checksum, counts, unreadable)."""


class IndexBusy(RecommenderError):
    """Another process holds the index's write lock."""


class ModelUnavailable(RecommenderError):
    """The embedding model cannot be loaded (bad name, no network to a hub, missing package)."""


class NotReady(RecommenderError):
    """The service has no loaded, checked index yet (or lost it)."""


class Overloaded(RecommenderError):
    """Too many requests in flight: shed load rather than queue until clients time out."""


class InvalidRequest(RecommenderError):
    """A request parameter out of what the index offers (an unknown variant)."""


class InvalidRule(RecommenderError):
    """An editor's rule that cannot be stored: an unknown kind, a missing or contradictory field, a past expiry."""


class RuleNotFound(RecommenderError):
    """No editor's rule has this id."""

    def __init__(self, rule_id: int) -> None:
        super().__init__(f"rule not found: {rule_id}")
        self.rule_id = rule_id


class InvalidTime(RecommenderError):
    """A date, date-time or duration that cannot be read (``--until``, ``--since``)."""


class DistributedError(RecommenderError):
    """A build on Ray cannot run: Ray is not installed, the cluster cannot be reached, or the job failed."""


class StorageFull(RecommenderError):
    """The disk (or the quota, or the file size limit) is full: nothing more can be written to the index."""


class StorageError(RecommenderError):
    """Reading or writing the index folder failed at the operating system (an I/O error, a permission)."""
