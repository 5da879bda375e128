"""What the widget reports: an impression when an "Also Read" box is seen, a click per link followed.

One shape for both (:class:`Event`), checked here once so the store and the report can trust it. Nothing in an
event identifies a reader: the story, the list's version, the variant, the ids shown, the position clicked, and a
random id the widget draws per page view (it ties a click to the impression it came from; it is never stored in
the browser). The server adds the time it received the event; it stores no address, cookie or user agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, NotRequired

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before Python 3.12

from recommender.articles import MAX_ID_CHARS
from recommender.settings import MAX_K

KINDS = ("impression", "click")
FIELDS = frozenset(("type", "story", "version", "variant", "view", "items", "target", "position"))
#: Longest version, variant and view strings accepted.
MAX_TAG_CHARS = 128
#: Most events in one batch (a page with several boxes sends a few; a flood sends many).
MAX_BATCH = 100


class EventError(ValueError):
    """One event (or a whole batch) is not in the documented shape; the message says what is wrong."""


class Event(NamedTuple):
    """One impression or click, as checked at the door (a named tuple: made for every event received, it costs
    a fifth of a frozen dataclass)."""

    type: str
    story: str  # the story the box is shown under
    version: str | None = None  # index_version of the list shown (answers are cached per version)
    variant: str | None = None  # ranking variant of an A/B test; None when none was asked for
    view: str | None = None  # random per page view, drawn by the widget
    items: tuple[str, ...] = ()  # impression: the ids shown, in order
    target: str | None = None  # click: the id followed
    position: int | None = None  # click: its place in the list, from 1

    def record(self, received: str) -> dict[str, Any]:
        """The line the store keeps: these fields and the server's receipt time (``ts``, as
        :func:`recommender.when.iso` writes it)."""
        out: dict[str, Any] = {"ts": received, "type": self.type, "story": self.story}
        if self.version is not None:
            out["version"] = self.version
        if self.variant is not None:
            out["variant"] = self.variant
        if self.view is not None:
            out["view"] = self.view
        if self.type == "impression":
            out["items"] = list(self.items)
        else:
            out["target"] = self.target
            out["position"] = self.position
        return out


def _text(raw: dict[str, Any], name: str, limit: int, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise EventError(f"{name} is missing")
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise EventError(f"{name} must be a string of 1 to {limit} characters")
    return value


def parse_event(raw: Any) -> Event:
    """An :class:`Event` from one decoded JSON object, or :class:`EventError` saying what is wrong."""
    if not isinstance(raw, dict):
        raise EventError("an event must be a JSON object")
    if not FIELDS.issuperset(raw):
        raise EventError(f"unknown field(s) {', '.join(sorted(set(raw) - FIELDS))}")
    kind = raw.get("type")
    if kind not in KINDS:
        raise EventError(f"type must be one of {', '.join(KINDS)}")
    story = _text(raw, "story", MAX_ID_CHARS, required=True)
    assert story is not None
    version, variant, view = (
        _text(raw, "version", MAX_TAG_CHARS),
        _text(raw, "variant", MAX_TAG_CHARS),
        _text(raw, "view", MAX_TAG_CHARS),
    )
    if kind == "impression":
        items = raw.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_K:
            raise EventError(f"items must be a list of 1 to {MAX_K} story ids")
        if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in items):
            raise EventError(f"items must be story ids (strings of 1 to {MAX_ID_CHARS} characters)")
        if raw.get("target") is not None or raw.get("position") is not None:
            raise EventError("an impression has items, not target or position")
        return Event("impression", story, version, variant, view, items=tuple(items))
    target = _text(raw, "target", MAX_ID_CHARS, required=True)
    position = raw.get("position")
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_K:
        raise EventError(f"position must be a whole number from 1 to {MAX_K}")
    if raw.get("items") is not None:
        raise EventError("a click has target and position, not items")
    return Event("click", story, version, variant, view, target=target, position=position)


@dataclass(frozen=True)
class Batch:
    """A request's events: the valid ones, and ``(index, reason)`` for each one refused."""

    events: list[Event]
    rejected: list[tuple[int, str]]


# -- the common case in one pass --------------------------------------------------------------------------------------
# The same rules as parse_event, as a pydantic schema: pydantic-core parses and checks a whole batch of valid
# events in Rust, several times faster than decoding it and checking each event here. It only answers yes or no:
# a batch it refuses goes through parse_batch's own checks, which say what is wrong with each event (a test
# holds the two to the same answers).
_Story = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
_Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS)] | None
_STRICT = ConfigDict(strict=True, extra="forbid")


class _Impression(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    type: Literal["impression"]
    story: _Story
    version: NotRequired[_Tag]
    variant: NotRequired[_Tag]
    view: NotRequired[_Tag]
    items: Annotated[list[_Story], Field(min_length=1, max_length=MAX_K)]
    target: NotRequired[None]
    position: NotRequired[None]


class _Click(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    type: Literal["click"]
    story: _Story
    version: NotRequired[_Tag]
    variant: NotRequired[_Tag]
    view: NotRequired[_Tag]
    target: _Story
    position: Annotated[int, Field(ge=1, le=MAX_K)]
    items: NotRequired[None]


class _Batch(TypedDict):
    events: Annotated[
        list[Annotated[_Impression | _Click, Field(discriminator="type")]], Field(min_length=1, max_length=MAX_BATCH)
    ]


_VALID_BATCH = TypeAdapter(_Batch)


def _event_of(raw: _Impression | _Click) -> Event:
    """An :class:`Event` from one event the schema accepted."""
    if raw["type"] == "impression":
        return Event(
            "impression", raw["story"], raw.get("version"), raw.get("variant"), raw.get("view"), tuple(raw["items"])
        )
    return Event(
        "click",
        raw["story"],
        raw.get("version"),
        raw.get("variant"),
        raw.get("view"),
        target=raw["target"],
        position=raw["position"],
    )


def parse_batch(body: bytes, max_events: int = MAX_BATCH) -> Batch:
    """``{"events": [...]}`` as sent by the widget (as text/plain, so a beacon needs no CORS preflight). A bad
    event is refused alone; a body that is not that shape at all, or holds more than ``max_events``, is an
    :class:`EventError`."""
    if max_events == MAX_BATCH:
        try:
            valid = _VALID_BATCH.validate_json(body)
        except ValidationError:
            pass  # something is wrong: the checks below say what
        else:
            return Batch([_event_of(raw) for raw in valid["events"]], [])
    try:
        data = from_json(body)  # pydantic's parser: twice json's speed, and it refuses lone surrogates
    except ValueError as exc:
        raise EventError(f"body is not JSON: {exc}") from None
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        raise EventError('body must be {"events": [...]} with at least one event')
    if len(events) > max_events:
        raise EventError(f"{len(events)} events in one batch (at most {max_events})")
    good: list[Event] = []
    rejected: list[tuple[int, str]] = []
    for n, raw in enumerate(events):
        try:
            good.append(parse_event(raw))
        except EventError as exc:
            rejected.append((n, str(exc)))
    return Batch(good, rejected)
