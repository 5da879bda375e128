"""Static export: one JSON file per article (the GET response's shape) plus an index file, for a CDN, and
``widget.js`` beside them, so the folder alone serves the widget (``data-static-base``).

File names: an id made only of ``A-Z a-z 0-9 . _ -`` (not starting with a dot, no ``..``, at most 150
characters, and not ``index`` in any case, which would overwrite ``index.json``) is used as it is; any other id
becomes ``~`` + base64url of its UTF-8 bytes, or ``~h`` + the sha256 hex of its UTF-8 bytes when that would pass
200 characters (so every name fits any file system and URL). Every path is checked to stay inside the output
folder, and every file is written atomically. Links are written only when their scheme is safe
(:meth:`recommender.serving.service.Served.body` checks every URL again, so a ``javascript:`` link stored before
links were checked at the edge is published as ``null``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from recommender.recommender import Recommender
from recommender.serving.service import Served
from recommender.when import iso

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,149}$")
INDEX_FILE = "index.json"
WIDGET_FILE = "widget.js"
MAX_ENCODED = 200


def file_stem(article_id: str) -> str:
    """The export file name (without ``.json``) for an id; mirrored by the widget's ``fileStem``."""
    if _SAFE.match(article_id) and ".." not in article_id and article_id.lower() != INDEX_FILE.removesuffix(".json"):
        return article_id
    encoded = base64.urlsafe_b64encode(article_id.encode("utf-8")).decode("ascii").rstrip("=")
    if len(encoded) <= MAX_ENCODED:
        return f"~{encoded}"
    return "~h" + hashlib.sha256(article_id.encode("utf-8")).hexdigest()  # long ids: a fixed-length name


@dataclass
class ExportReport:
    written: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.written} files written, {self.removed} stale removed, {len(self.skipped)} ids skipped"


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _previous_files(out: Path) -> list[str]:
    try:
        previous = json.loads((out / INDEX_FILE).read_text("utf-8"))
        return [str(name) for name in previous.get("files", {}).values()]
    except (OSError, ValueError, AttributeError):
        return []


def export_static(rec: Recommender, out_dir: Path | str, k: int = 5) -> ExportReport:
    """Write ``<stem>.json`` for every article and ``index.json`` into ``out_dir``; remove stale files.

    The lists are what :meth:`Recommender.related` answers now, so editors' rules in force are in them (pinned
    stories flagged); ``index.json`` says how many rules applied and when the next one expires
    (``valid_until``): re-export by then, as a static file cannot drop an expired pin by itself."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    now = datetime.now(UTC)
    previous = _previous_files(out)  # read before anything is written over it
    version = rec.index_version
    model = rec.manifest.model
    files: dict[str, str] = {}
    for stored in rec.store.catalog.iter_articles():
        article_id = stored.article.id
        path = (out / f"{file_stem(article_id)}.json").resolve()
        if path.parent != out:  # defence in depth: the stem alphabet cannot escape, but never trust it
            report.skipped.append(article_id)
            continue
        payload = Served(version, model, rec.related(article_id, k)).body(article_id)
        _write_atomic(path, json.dumps(payload, ensure_ascii=False))
        files[article_id] = path.name
        report.written += 1
    # Remove only files a previous export of ours wrote (listed in its index.json), never anything else.
    for name in set(previous) - set(files.values()):
        stale = (out / name).resolve()
        if stale.parent == out and stale.name != INDEX_FILE and stale.exists():
            stale.unlink()
            report.removed += 1
    index = {
        "model": model,
        "index_version": version,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "k": k,
        "articles": len(files),
        "rules": len(rec.rules.active(now)),
        "valid_until": iso(expires) if (expires := rec.rules.next_expiry(now)) else None,
        "files": files,
    }
    _write_atomic(out / INDEX_FILE, json.dumps(index, ensure_ascii=False, indent=1))
    _write_atomic(out / WIDGET_FILE, resources.files("recommender").joinpath("static/widget.js").read_text("utf-8"))
    return report
