"""Charts drawn on the server as inline SVG: no chart library, no script, and no inline styles (colours
come from classes in dashboard.css, so the page's Content-Security-Policy can forbid inline styles)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


def compact(value: float) -> str:
    """12345 -> '12.3k', 2500000 -> '2.5M': axis labels that fit."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis steps (1, 2, 2.5 or 5 times a power of ten) from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [step * i for i in range(math.ceil(top / step) + 1)]


def progress_bar(completed: int, failed: int, total: int) -> Markup:
    """Done lines as a bar: completed, then failed, on the batch's total (the bar is decoration; the
    caller labels it with the figures in text, and wraps it in a role=progressbar element)."""
    if total <= 0:
        ok_width = failed_width = 0.0
    else:
        ok_width = min(100.0, 100.0 * completed / total)
        failed_width = min(100.0 - ok_width, 100.0 * failed / total)
    return Markup(
        '<svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none" '
        'aria-hidden="true" focusable="false">'
        '<rect class="bar-track" width="100" height="6"/>'
        f'<rect class="bar-ok" width="{ok_width:.2f}" height="6"/>'
        f'<rect class="bar-failed" x="{ok_width:.2f}" width="{failed_width:.2f}" height="6"/>'
        "</svg>"
    )


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # under the bar (may be blank to thin the axis out)
    value: float
    tooltip: str  # the bar's <title>: what a pointer hover or a screen reader's exploration reads
    highlight: bool = False


WIDTH, HEIGHT = 1100, 250
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 26, 30


def bar_chart(bars: Sequence[Bar], *, title: str, description: str, chart_id: str, unit: str) -> Markup:
    """A labelled bar chart with a y axis of round steps."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ticks = nice_ticks(max((bar.value for bar in bars), default=0))
    top = ticks[-1] or 1
    slot = plot_w / max(len(bars), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<line class="gridline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        label = escape(compact(tick))
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 3.5:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<text class="axis unit" x="{LEFT - 6}" y="12" text-anchor="end">{escape(unit)}</text>')
    for index, bar in enumerate(bars):
        x = LEFT + slot * index + slot * 0.15
        height = plot_h * bar.value / top
        kind = "col col-now" if bar.highlight else "col"
        parts.append(
            f'<rect class="{kind}" x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{max(height, 0):.1f}"><title>{escape(bar.tooltip)}</title></rect>'
        )
        if bar.label:
            parts.append(
                f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(bar.label)}</text>'
            )
    parts.append(
        f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def meter(used: float, cap: float) -> Markup:
    """Used against a cap (over the cap: a full bar in the warning colour)."""
    share = 0.0 if cap <= 0 else min(1.0, used / cap)
    kind = "meter-over" if used >= cap else "meter-high" if share >= 0.8 else "meter-ok"
    return Markup(
        '<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none" '
        'aria-hidden="true" focusable="false">'
        '<rect class="bar-track" width="100" height="10"/>'
        f'<rect class="{kind}" width="{share * 100:.2f}" height="10"/>'
        "</svg>"
    )
