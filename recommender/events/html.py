"""The report as one self-contained HTML page an editor can open: plain sentences, tables, and two inline SVG
charts (CTR by position with its confidence intervals; the exposure curve). No script, no external file."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

from recommender.events.report import Rate, Report
from recommender.when import iso

BAR_CHART = {"width": 560, "height": 240, "left": 48, "top": 12, "base": 200}
CURVE_SIZE = 300


def render_html(report: Report) -> str:
    """The page (UTF-8 text); every value from the events is escaped by Jinja2's autoescape."""
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(resources.files("recommender").joinpath("static/report.html.j2").read_text("utf-8"))
    return template.render(
        r=report,
        bars=bar_geometry(report.by_position),
        curve=curve_geometry(report.exposure.curve),
        pct=_pct,
        ci=_ci,
        generated=iso(datetime.now(UTC)),
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ci(rate: Rate) -> str:
    interval = rate.interval
    return "-" if interval is None else f"{interval[0]:.1%} to {interval[1]:.1%}"


def bar_geometry(by_position: dict[int, Rate]) -> dict[str, Any]:
    """Bars (and interval whiskers) of CTR by position, in SVG coordinates."""
    geometry: dict[str, Any] = dict(BAR_CHART, bars=[], ticks=[])
    rates = [(p, r) for p, r in sorted(by_position.items()) if r.views]
    if not rates:
        return geometry
    top = max(max(r.interval[1] if r.interval else 0.0 for _, r in rates), 0.01)
    scale = (BAR_CHART["base"] - BAR_CHART["top"]) / top
    slot = (BAR_CHART["width"] - BAR_CHART["left"] - 10) / len(rates)

    def y(value: float) -> float:
        return round(BAR_CHART["base"] - value * scale, 1)

    for n, (position, rate) in enumerate(rates):
        ctr = rate.ctr or 0.0
        x = BAR_CHART["left"] + n * slot + slot * 0.15
        interval = rate.interval
        geometry["bars"].append(
            {
                "position": position,
                "views": rate.views,
                "label": _pct(ctr),
                "x": round(x, 1),
                "w": round(slot * 0.7, 1),
                "y": y(ctr),
                "h": round(BAR_CHART["base"] - y(ctr), 1),
                "cx": round(x + slot * 0.35, 1),
                "ci": (y(interval[1]), y(interval[0])) if interval else None,
            }
        )
    geometry["ticks"] = [{"y": y(top * f), "label": _pct(top * f)} for f in (0.5, 1.0)]
    return geometry


def curve_geometry(curve: list[tuple[float, float]]) -> dict[str, Any]:
    """The Lorenz curve as an SVG polyline in a square of :data:`CURVE_SIZE`."""
    left = 60
    points = " ".join(f"{left + x * CURVE_SIZE:.1f},{10 + (1 - y) * CURVE_SIZE:.1f}" for x, y in curve)
    return {"size": CURVE_SIZE, "left": left, "points": points}
