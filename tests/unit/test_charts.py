"""idp.admin.charts: the SVG carries each figure, escapes what it is given, and is named."""

from __future__ import annotations

import pytest
from lxml import etree

from idp.admin.charts import Bar, bar_chart, column_chart, nice_top

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> etree._Element:
    return etree.fromstring(markup.encode())


def num(el: etree._Element, attr: str) -> float:
    return float(el.get(attr) or "nan")


def test_a_bar_chart_is_a_named_image_with_one_rect_per_figure() -> None:
    svg = parse(bar_chart("c", "Users", "Two kinds.", [Bar("A", 3, "3 a"), Bar("B", 0, "0 b")]))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "c-title c-desc"
    assert svg.findtext(f"{SVG}title") == "Users" and svg.findtext(f"{SVG}desc") == "Two kinds."
    rects = svg.findall(f"{SVG}rect")
    assert [(r.get("data-label"), r.get("data-value")) for r in rects] == [("A", "3"), ("B", "0")]
    assert [r.findtext(f"{SVG}title") for r in rects] == ["3 a", "0 b"]
    assert num(rects[0], "width") > num(rects[1], "width") == 0
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["A", "3", "B", "0"]  # not by colour


def test_text_is_escaped() -> None:
    markup = bar_chart("x", "<b>", 'a "quote" & <script>', [Bar("<i>", 1, "</title><script>")])
    assert "<script>" not in markup and "<i>" not in markup
    svg = parse(markup)
    assert svg.findtext(f"{SVG}desc") == 'a "quote" & <script>'
    assert svg.findtext(f"{SVG}rect/{SVG}title") == "</title><script>"


def test_a_column_chart_has_a_round_axis_and_labels_only_its_ticks() -> None:
    bars = [Bar(f"d{i}", v, f"{v} on d{i}") for i, v in enumerate([0, 7, 2, 0])]
    svg = parse(column_chart("t", "Per day", "Seven at most.", bars, ticks=[0, 3, 9]))
    rects = svg.findall(f"{SVG}rect")
    assert [num(r, "data-value") for r in rects] == [0, 7, 2, 0]
    heights = [num(r, "height") for r in rects]
    assert heights[1] > heights[2] > heights[0] == 1  # a zero keeps a hairline
    texts: dict[str, list[str | None]] = {}
    for t in svg.iter(f"{SVG}text"):
        texts.setdefault(t.get("class") or "", []).append(t.text)
    assert texts == {"y-tick": ["0", "5", "10"], "x-tick": ["d0", "d3"]}


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (3, 5), (5, 5), (6, 10), (11, 20)])
def test_nice_top(value: int, top: int) -> None:
    assert nice_top(value) == top


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Bar("a", -1, "")
