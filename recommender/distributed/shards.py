"""Shards: the units of read-and-embed work a SOURCE is cut into, read back exactly as a local build reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from recommender.errors import DistributedError
from recommender.ingest.jsonl import jsonl_is_array, read_jsonl_range
from recommender.ingest.pages import html_files, read_html_folder
from recommender.ingest.records import Loaded
from recommender.ingest.sources import check_sources, detect_format, read_source


@dataclass(frozen=True)
class Shard:
    """One unit of read-and-embed work: a byte range of a JSONL file, some pages of an HTML folder, or a file."""

    kind: str  # "jsonl" | "html" | "file" | "url"
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
        if self.kind == "url":
            yield from read_source(self.path)
            return
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
    for source in check_sources(sources, fetch_check=False):
        if not isinstance(source, Path):  # a URL: read by one worker, as a local build reads it
            shards.append(Shard("url", source))
            continue
        path = source
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
