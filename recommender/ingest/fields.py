"""Column names of CMS exports mapped onto the article's fields.

A WordPress ``wp_posts`` dump says ``ID``, ``post_title``, ``post_content``, ``post_date_gmt``; Drupal says
``nid``, ``title``, ``body_value``, ``created``, ``langcode``. Each field has a list of aliases, matched without
regard to letter case, used only when the export has no column of the field's own name; ``--map SRC=field``
names the column outright. Rows a CMS marks as drafts, revisions or attachments are not articles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recommender.articles import KNOWN_FIELDS
from recommender.errors import SourceError

#: Aliases per field, most specific first. Date columns in UTC come before site-local ones.
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "post_id", "nid", "node_id", "article_id", "entity_id", "story_id", "uuid"),
    "title": ("title", "post_title", "headline", "heading", "name_title"),
    "body": ("body", "post_content", "content", "body_value", "text", "article_body", "articlebody", "html"),
    "url": ("url", "link", "permalink", "canonical_url", "uri", "guid", "path", "alias"),
    "published_at": (
        "published_at",
        "post_date_gmt",
        "date_gmt",
        "published",
        "published_time",
        "datepublished",
        "publish_date",
        "pubdate",
        "first_published_at",
        "created",
        "created_at",
        "post_date",
        "date",
    ),
    "section": ("section", "category", "categories", "post_category", "field_section", "channel", "rubric"),
    "tags": ("tags", "post_tag", "post_tags", "keywords", "field_tags"),
    "language": ("language", "lang", "langcode", "locale", "inlanguage"),
}
#: Date columns that are UTC whatever ``--timezone`` says.
UTC_DATE_COLUMNS = frozenset({"post_date_gmt", "date_gmt"})
#: Status values of rows that are not published articles (WordPress, Drupal, Ghost, generic).
UNPUBLISHED = frozenset(
    {"draft", "pending", "private", "trash", "auto-draft", "future", "inherit", "unpublished", "scheduled", "0"}
)
#: WordPress post types that are not stories.
NON_STORY_TYPES = frozenset(
    {
        "attachment",
        "revision",
        "nav_menu_item",
        "page",
        "wp_block",
        "wp_template",
        "wp_template_part",
        "wp_navigation",
        "wp_global_styles",
        "wp_font_family",
        "wp_font_face",
        "custom_css",
        "customize_changeset",
        "oembed_cache",
        "user_request",
    }
)
STATUS_COLUMNS = ("post_status", "status")
TYPE_COLUMNS = ("post_type",)


def parse_field_map(specs: Iterable[str]) -> dict[str, str]:
    """``--map`` values (``ID=id,post_title=title``, repeatable) as ``{source column: field}``.

    Raises :class:`SourceError` for a pair without ``=`` or a field the article does not have."""
    mapping: dict[str, str] = {}
    for spec in specs:
        for pair in spec.split(","):
            if not pair.strip():
                continue
            source, sep, target = pair.partition("=")
            source, target = source.strip(), target.strip()
            if not sep or not source or not target:
                raise SourceError(f"--map {pair.strip()!r}: expected SOURCE_COLUMN=field")
            if target not in KNOWN_FIELDS and target != "author":
                fields = ", ".join((*KNOWN_FIELDS, "author"))
                raise SourceError(f"--map {pair.strip()!r}: {target!r} is not an article field ({fields})")
            mapping[source] = target
    return mapping


@dataclass(frozen=True)
class ColumnPlan:
    """How the columns of one export become article fields, worked out once from its header."""

    rename: dict[str, str] = field(default_factory=dict)  # source column -> field
    date_columns: tuple[str, ...] = ()  # candidate date columns, best first (the first with a value is used)
    status: str | None = None  # the column saying draft/published, if any
    post_type: str | None = None

    @classmethod
    def for_columns(
        cls, columns: Iterable[str], field_map: Mapping[str, str] | None = None, *, require_mapped: bool = True
    ) -> ColumnPlan:
        """The plan for these columns: ``field_map`` first (names matched ignoring case), then for each field
        still missing its first alias present in the export. A column that is a field's own name is kept.
        ``require_mapped``: a ``--map`` column the export lacks is an error (a CSV header), else ignored (one
        JSON object may lack a key its neighbours have)."""
        names = list(columns)
        by_lower: dict[str, str] = {}
        for name in names:
            by_lower.setdefault(name.lower(), name)
        rename: dict[str, str] = {}
        claimed: set[str] = set()
        for source, target in (field_map or {}).items():
            column = by_lower.get(source.lower())
            if column is None:
                if not require_mapped:
                    continue
                raise SourceError(f"--map {source}={target}: no column {source!r} (columns: {', '.join(names)})")
            rename[column] = target
            claimed.add(target)
        date_columns: tuple[str, ...] = ()
        if "published_at" not in claimed:
            date_columns = tuple(by_lower[a] for a in ALIASES["published_at"] if a in by_lower)
        for target, aliases in ALIASES.items():
            if target in claimed or target == "published_at":
                continue
            column = next((by_lower[a] for a in aliases if a in by_lower and by_lower[a] not in rename), None)
            if column is not None:
                rename[column] = target
        status = next((by_lower[c] for c in STATUS_COLUMNS if c in by_lower), None)
        post_type = next((by_lower[c] for c in TYPE_COLUMNS if c in by_lower), None)
        return cls(rename, date_columns, status, post_type)

    @property
    def has_id(self) -> bool:
        return "id" in self.rename.values()

    def is_story(self, row: Mapping[str, Any]) -> bool:
        """False for a draft, a revision, an attachment or a page: rows that are not published stories."""
        if self.status is not None and str(row.get(self.status, "")).strip().lower() in UNPUBLISHED:
            return False
        return not (self.post_type is not None and str(row.get(self.post_type, "")).strip().lower() in NON_STORY_TYPES)

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row with its columns renamed to fields. The date is the first date column with a value;
        ``published_at_source`` names it when it is not ``published_at`` itself (``post_date_gmt``)."""
        out: dict[str, Any] = {}
        mapped = set(self.rename.values())
        for name, value in row.items():
            target = self.rename.get(name)
            if target is not None:
                out[target] = value
                if target == "published_at" and name != "published_at":
                    out["published_at_source"] = name
            elif not (name in KNOWN_FIELDS and name in mapped):  # a mapped column replaces a same-named one
                out.setdefault(name, value)
        for column in self.date_columns:
            value = row.get(column)
            if value not in (None, "") and not str(value).startswith("0000-00-00"):
                out["published_at"] = value
                if column != "published_at":
                    out["published_at_source"] = column
                break
        return out
