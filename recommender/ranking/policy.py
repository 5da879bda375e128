"""The ranking policy a site sets, and the filters one request asks for: two separate objects.

:class:`RankingPolicy` is a deployment decision: every knob of the pipeline (:mod:`recommender.ranking.pipeline`),
recorded with the index so that the lists precomputed at build time, the lists patched after each write and the
lists served all come from the same rules. It is set from ``recommender.toml`` (a ``[ranking]`` table) or with
``recommender policy set KEY=VALUE``, both of which recompute every stored list.

:class:`Filters` belong to one request (an editor's box that shows only one section, a date window, ids to leave
out); they never change a stored list, they are applied to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from recommender.errors import RecommenderError

if TYPE_CHECKING:
    from recommender.articles import Article


class PolicyError(RecommenderError):
    """A ranking policy value is out of its bounds, of the wrong type, or unknown."""


@dataclass(frozen=True)
class Knob:
    """What one policy field accepts: its kind, bounds, choices, and a line for ``policy show`` and the docs."""

    kind: type
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # None allowed (the step is off)
    pattern: str | None = None  # a free string must match this (regular expression)
    describe: str = ""  # what a string must be, for the error

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern:
            return self.describe
        if self.kind is bool:
            return "true or false"
        what = "a number" if self.kind is float else "a whole number"
        if self.low is not None and self.high is not None:
            what += f" from {self.low:g} to {self.high:g}"
        elif self.low is not None:
            what += f" of at least {self.low:g}"
        return what + (" (or none, to switch it off)" if self.optional else "")

    def parse(self, key: str, value: Any) -> Any:
        """``value`` (from TOML, JSON or a ``KEY=VALUE`` string) as this knob's type, or :class:`PolicyError`."""
        if isinstance(value, str):
            value = _from_text(value.strip(), self)
        if value is None:
            if self.optional:
                return None
            raise PolicyError(f"ranking.{key} = none: must be {self.allowed()}")
        if self.choices or self.pattern:
            ok = isinstance(value, str) and (
                value in self.choices if self.choices else re.fullmatch(self.pattern or "", value) is not None
            )
            if not ok:
                raise PolicyError(f"ranking.{key} = {value!r}: must be {self.allowed()}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise PolicyError(f"ranking.{key} = {value!r}: must be {self.allowed()}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyError(f"ranking.{key} = {value!r}: must be {self.allowed()}")
        if self.kind is int and (not float(value).is_integer()):
            raise PolicyError(f"ranking.{key} = {value!r}: must be {self.allowed()}")
        number = self.kind(value)
        if (
            not math.isfinite(number)
            or (self.low is not None and number < self.low)
            or (self.high is not None and number > self.high)
        ):
            raise PolicyError(f"ranking.{key} = {value!r}: must be {self.allowed()}")
        return number


def _from_text(text: str, knob: Knob) -> Any:
    """A ``KEY=VALUE`` command-line value in the knob's type (strings for choices; numbers; none/off)."""
    lowered = text.lower()
    if lowered in ("none", "off", "null", "") and knob.optional:
        return None
    if knob.choices or knob.pattern:
        return text
    if knob.kind is bool:
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        return text
    try:
        return float(text) if knob.kind is float else int(text)
    except ValueError:
        return text


#: Every knob of the pipeline, in the order ``policy show`` prints them. The defaults live on the dataclass.
KNOBS: dict[str, Knob] = {
    "keyword_weight": Knob(
        float, "share of the score that comes from keyword (TF-IDF) cosine; the rest is the embedding cosine", 0, 1
    ),
    "dated_keyword_weight": Knob(
        float,
        "keyword share when both stories are dated and time proximity is on (closeness in time then does much of "
        "what shared names do: tell one event from another of the same kind); none = keyword_weight",
        0,
        1,
        optional=True,
    ),
    "keyword_gate": Knob(
        float,
        "embedding cosine from which keyword evidence counts fully; below it, less and less down to the minimum "
        "similarity (shared words never lift a story the model finds distant)",
        -1,
        1,
    ),
    "keyword_prior_docs": Knob(
        float,
        "how many documents the background word list counts for in keyword weights (0 = the archive's own "
        "counts only); makes weights sane in a small archive",
        0,
        1e9,
    ),
    "min_similarity": Knob(
        float, "embedding cosine below which a story is not related (the list is returned short, not padded)", -1, 1
    ),
    "near_copy": Knob(float, "embedding cosine at or above which two stories are copies of one story", 0, 1),
    "time_half_life_days": Knob(
        float,
        "time proximity: days apart (from the current story's date) at which the time boost halves",
        0.01,
        36500,
        optional=True,
    ),
    "time_weight": Knob(float, "time proximity: how much of the score depends on closeness in time (0 = none)", 0, 1),
    "diversity": Knob(
        float, "diversity (MMR): 0 = pure relevance; higher values push near-identical angles apart", 0, 0.99
    ),
    "language": Knob(str, "same = a list stays in its story's language; any = languages mix", choices=("same", "any")),
    "model_languages": Knob(
        str,
        "languages the embedding model reads: auto (known for the packaged models), * (all), or codes like en,de",
        pattern=r"auto|\*|[a-z]{2,3}(,[a-z]{2,3})*",
        describe="auto, * or comma-separated language codes such as en,de",
    ),
    "foreign_keyword_weight": Knob(
        float,
        "keyword share of the score for a story in a language the model does not read (its cosines are noise)",
        0,
        1,
    ),
    "min_keyword_similarity": Knob(
        float,
        "keyword cosine below which a story in a language the model does not read is not related",
        0,
        1,
    ),
}


@dataclass(frozen=True)
class RankingPolicy:
    """Every knob of the ranking pipeline. Defaults are what a newsroom gets without configuring anything
    (the numbers behind them: docs/evaluation.md)."""

    # The defaults were chosen on the labelled sets with scripts/policy_sweep.py (docs/evaluation.md, "The
    # ranking policy's defaults"): time proximity and the dated keyword share lift the dated AllSides set from
    # MRR .866 to .96; the background prior and the gate leave every undated set within .005 of before.
    keyword_weight: float = 0.7
    dated_keyword_weight: float | None = 0.3
    keyword_gate: float = 0.3
    keyword_prior_docs: float = 1000.0
    min_similarity: float = 0.2
    near_copy: float = 0.97
    time_half_life_days: float | None = 3.0
    time_weight: float = 0.5
    diversity: float = 0.0
    language: str = "same"
    model_languages: str = "auto"
    foreign_keyword_weight: float = 0.7
    min_keyword_similarity: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            KNOBS[f.name].parse(f.name, getattr(self, f.name))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: RankingPolicy | None = None) -> RankingPolicy:
        """``base`` (default: the defaults) with ``values`` applied; unknown keys and bad values are a
        :class:`PolicyError` naming the key, the value and what is allowed."""
        unknown = sorted(set(values) - set(KNOBS))
        if unknown:
            raise PolicyError(f"unknown ranking setting(s) {', '.join(unknown)} (known: {', '.join(KNOBS)})")
        parsed = {key: KNOBS[key].parse(key, value) for key, value in values.items()}
        return replace(base or cls(), **parsed)

    @classmethod
    def from_assignments(cls, assignments: Iterable[str], base: RankingPolicy | None = None) -> RankingPolicy:
        """``KEY=VALUE`` strings (``recommender policy set``) applied to ``base``."""
        values: dict[str, str] = {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise PolicyError(f"{item!r}: expected KEY=VALUE (keys: {', '.join(KNOBS)})")
            values[key.strip().replace("-", "_")] = value
        return cls.from_mapping(values, base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def time_on(self) -> bool:
        return self.time_half_life_days is not None and self.time_weight > 0

    @property
    def keeps_language(self) -> bool:
        return self.language == "same"

    def reads(self, model: str) -> frozenset[str] | None:
        """The languages the embedding ``model`` reads under this policy (None: every language)."""
        if self.model_languages == "*":
            return None
        if self.model_languages == "auto":
            from recommender.embedding.base import model_languages

            return model_languages(model)
        return frozenset(self.model_languages.split(","))


@dataclass(frozen=True)
class Filters:
    """An editor's per-request filters: only this section or language, a date window, ids never to suggest.

    Undated stories fail a date window. Filters are applied after copies are collapsed, so a list with a filter
    is the unfiltered list with the stories that fail it left out (and refilled from further down).
    """

    section: str | None = None
    language: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    #: Sections and tags never to show (editors' standing rules; compared case-insensitively).
    exclude_sections: frozenset[str] = field(default_factory=frozenset)
    exclude_tags: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        section: str | None = None,
        language: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        exclude: Iterable[str] | None = None,
    ) -> Filters:
        """Filters from a request's values: a date without a zone is UTC; excluded ids may be comma-separated."""
        if not (section or language or since or until or exclude):  # most requests: no filters at all
            return NO_FILTERS
        ids = frozenset(part.strip() for item in exclude or () for part in item.split(",") if part.strip())
        return cls(section or None, language or None, _aware(since), _aware(until), ids)

    def __post_init__(self) -> None:
        # compared case-insensitively: store them folded once
        object.__setattr__(self, "exclude_sections", frozenset(s.casefold() for s in self.exclude_sections))
        object.__setattr__(self, "exclude_tags", frozenset(t.casefold() for t in self.exclude_tags))

    @property
    def empty(self) -> bool:
        return self is NO_FILTERS or self == NO_FILTERS

    def merged(self, other: Filters) -> Filters:
        """Both sets of filters at once (a request's and the editors' rules): exclusions add up; a request's
        section, language and dates win over ``other``'s."""
        return Filters(
            section=self.section if self.section is not None else other.section,
            language=self.language if self.language is not None else other.language,
            since=self.since if self.since is not None else other.since,
            until=self.until if self.until is not None else other.until,
            exclude=self.exclude | other.exclude,
            exclude_sections=self.exclude_sections | other.exclude_sections,
            exclude_tags=self.exclude_tags | other.exclude_tags,
        )

    def passes(self, article: Article) -> bool:
        """Whether one story may be shown under these filters (``article`` may be a link card: id, section,
        language, date and tags are what is read)."""
        if article.id in self.exclude:
            return False
        section, language = article.section, article.language
        if self.section is not None and (section or "").casefold() != self.section.casefold():
            return False
        if self.language is not None and (language or "").casefold() != self.language.casefold():
            return False
        if self.exclude_sections and (section or "").casefold() in self.exclude_sections:
            return False
        if self.exclude_tags and any(tag.casefold() in self.exclude_tags for tag in article.tags):
            return False
        if self.since is not None or self.until is not None:
            published = article.published
            if published is None:
                return False
            if self.since is not None and published < self.since:
                return False
            if self.until is not None and published > self.until:
                return False
        return True


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


NO_FILTERS = Filters()
