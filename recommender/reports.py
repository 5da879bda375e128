"""What a write (build, add, delete) reports back: counts, rejections, time; and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recommender.errors import InvalidArticle

if TYPE_CHECKING:
    from recommender.storage.store import Manifest

#: ``progress(done, total)``: called as texts are embedded (a progress bar, a log line).
Progress = Callable[[int, int], None]


@dataclass
class WriteReport:
    """What a build, add or delete did."""

    added: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    embedded: int = 0
    rejected: list[InvalidArticle] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manifest: Manifest | None = None
    #: Set when the catalog committed the write but a later step (the FAISS file, the lists) failed on I/O:
    #: the write is done and durable, what failed is finished by the next open or write.
    incomplete: str | None = None

    def summary(self) -> str:
        parts = [
            f"{self.added} added",
            f"{self.updated} updated",
            f"{self.skipped} skipped",
            f"{len(self.rejected)} rejected",
        ]
        if self.deleted or self.not_found:
            parts.append(f"{self.deleted} deleted")
        parts.append(f"{self.embedded} embedded")
        return f"{', '.join(parts)} in {self.seconds:.1f}s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "embedded": self.embedded,
            "rejected": [str(r) for r in self.rejected],
            "not_found": self.not_found,
            "seconds": round(self.seconds, 3),
            "incomplete": self.incomplete,
        }
