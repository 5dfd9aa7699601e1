"""Chart geometry for server-rendered SVG: no JavaScript, no chart library.

Pure functions: values in, rectangles, ticks and labels out (in SVG user units). The templates
``console/_column_chart.html`` and ``console/_bar_chart.html`` draw them with a ``<title>``, a
``role="img"`` and a data table beside each chart. Money stays ``Decimal`` until it is scaled to a
pixel position; the labels are formatted by the caller's ``fmt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

Fmt = Callable[[Decimal], str]


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str
    negative: bool = False


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    zero_y: float
    bars: list[Rect]
    ticks: list[Tick]
    x_labels: list[Label]
    series: list[str]


@dataclass(frozen=True)
class BarRow:
    label: str
    value_text: str
    rect: Rect
    label_y: float
    value_x: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    rows: list[BarRow]


def nice_step(span: Decimal, target_ticks: int = 4) -> Decimal:
    """A round tick step (1, 2, 2.5 or 5 × a power of ten) giving about ``target_ticks`` intervals."""
    if span <= 0:
        return Decimal(1)
    raw = span / target_ticks
    power = Decimal(10) ** math.floor(math.log10(raw))
    for factor in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop ends at 10 × power ≥ raw


def _r(value: float) -> float:
    return round(value, 1)


def column_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[Decimal]]],
    fmt: Fmt,
    *,
    width: int = 640,
    height: int = 260,
) -> ColumnChart:
    """Grouped columns: one group per category, one column per series; negative values hang below zero."""
    left, right, top, bottom = 72.0, width - 8.0, 12.0, height - 28.0
    values = [v for _name, vs in series for v in vs]
    high = max([Decimal(0), *values])
    low = min([Decimal(0), *values])
    step = nice_step(high - low)
    top_value = (high / step).to_integral_value(rounding="ROUND_CEILING") * step
    bottom_value = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    if top_value == bottom_value:
        top_value = bottom_value + step
    span = float(top_value - bottom_value)

    def y_of(value: Decimal) -> float:
        return top + (float(top_value - value) / span) * (bottom - top)

    ticks = []
    value = bottom_value
    while value <= top_value:
        ticks.append(Tick(_r(y_of(value)), fmt(value)))
        value += step
    zero_y = y_of(Decimal(0))
    group = (right - left) / max(len(categories), 1)
    gap = group * 0.2
    bar_w = (group - gap) / max(len(series), 1)
    bars = []
    for i, category in enumerate(categories):
        for s, (name, vs) in enumerate(series):
            v = vs[i]
            y = y_of(v)
            x = left + i * group + gap / 2 + s * bar_w
            title = f"{category} · {name}: {fmt(v)}"
            bars.append(Rect(_r(x), _r(min(y, zero_y)), _r(bar_w), _r(abs(zero_y - y)), s, title, v < 0))
    labels = [Label(_r(left + i * group + group / 2), _r(bottom + 18), c) for i, c in enumerate(categories)]
    return ColumnChart(width, height, left, right, top, bottom, _r(zero_y), bars, ticks, labels,
                       [name for name, _vs in series])  # fmt: skip


def bar_chart(
    items: Sequence[tuple[str, Decimal]], fmt: Fmt, *, width: int = 640, row_height: int = 30, centered: bool = False
) -> BarChart:
    """Horizontal bars, one row per item, scaled to the largest; ``centered`` draws a funnel."""
    label_w, value_w = 170.0, 130.0
    plot = width - label_w - value_w
    high = max([Decimal(0), *(v for _label, v in items)])
    rows = []
    for i, (label, value) in enumerate(items):
        w = 0.0 if high == 0 else float(value / high) * plot
        x = label_w + ((plot - w) / 2 if centered else 0.0)
        y = i * row_height + 4
        rect = Rect(_r(x), float(y), _r(w), float(row_height - 8), i, f"{label}: {fmt(value)}")
        rows.append(BarRow(label, fmt(value), rect, float(y + row_height / 2), _r(label_w + plot + 8)))
    return BarChart(width, max(len(items), 1) * row_height + 4, rows)
