"""Editors' standing rules: pin a story under another, block one, never show a section or tag (or anything) somewhere.

A rule says *what* (a story, a section, a tag, or everything), *where* (under every story, one story, or the
stories of a section or tag) and *until when*. Rules live in the catalog (:meth:`Catalog.insert_rule`), are
written under the index's write lock and are durable before a command or request returns. They are applied when
a list is read (:mod:`recommender.controls.editorial`), so a rule reaches every list it touches at once and an
expired rule stops applying without any rebuild: its expiry is compared with the clock at read time.

Blocks and exclusions become :class:`~recommender.ranking.policy.Filters` merged with the request's, so the
stored-list lookup refills the list from deeper entries (and a live search takes over when those run out): a rule
never shortens a list while k other related stories exist. Pins are placed after that, at their position.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommender.articles import MAX_ID_CHARS, MAX_SHORT_FIELD_CHARS, Article
from recommender.errors import ArticleNotFound, IndexNotFound, InvalidRule, InvalidTime, RuleNotFound
from recommender.ranking.policy import NO_FILTERS, Filters
from recommender.settings import MAX_K
from recommender.storage.catalog import Catalog
from recommender.when import iso, parse_when

KINDS = ("pin", "block", "exclude")
TARGETS = ("story", "section", "tag", "all")
SCOPES = ("all", "story", "section", "tag")
MAX_NOTE_CHARS = 500


@dataclass(frozen=True)
class Rule:
    """One editor's rule. Build one with :meth:`pin`, :meth:`block` or :meth:`exclude` (they check it)."""

    kind: str
    target_type: str
    target: str | None
    scope_type: str = "all"
    scope: str | None = None
    position: int | None = None
    until: datetime | None = None
    note: str | None = None
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        _check(self)

    # -- the three kinds ----------------------------------------------------------------------------------------
    @classmethod
    def pin(
        cls, story: str, target: str, position: int = 1, until: datetime | None = None, note: str | None = None
    ) -> Rule:
        """Show ``target`` at ``position`` (from 1) in ``story``'s list."""
        return cls("pin", "story", target, "story", story, position, until, note)

    @classmethod
    def block(
        cls, target: str, under: str | None = None, until: datetime | None = None, note: str | None = None
    ) -> Rule:
        """Never show ``target`` (a correction, a legal hold): in any list, or only in ``under``'s."""
        return cls("block", "story", target, "story" if under else "all", under, None, until, note)

    @classmethod
    def exclude(
        cls,
        section: str | None = None,
        tag: str | None = None,
        *,
        under: str | None = None,
        under_section: str | None = None,
        under_tag: str | None = None,
        until: datetime | None = None,
        note: str | None = None,
    ) -> Rule:
        """Never show stories of ``section`` or with ``tag`` -- or, with neither, nothing at all -- in every
        list, or only under the story ``under`` / the stories of ``under_section`` / with ``under_tag``."""
        if section and tag:
            raise InvalidRule("exclude one thing per rule: a section or a tag, not both")
        given = [(kind, value) for kind, value in (("story", under), ("section", under_section), ("tag", under_tag))]
        given = [(kind, value) for kind, value in given if value]
        if len(given) > 1:
            raise InvalidRule("give at most one of under, under_section, under_tag")
        target_type, target = ("section", section) if section else ("tag", tag) if tag else ("all", None)
        scope_type, scope = given[0] if given else ("all", None)
        return cls("exclude", target_type, target, scope_type, scope, None, until, note)

    @classmethod
    def from_request(cls, values: Mapping[str, Any], now: datetime) -> Rule:
        """A rule from the flat shape of ``POST /v1/rules`` and the CLI flags: ``kind`` plus ``story``,
        ``target``, ``position``, ``section``, ``tag``, ``under``, ``under_section``, ``under_tag``, ``until``
        (ISO date, date-time or a duration such as ``48h``), ``note``."""
        known = {"kind", "story", "target", "position", "section", "tag", "under", "under_section", "under_tag"}
        unknown = sorted(set(values) - known - {"until", "note"})
        if unknown:
            raise InvalidRule(f"unknown field(s) {', '.join(unknown)}")
        for name in sorted(known - {"position"}):
            if values.get(name) is not None and not isinstance(values[name], str):
                raise InvalidRule(f"{name} must be a string")
        until = expiry(values.get("until"), now)
        note = values.get("note")
        if note is not None and not isinstance(note, str):
            raise InvalidRule("note must be a string")
        kind = values.get("kind")
        if kind == "pin":
            position = values.get("position", 1)
            if isinstance(position, bool) or not isinstance(position, int):
                raise InvalidRule("position must be a whole number")
            return cls.pin(_required(values, "story"), _required(values, "target"), position, until, note)
        extra = [name for name in ("position", "story") if values.get(name) is not None]
        if extra and kind in ("block", "exclude"):
            raise InvalidRule(f"{kind} has no {', '.join(extra)} (that is for pins)")
        if kind == "block":
            if values.get("section") or values.get("tag") or values.get("under_section") or values.get("under_tag"):
                raise InvalidRule("block takes target and under (story ids); exclude takes sections and tags")
            return cls.block(_required(values, "target"), values.get("under"), until, note)
        if kind == "exclude":
            if values.get("target"):
                raise InvalidRule("exclude takes section or tag (to never show one story, block it)")
            return cls.exclude(
                values.get("section"),
                values.get("tag"),
                under=values.get("under"),
                under_section=values.get("under_section"),
                under_tag=values.get("under_tag"),
                until=until,
                note=note,
            )
        raise InvalidRule(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")

    # -- reading ------------------------------------------------------------------------------------------------
    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def applies_under(self, story: Article) -> bool:
        """Whether the rule applies to ``story``'s list (``story`` may be a link card: id, section, tags)."""
        if self.scope_type == "all":
            return True
        if self.scope_type == "story":
            return story.id == self.scope
        wanted = (self.scope or "").casefold()
        if self.scope_type == "section":
            return (story.section or "").casefold() == wanted
        return any(tag.casefold() == wanted for tag in story.tags)

    def describe(self) -> str:
        """The rule in one line an editor reads: ``pin 'b1' at position 1 under 'a1'``."""
        where = {
            "all": "everywhere",
            "story": f"under {self.scope!r}",
            "section": f"under section {self.scope!r}",
            "tag": f"under tag {self.scope!r}",
        }[self.scope_type]
        if self.kind == "pin":
            text = f"pin {self.target!r} at position {self.position} {where}"
        elif self.kind == "block":
            text = f"block {self.target!r} {where}"
        elif self.target_type == "all":
            text = f"show nothing {where}"
        else:
            text = f"exclude {self.target_type} {self.target!r} {where}"
        return text + (f" until {iso(self.until)}" if self.until else "")

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The JSON shape of ``GET /v1/rules`` and ``rule list --json``."""
        out: dict[str, Any] = {
            "id": self.id,
            **self.row(),
            "created_at": iso(self.created_at) if self.created_at else None,
            "description": self.describe(),
        }
        if now is not None:
            out["active"] = self.active(now)
        return out

    def row(self) -> dict[str, object]:
        """The rule as ``rules`` columns."""
        return {
            "kind": self.kind,
            "target_type": self.target_type,
            "target": self.target,
            "scope_type": self.scope_type,
            "scope": self.scope,
            "position": self.position,
            "until": iso(self.until) if self.until else None,
            "note": self.note,
            "created_at": iso(self.created_at or datetime.now(UTC)),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Rule:
        def moment(value: object) -> datetime | None:
            return parse_when(str(value), datetime.now(UTC)) if value else None

        return cls(
            kind=row["kind"],
            target_type=row["target_type"],
            target=row["target"],
            scope_type=row["scope_type"],
            scope=row["scope"],
            position=row["position"],
            until=moment(row["until"]),
            note=row["note"],
            id=int(row["id"]),
            created_at=moment(row["created_at"]),
        )


def _required(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if not value:
        raise InvalidRule(f"{values.get('kind')} needs {name}")
    return str(value)


def _check(rule: Rule) -> None:
    """Refuse a rule whose fields do not make sense together (one place for the CLI, HTTP and stored rows)."""
    if rule.kind not in KINDS:
        raise InvalidRule(f"kind must be one of {', '.join(KINDS)}, not {rule.kind!r}")
    if rule.target_type not in TARGETS or rule.scope_type not in SCOPES:
        raise InvalidRule(f"unknown target or scope type: {rule.target_type!r}, {rule.scope_type!r}")
    for name, value, limit in (
        ("target", rule.target, MAX_ID_CHARS if rule.target_type == "story" else MAX_SHORT_FIELD_CHARS),
        ("scope", rule.scope, MAX_ID_CHARS if rule.scope_type == "story" else MAX_SHORT_FIELD_CHARS),
    ):
        if value is not None and (not value.strip() or len(value) > limit):
            raise InvalidRule(f"{name} must be 1 to {limit:,} characters")
    if (rule.target is None) != (rule.target_type == "all") or (rule.scope is None) != (rule.scope_type == "all"):
        raise InvalidRule("a target or scope value is missing, or given for 'all'")
    if rule.note is not None and len(rule.note) > MAX_NOTE_CHARS:
        raise InvalidRule(f"note must be at most {MAX_NOTE_CHARS} characters")
    if rule.until is not None and rule.until.tzinfo is None:
        raise InvalidRule("until must carry a time zone")
    if rule.kind == "pin":
        if rule.target_type != "story" or rule.scope_type != "story":
            raise InvalidRule("a pin places one story under one story")
        if rule.target == rule.scope:
            raise InvalidRule("a story cannot be pinned under itself")
        if rule.position is None or not 1 <= rule.position <= MAX_K:
            raise InvalidRule(f"position must be from 1 to {MAX_K}")
    elif rule.position is not None:
        raise InvalidRule("only a pin has a position")
    if rule.kind == "block" and (rule.target_type != "story" or rule.scope_type not in ("all", "story")):
        raise InvalidRule("a block names one story, everywhere or under one story")
    if rule.kind == "exclude":
        if rule.target_type == "story":
            raise InvalidRule("exclude takes a section or a tag (to never show one story, block it)")
        if rule.target_type == "all" and rule.scope_type == "all":
            raise InvalidRule("excluding everything everywhere would empty every list: say under which stories")


def expiry(value: object, now: datetime) -> datetime | None:
    """A rule's ``until`` from what an editor typed (see :func:`recommender.when.parse_when`); it must be later
    than ``now``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        until = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        try:
            until = parse_when(value, now, end_of_day=True)
        except InvalidTime as exc:
            raise InvalidRule(f"until: {exc}") from None
    else:
        raise InvalidRule("until must be a date, a date-time or a duration such as 48h")
    if until <= now:
        raise InvalidRule(f"until {iso(until)} is already past")
    return until


@dataclass(frozen=True)
class Pin:
    """A pinned story for one list: where it goes and which rule put it there."""

    position: int
    target: str
    rule_id: int | None


@dataclass(frozen=True)
class StoryRules:
    """What the active rules do to one story's list: filters to merge with the request's, pins, or nothing."""

    filters: Filters
    pins: tuple[Pin, ...]
    hidden: bool  # "show nothing under this story"


#: No rule over a story's list.
NO_STORY_RULES = StoryRules(NO_FILTERS, (), False)


class RuleBook:
    """Every stored rule, indexed by where it applies, as of one rules version of the catalog."""

    def __init__(self, rules: Iterable[Rule], version: int) -> None:
        self.rules = sorted(rules, key=lambda r: r.id or 0)
        self.version = version
        self._everywhere: list[Rule] = []
        self._by_scope: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        for rule in self.rules:
            if rule.scope_type == "all":
                self._everywhere.append(rule)
            else:
                key = rule.scope if rule.scope_type == "story" else (rule.scope or "").casefold()
                self._by_scope[(rule.scope_type, key or "")].append(rule)
        self._expiries = sorted(r.until for r in self.rules if r.until is not None)

    @classmethod
    def load(cls, catalog: Catalog) -> RuleBook:
        return cls((Rule.from_row(row) for row in catalog.rule_rows()), catalog.rules_version())

    def __len__(self) -> int:
        return len(self.rules)

    def version_tag(self, now: datetime) -> str:
        """What the rules add to the index version: the rules version and how many expiries have passed, so that
        an expiring rule changes the version (and every cached answer and ETag) without any write. Empty while
        no rule was ever stored."""
        if not self.version:
            return ""
        return f"-r{self.version}.{bisect.bisect_right(self._expiries, now)}"

    def next_expiry(self, now: datetime) -> datetime | None:
        """When the next active rule expires (a static export is correct until then)."""
        upcoming = bisect.bisect_right(self._expiries, now)
        return self._expiries[upcoming] if upcoming < len(self._expiries) else None

    def active(self, now: datetime) -> list[Rule]:
        return [rule for rule in self.rules if rule.active(now)]

    def for_story(self, story: Article, now: datetime) -> StoryRules:
        """The active rules over ``story``'s list (``story`` may be a link card)."""
        if not self.rules:
            return NO_STORY_RULES  # the common case, on every read
        candidates = list(self._everywhere)
        candidates += self._by_scope.get(("story", story.id), [])
        if story.section:
            candidates += self._by_scope.get(("section", story.section.casefold()), [])
        for tag in story.tags:
            candidates += self._by_scope.get(("tag", tag.casefold()), [])
        return _story_rules(rule for rule in candidates if rule.active(now) and rule.applies_under(story))

    def everywhere(self, now: datetime) -> Filters:
        """The active blocks and exclusions that apply under every story (for free-text queries: no story)."""
        return _story_rules(rule for rule in self._everywhere if rule.active(now)).filters


def _story_rules(rules: Iterable[Rule]) -> StoryRules:
    blocked: set[str] = set()
    sections: set[str] = set()
    tags: set[str] = set()
    pins: dict[str, Pin] = {}
    hidden = False
    for rule in sorted(rules, key=lambda r: r.id or 0):
        if rule.kind == "pin" and rule.target is not None:
            pins[rule.target] = Pin(rule.position or 1, rule.target, rule.id)  # a newer pin of it wins
        elif rule.kind == "block" and rule.target is not None:
            blocked.add(rule.target)
        elif rule.target_type == "section" and rule.target:
            sections.add(rule.target)
        elif rule.target_type == "tag" and rule.target:
            tags.add(rule.target)
        elif rule.target_type == "all":
            hidden = True
    if not (blocked or sections or tags):
        filters = NO_FILTERS
    else:
        filters = Filters(
            exclude=frozenset(blocked), exclude_sections=frozenset(sections), exclude_tags=frozenset(tags)
        )
    ordered = tuple(sorted(pins.values(), key=lambda p: (p.position, p.rule_id or 0)))
    return StoryRules(filters, ordered, hidden)


# -- storing (library calls behind `recommender pin|block|rule` and /v1/rules) ----------------------------------------
def save_rule(catalog: Catalog, rule: Rule) -> Rule:
    """Store ``rule`` in one transaction (the caller holds the index's write lock); returns it with its id.

    A pin must name two stories of the index (:class:`ArticleNotFound` otherwise); a block may name a story not
    yet published (a legal hold on a story about to come in)."""
    if rule.kind == "pin":
        for article_id in (rule.scope, rule.target):
            if article_id is None or catalog.key_of(article_id) is None:
                raise ArticleNotFound(str(article_id))
    stored = replace(rule, created_at=rule.created_at or datetime.now(UTC).replace(microsecond=0))
    with catalog.transaction():
        rule_id = catalog.insert_rule(stored.row())
    return replace(stored, id=rule_id)


def remove_rules(catalog: Catalog, ids: Sequence[int]) -> list[int]:
    """Delete rules by id in one transaction (the caller holds the write lock); :class:`RuleNotFound` names the
    first unknown id, and then nothing is deleted."""
    known = {rule.id for rule in RuleBook.load(catalog).rules}
    for rule_id in ids:
        if rule_id not in known:
            raise RuleNotFound(rule_id)
    with catalog.transaction():
        return catalog.delete_rules(list(ids))


def expired_ids(catalog: Catalog, now: datetime) -> list[int]:
    return [rule.id for rule in RuleBook.load(catalog).rules if rule.id is not None and not rule.active(now)]


def _catalog(index_dir: Path) -> Catalog:
    from recommender.storage.store import IndexStore

    if not IndexStore.exists(index_dir):
        raise IndexNotFound(f"no index in {index_dir} (create one with: recommender build SOURCE --index {index_dir})")
    return Catalog(index_dir / Catalog.FILENAME)


def add_rule(index_dir: Path | str, rule: Rule, *, lock_timeout: float = 10.0) -> Rule:
    """Store a rule with the index in ``index_dir``; a server on it applies the rule within its check interval."""
    from recommender.storage.store import acquire_write_lock

    index_dir = Path(index_dir)
    with acquire_write_lock(index_dir, lock_timeout):
        catalog = _catalog(index_dir)
        try:
            return save_rule(catalog, rule)
        finally:
            catalog.close()


def delete_rules(
    index_dir: Path | str, ids: Sequence[int] = (), *, expired: bool = False, lock_timeout: float = 10.0
) -> list[int]:
    """Delete rules by id (and with ``expired``, every rule past its expiry); returns the ids deleted."""
    from recommender.storage.store import acquire_write_lock

    index_dir = Path(index_dir)
    with acquire_write_lock(index_dir, lock_timeout):
        catalog = _catalog(index_dir)
        try:
            wanted = list(dict.fromkeys([*ids, *(expired_ids(catalog, datetime.now(UTC)) if expired else [])]))
            return remove_rules(catalog, wanted) if wanted else []
        finally:
            catalog.close()


def list_rules(index_dir: Path | str) -> list[Rule]:
    """Every rule of the index, expired ones included (``Rule.active(now)`` tells them apart)."""
    catalog = _catalog(Path(index_dir))
    try:
        return RuleBook.load(catalog).rules
    finally:
        catalog.close()
