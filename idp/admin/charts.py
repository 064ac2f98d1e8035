"""Server-rendered SVG bar charts for the console (no script, no Flask).

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described by its ``<desc>``
(``aria-labelledby``), so assistive technology reads one image with a summary; the page puts
the same figures in a table next to it. Every bar is a ``<rect class="bar">`` carrying its
figure in ``data-value`` and a ``<title>`` that says it in words (a tooltip, and what tests
read). Values are also written as text beside the bars, so nothing is told by colour alone.

Colours come from the stylesheet (``.chart .bar``; the Content-Security-Policy allows no
inline style), with presentation attributes as the fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

BAR_FILL = "#2457c5"  # the stylesheet's --accent, used when the stylesheet is not loaded
FONT = 13  # px, the chart's text size in viewBox units


@dataclass(frozen=True)
class Bar:
    """One bar: its axis label, its figure and the figure in words (``12 users with TOTP``)."""

    label: str
    value: int
    title: str

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"bar {self.label!r}: a count cannot be negative")


def _open(chart_id: str, title: str, desc: str, width: int, height: int) -> Markup:
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" role="img" '
        'aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'font-size="{font}" font-family="system-ui, sans-serif">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>'
    ).format(id=chart_id, w=width, h=height, font=FONT, title=title, desc=desc)


def _rect(bar: Bar, x: float, y: float, w: float, h: float) -> Markup:
    return Markup(
        '<rect class="bar" x="{:g}" y="{:g}" width="{:g}" height="{:g}" fill="{}" '
        'data-label="{}" data-value="{}"><title>{}</title></rect>'
    ).format(x, y, w, h, BAR_FILL, bar.label, bar.value, bar.title)


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> Markup:
    return Markup(
        '<text x="{:g}" y="{:g}" text-anchor="{}" fill="currentColor" class="{}">{}</text>'
    ).format(x, y, anchor, cls, text)


def _line(x1: float, y1: float, x2: float, y2: float, cls: str = "axis") -> Markup:
    return Markup(
        '<line class="{}" x1="{:g}" y1="{:g}" x2="{:g}" y2="{:g}" stroke="currentColor"/>'
    ).format(cls, x1, y1, x2, y2)


_CLOSE = Markup("</svg>")


def bar_chart(
    chart_id: str, title: str, desc: str, bars: Sequence[Bar], label_width: int = 190
) -> Markup:
    """Horizontal bars, one row per category, the label on the left and the value after it."""
    row, plot, pad = 28, 360, 8
    width = label_width + plot + 60
    height = pad * 2 + row * len(bars)
    top = max((b.value for b in bars), default=0) or 1
    parts = [_open(chart_id, title, desc, width, height)]
    for i, bar in enumerate(bars):
        y = pad + i * row
        w = round(plot * bar.value / top, 1)
        parts.append(_text(label_width - 8, y + row / 2 + FONT / 3, bar.label, "end", "label"))
        parts.append(_rect(bar, label_width, y + 4, w, row - 8))
        parts.append(_text(label_width + w + 6, y + row / 2 + FONT / 3, str(bar.value), "start",
                           "value"))  # fmt: skip
    parts.append(_line(label_width, pad, label_width, height - pad))
    return Markup("").join([*parts, _CLOSE])


def nice_top(value: int) -> int:
    """The smallest of 1, 2, 5 times a power of ten (at least 1) that is >= ``value``."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def column_chart(
    chart_id: str, title: str, desc: str, bars: Sequence[Bar], ticks: Sequence[int] = ()
) -> Markup:
    """Vertical columns in order (a time series): a y axis from 0 to a round maximum, and
    the labels of the bars whose indexes are in ``ticks`` under the x axis."""
    left, right, top_pad, bottom = 44, 28, 12, 36  # right: room for the last date label
    col = max(4, min(24, 720 // max(len(bars), 1)))
    plot_w, plot_h = col * len(bars), 160
    width, height = left + plot_w + right, top_pad + plot_h + bottom
    top = nice_top(max((b.value for b in bars), default=0))
    base = top_pad + plot_h
    parts = [_open(chart_id, title, desc, width, height)]
    for value in (0, top // 2, top) if top > 1 else (0, top):
        y = base - plot_h * value / top
        parts.append(_line(left, y, left + plot_w, y, "grid"))
        parts.append(_text(left - 6, y + FONT / 3, str(value), "end", "y-tick"))
    for i, bar in enumerate(bars):
        h = max(round(plot_h * bar.value / top, 1), 1)
        # A zero keeps a hairline, so every day has a bar (and its title) to point at.
        parts.append(_rect(bar, left + i * col + 1, base - h, col - 2, h))
    for i in ticks:
        if 0 <= i < len(bars):
            x = left + i * col + col / 2
            parts.append(_line(x, base, x, base + 4))
            parts.append(_text(x, base + 6 + FONT, bars[i].label, "middle", "x-tick"))
    parts.append(_line(left, base, left + plot_w, base))
    return Markup("").join([*parts, _CLOSE])
