"""CSV exports with a header row, in whatever dialect the CMS or the SQL client wrote.

The delimiter is what Python's ``csv.Sniffer`` finds in the first lines (comma, semicolon, tab, pipe); column
names become article fields by :mod:`recommender.ingest.fields` (``--map``, then CMS aliases such as
WordPress's ``ID``/``post_title``/``post_date_gmt`` or Drupal's ``nid``/``created``). Empty cells are absent.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path

from recommender.articles import MAX_BODY_CHARS
from recommender.errors import InvalidArticle
from recommender.ingest.fields import ColumnPlan
from recommender.ingest.jsonl import decode_error
from recommender.ingest.records import IngestOptions, Loaded, to_record

log = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"


def sniff_delimiter(text: str, suffix: str) -> str:
    """The delimiter of a CSV text: ``\\t`` for ``.tsv``; else the sniffer's pick among ``, ; TAB |`` from the
    header line (a body's commas must not outvote the header's semicolons), comma when it cannot tell."""
    if suffix == ".tsv":
        return "\t"
    header = text[:SNIFF_BYTES].split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        try:
            return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=DELIMITERS).delimiter
        except csv.Error:
            return ","


def read_csv(path: Path, options: IngestOptions | None = None) -> Iterator[Loaded]:
    """A CSV (or TSV) export with a header row; ``tags`` may be comma-separated. Empty cells are absent."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield decode_error(str(path), exc, data)
        return
    delimiter = sniff_delimiter(text, path.suffix.lower())
    csv.field_size_limit(MAX_BODY_CHARS * 4)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield InvalidArticle(f"{path}:1", f"malformed CSV header ({exc}); file skipped")
        return
    header = [name.strip() for name in header]
    plan = ColumnPlan.for_columns(header, options.field_map if options else None)
    if not plan.has_id:
        yield InvalidArticle(
            f"{path}:1",
            "the header row has no 'id' column (nor an alias such as ID, post_id or nid; columns: "
            f"{', '.join(header)}); name one with --map COLUMN=id; file skipped",
        )
        return
    left_out = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield InvalidArticle(f"{path}:{start}", f"malformed CSV ({exc}); rest of file skipped")
            break
        if not any(cell.strip() for cell in row):
            continue
        location = f"{path}:{start}"
        if len(row) > len(header):
            yield InvalidArticle(location, f"row has {len(row)} fields but the header has {len(header)}")
            continue
        cells = {name: cell for name, cell in zip(header, row, strict=False) if cell.strip()}
        if not plan.is_story(cells):
            left_out += 1
            continue
        yield to_record(plan.apply(cells), location, options)
    if left_out:
        log.info("%s: %d rows that are not published stories left out (drafts, revisions, pages)", path, left_out)
