"""``recommender report``: is the "Also Read" box clicked, where, by whom (section, variant), and how much of the
archive does it ever show?

The unit is a *view*: one box seen on one page view (an impression). A view is *clicked* when at least one of its
links was followed, so every rate here is a true proportion -- clicked views over views -- with a Wilson 95 %
interval (:func:`scipy.stats.binomtest`), and variants are compared with Fisher's exact test (two variants) or a
chi-square test (more). By position, a view counts for every position it showed, and is clicked at a position
when that link was followed. A click whose impression never arrived (a beacon lost, a crawler) is counted apart
and left out of the rates.

Exposure is over the whole archive: the share of stories shown at least once, the Gini coefficient of
impressions per story (0: every story shown equally; 1: one story takes every impression) and its Lorenz curve.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommender.events.variants import DEFAULT_VARIANT

#: Views each variant needs before a verdict is given at all.
MIN_VIEWS_PER_VARIANT = 100
#: Significance level of the verdict.
ALPHA = 0.05
#: Points kept of the exposure (Lorenz) curve.
CURVE_POINTS = 101
UNKNOWN_SECTION = "(none)"


@dataclass(frozen=True)
class Rate:
    """``clicked`` of ``views``, with a Wilson 95 % confidence interval (None without views)."""

    clicked: int
    views: int

    @property
    def ctr(self) -> float | None:
        return self.clicked / self.views if self.views else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.views:
            return None
        from scipy.stats import binomtest

        ci = binomtest(self.clicked, self.views).proportion_ci(confidence_level=0.95, method="wilson")
        return float(ci.low), float(ci.high)

    def to_dict(self) -> dict[str, Any]:
        ci = self.interval
        return {
            "views": self.views,
            "clicked": self.clicked,
            "ctr": None if self.ctr is None else round(self.ctr, 6),
            "ci_low": None if ci is None else round(ci[0], 6),
            "ci_high": None if ci is None else round(ci[1], 6),
        }


@dataclass(frozen=True)
class Comparison:
    """Whether the variants' click-through rates differ more than chance explains."""

    test: str | None
    p_value: float | None
    significant: bool
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        p = None if self.p_value is None else round(self.p_value, 6)
        return {"test": self.test, "p_value": p, "significant": self.significant, "verdict": self.verdict}


@dataclass(frozen=True)
class Exposure:
    """How much of the archive the box shows, and how evenly."""

    archive: int
    shown: int
    gini: float | None
    top_decile_share: float | None  # share of impressions taken by the 10 % most-shown stories
    curve: list[tuple[float, float]]  # Lorenz curve: (share of stories, share of impressions), least shown first

    @property
    def share_shown(self) -> float | None:
        return self.shown / self.archive if self.archive else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "archive": self.archive,
            "shown": self.shown,
            "share_shown": None if self.share_shown is None else round(self.share_shown, 6),
            "gini": None if self.gini is None else round(self.gini, 6),
            "top_decile_share": None if self.top_decile_share is None else round(self.top_decile_share, 6),
            "curve": [[round(x, 4), round(y, 4)] for x, y in self.curve],
        }


@dataclass
class Report:
    since: str | None
    first: str | None
    last: str | None
    impressions: int
    clicks: int
    orphan_clicks: int
    bad_lines: int
    overall: Rate
    by_position: dict[int, Rate]
    by_section: dict[str, Rate]
    by_variant: dict[str, Rate]
    comparison: Comparison
    exposure: Exposure
    clicks_by_position: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "first_event": self.first,
            "last_event": self.last,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "orphan_clicks": self.orphan_clicks,
            "unreadable_lines": self.bad_lines,
            "overall": self.overall.to_dict(),
            "by_position": {
                str(p): r.to_dict() | {"clicks": self.clicks_by_position.get(p, 0)} for p, r in self.by_position.items()
            },
            "by_section": {s: r.to_dict() for s, r in self.by_section.items()},
            "by_variant": {v: r.to_dict() for v, r in self.by_variant.items()},
            "comparison": self.comparison.to_dict(),
            "exposure": self.exposure.to_dict(),
        }


@dataclass
class _View:
    story: str
    variant: str
    shown: int = 0
    impressed: bool = False
    clicked: set[int] = field(default_factory=set)
    click_events: int = 0


def summarise(
    events: Iterable[Mapping[str, Any]],
    sections: Mapping[str, str | None],
    archive_size: int,
    in_archive: Iterable[str] | None = None,
    *,
    since: datetime | None = None,
    bad_lines: int = 0,
) -> Report:
    """A :class:`Report` from stored events. ``sections`` maps story ids to their section (stories no longer
    in the archive are absent); ``archive_size`` counts the stories in the archive, ``in_archive`` (default:
    the keys of ``sections``) the ids that still exist, for exposure."""
    views: dict[str, _View] = {}
    shown_counts: Counter[str] = Counter()
    clicks_by_position: Counter[int] = Counter()
    impressions = clicks = 0
    first = last = None
    for n, event in enumerate(events):
        ts = event.get("ts")
        if isinstance(ts, str):
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
        key = str(event.get("view") or f"\x00{n}")  # no view id: a view of its own
        variant = str(event.get("variant") or DEFAULT_VARIANT)
        view = views.setdefault(key, _View(str(event.get("story", "")), variant))
        if event.get("type") == "impression":
            items = [str(i) for i in event.get("items") or []]
            if view.impressed:
                continue  # the same box reported twice
            impressions += 1
            view.impressed, view.shown = True, len(items)
            shown_counts.update(items)
        elif event.get("type") == "click":
            clicks += 1
            view.click_events += 1
            position = event.get("position")
            if isinstance(position, int):
                view.clicked.add(position)
                clicks_by_position[position] += 1
    seen = [v for v in views.values() if v.impressed]
    orphans = sum(v.click_events for v in views.values() if not v.impressed)
    overall = Rate(sum(1 for v in seen if v.clicked), len(seen))
    by_position = {
        p: Rate(sum(1 for v in seen if p in v.clicked), sum(1 for v in seen if v.shown >= p))
        for p in range(1, max((v.shown for v in seen), default=0) + 1)
    }
    by_section = _rates(seen, lambda v: sections.get(v.story) or UNKNOWN_SECTION)
    by_variant = _rates(seen, lambda v: v.variant)
    existing = set(sections) if in_archive is None else set(in_archive)
    return Report(
        since=since.isoformat() if since else None,
        first=first,
        last=last,
        impressions=impressions,
        clicks=clicks,
        orphan_clicks=orphans,
        bad_lines=bad_lines,
        overall=overall,
        by_position=by_position,
        by_section=dict(sorted(by_section.items(), key=lambda kv: (-kv[1].views, kv[0]))),
        by_variant=dict(sorted(by_variant.items())),
        comparison=compare(by_variant),
        exposure=exposure({i: c for i, c in shown_counts.items() if i in existing}, archive_size),
        clicks_by_position=dict(sorted(clicks_by_position.items())),
    )


