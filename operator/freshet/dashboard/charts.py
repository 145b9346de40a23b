"""Charts as inline SVG: no script, no library, no network; a page works offline
and reads without JavaScript. Hovering a point shows its <title>. Pure functions
of the data; the look is in static/dashboard.css (classes, not inline colours)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

WIDTH, HEIGHT = 1100, 300
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 14, 40
MAX_X_LABELS = 12


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str
    """Shown on hover."""
    mark: str = ""
    """CSS class of the marker: promoted, rejected, rolledback, failed; empty for none."""


@dataclass(frozen=True)
class Series:
    name: str
    kind: str
    """CSS class of the line: candidate, baseline, dummy, live, previous."""
    points: Sequence[Point]
    line: bool = True


@dataclass(frozen=True)
class Chart:
    series: Sequence[Series]
    x_labels: Sequence[tuple[float, str]]
    y_label: str
    caption: str
    legend: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Extra legend entries (CSS class, text) for the markers."""
    empty: str = "Nothing to chart yet."


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + (abs(low) or 1.0) * 0.1
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if len(ticks) < 2 or ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def render(chart: Chart) -> Markup:
    points = [p for s in chart.series for p in s.points]
    if not points:
        return Markup(f'<p class="empty">{escape(chart.empty)}</p>')
    xs = [p.x for p in points] + [x for x, _ in chart.x_labels]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    ticks = nice_ticks(min(p.y for p in points), max(p.y for p in points))
    y_low, y_high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + (y_high - y) / (y_high - y_low) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{escape(chart.caption)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in ticks:
        y = sy(tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(tick)}</text>"
        )
    # As many labels as fit side by side (about 6.5 px per character at 11 px).
    widest = max((len(label) for _, label in chart.x_labels), default=1)
    fit = max(2, min(MAX_X_LABELS, int(plot_w // (widest * 6.5 + 14))))
    every = max(1, math.ceil(len(chart.x_labels) / fit))
    for x, label in list(chart.x_labels)[::every]:
        parts.append(
            f'<text class="tick" x="{sx(x):.1f}" y="{HEIGHT - BOTTOM + 16}"'
            f' text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text class="axis" x="12" y="{TOP + plot_h / 2:.1f}" text-anchor="middle"'
        f' transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">{escape(chart.y_label)}</text>'
    )
    for s in chart.series:
        coords = [(sx(p.x), sy(p.y)) for p in s.points]
        if s.line and len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline class="line {escape(s.kind)}" points="{path}"/>')
        for p, (x, y) in zip(s.points, coords, strict=True):
            parts.append(_marker(s.kind, p, x, y))
    parts.append("</svg>")
    legend = [(s.kind, s.name) for s in chart.series] + list(chart.legend)
    items = "".join(
        f'<li><span class="swatch {escape(kind)}"></span>{escape(text)}</li>'
        for kind, text in legend
    )
    return Markup(
        f'<figure class="chart">{"".join(parts)}'
        f'<figcaption>{escape(chart.caption)}<ul class="legend">{items}</ul></figcaption></figure>'
    )


def _marker(kind: str, p: Point, x: float, y: float) -> str:
    title = f"<title>{escape(p.title)}</title>"
    cls = f"mark {escape(kind)} {escape(p.mark)}".strip()
    if p.mark == "rejected":
        a, b, c, e = x - 5, x + 5, y - 5, y + 5
        d = f"M{a:.1f},{c:.1f}L{b:.1f},{e:.1f}M{a:.1f},{e:.1f}L{b:.1f},{c:.1f}"
        return f'<g class="{cls}"><path d="{d}"/>{title}</g>'
    if p.mark == "rolledback":
        d = f"M{x:.1f},{y - 6:.1f}L{x + 6:.1f},{y + 5:.1f}L{x - 6:.1f},{y + 5:.1f}Z"
        return f'<g class="{cls}"><path d="{d}"/>{title}</g>'
    radius = 4.5 if p.mark else 2.5
    return f'<g class="{cls}"><circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}"/>{title}</g>'