def _rates(views: Iterable[_View], group: Any) -> dict[str, Rate]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for view in views:
        cell = counts[group(view)]
        cell[0] += 1 if view.clicked else 0
        cell[1] += 1
    return {name: Rate(clicked, total) for name, (clicked, total) in counts.items()}


def compare(by_variant: Mapping[str, Rate]) -> Comparison:
    """A plain verdict on whether the variants' CTRs differ (Fisher's exact test for two, chi-square for more)."""
    names = sorted(by_variant)
    if len(names) < 2:
        only = f" ({names[0]!r})" if names else ""
        return Comparison(None, None, False, f"Only one variant{only} ran: there is nothing to compare.")
    small = [n for n in names if by_variant[n].views < MIN_VIEWS_PER_VARIANT]
    if small:
        return Comparison(
            None,
            None,
            False,
            f"Too early to tell: variant(s) {', '.join(small)} have fewer than {MIN_VIEWS_PER_VARIANT} views.",
        )
    from scipy.stats import chi2_contingency, fisher_exact

    table = np.array([[by_variant[n].clicked, by_variant[n].views - by_variant[n].clicked] for n in names])
    if len(names) == 2:
        test, p = "fisher_exact", float(fisher_exact(table)[1])
    else:
        test, p = "chi2", float(chi2_contingency(table)[1])
    ranked = sorted(names, key=lambda n: by_variant[n].ctr or 0.0, reverse=True)
    best, worst = ranked[0], ranked[-1]
    rates = f"{_pct(by_variant[best].ctr)} vs {_pct(by_variant[worst].ctr)}"
    if p < ALPHA:
        verdict = (
            f"Significant (p = {p:.3g}): variant {best!r} is clicked more than {worst!r} ({rates} of views); "
            f"a gap this large would arise by chance less than {ALPHA:.0%} of the time."
        )
    else:
        verdict = (
            f"No significant difference (p = {p:.3g}): {best!r} and {worst!r} ({rates} of views) differ by no "
            "more than chance explains. Keep the test running, or accept that they perform alike."
        )
    return Comparison(test, p, p < ALPHA, verdict)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def exposure(shown: Mapping[str, int], archive_size: int) -> Exposure:
    """Exposure of an archive of ``archive_size`` stories from impressions per story (stories never shown are
    the ones missing from ``shown``)."""
    if archive_size <= 0:
        return Exposure(0, 0, None, None, [])
    counts = np.zeros(max(archive_size, len(shown)), dtype=np.float64)
    values = np.fromiter(shown.values(), dtype=np.float64, count=len(shown))
    counts[: len(values)] = values
    counts.sort()
    total = counts.sum()
    if total <= 0:
        return Exposure(archive_size, 0, None, None, [(0.0, 0.0), (1.0, 1.0)])
    n = len(counts)
    ranks = np.arange(1, n + 1)
    gini = float((2 * np.sum(ranks * counts)) / (n * total) - (n + 1) / n)
    top = max(1, int(np.ceil(n * 0.1)))
    top_share = float(counts[-top:].sum() / total)
    cumulative = np.concatenate([[0.0], np.cumsum(counts) / total])
    picks = np.unique(np.linspace(0, n, min(CURVE_POINTS, n + 1)).round().astype(int))
    curve = [(float(i / n), float(cumulative[i])) for i in picks]
    return Exposure(archive_size, int(np.count_nonzero(counts)), gini, top_share, curve)


def report_for_index(
    index_dir: Path | str, events_dir: Path | str | None = None, since: datetime | None = None
) -> Report:
    """The report of an index's events (stored in ``events_dir``, by default ``INDEX/events``), sections and
    exposure read from its catalog."""
    from recommender.events.log import EventReader
    from recommender.storage.store import IndexStore

    index_dir = Path(index_dir)
    if not IndexStore.exists(index_dir):
        from recommender.errors import IndexNotFound

        raise IndexNotFound(f"no index in {index_dir}")
    from recommender.storage.catalog import Catalog

    reader = EventReader(Path(events_dir) if events_dir else index_dir / "events", since)
    events = list(reader)
    ids = {str(e.get("story", "")) for e in events} | {str(i) for e in events for i in e.get("items") or []}
    catalog = Catalog(index_dir / Catalog.FILENAME, read_only=True)
    try:
        sections = catalog.sections(ids)
        size = catalog.count()
    finally:
        catalog.close()
    return summarise(events, sections, size, since=since, bad_lines=reader.bad_lines)
