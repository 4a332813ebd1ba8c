"""A :class:`~guardchain.core.views.Chart` drawn as inline SVG: axes with ticks and units, shaded bands, reference
rules, and a ``<title>`` tooltip on every point and bar.

Colours and strokes come from CSS classes (``gc-s0`` … ``gc-s7``, ``gc-axis``, ``gc-band``, ``gc-rule``) whose
values are CSS variables of the page, so one drawing follows the light, dark and print themes. Series, shaded
bands and rules are named in the figure's HTML legend (:mod:`guardchain.report.blocks`), not inside the plot, where
labels would collide. The SVG has ``role="img"``, its title as accessible name (``aria-label``) and a generated
description (``aria-describedby``) that states the kind, the axes with their units and ranges, and the series.

Scales: linear, or base-10 logarithmic for ``log_y`` (non-positive values are left out, as they have no place on
it). Ticks are "nice" numbers: steps of 1, 2, 2.5 or 5 × 10^k, about six per axis (Heckbert, *Nice numbers for
graph labels*, Graphics Gems, 1990). A line of more than :data:`MAX_LINE_POINTS` points is thinned to every k-th
point (the last kept) so that a page stays light; scatter points are never thinned.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from guardchain.core.views import Chart, Series, number
from guardchain.report.markup import Html, attrs, esc

WIDTH = 540
HEIGHT = 300
PALETTE_SIZE = 8
MAX_LINE_POINTS = 1500
#: lines with more points than this, in all, get no per-point hover targets (the line itself keeps its title)
MAX_HOVER_POINTS = 1200
MAX_CATEGORY_LABEL = 22
#: pixels between two rotated category labels (an 11 px font at 40°)
LABEL_SPACING = 17
#: a line with at most this many points shows them; longer lines show a point only under the pointer
MAX_MARKERS = 40
MINUS = "\u2212"


@dataclass(frozen=True)
class Scale:
    """Maps a domain ``[lo, hi]`` onto pixels ``[start, end]`` (``log``: base-10 logarithmic)."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.lo, self.hi, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(value)
        return self.start + (v - lo) / (hi - lo) * (self.end - self.start)


def _finite(value: float | None, log: bool = False) -> bool:
    return value is not None and math.isfinite(value) and (not log or value > 0)


def nice_step(span: float, target: int = 6) -> float:
    """The nice step (1, 2, 2.5 or 5 × 10^k) that cuts ``span`` into about ``target`` intervals."""
    raw = span / max(1, target)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if multiple * magnitude >= raw * (1 - 1e-9):
            return multiple * magnitude
    return 10 * magnitude


def nice_domain(lo: float, hi: float, *, include_zero: bool = False, target: int = 6) -> tuple[float, float, float]:
    """``(lo, hi, step)``: the data range widened to whole nice steps (a single value gets a small range)."""
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= abs(hi) * 1e-12 or hi == lo:
        pad = abs(lo) * 0.05 if lo else 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, target)
    nice_lo, nice_hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return min(nice_lo, lo), max(nice_hi, hi), step  # min/max: rounding never leaves a point outside


def linear_ticks(lo: float, hi: float, step: float) -> list[float]:
    """Multiples of ``step`` in ``[lo, hi]``."""
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """A tick's label with as many decimals as the step needs (scientific notation for tiny or huge values)."""
    if abs(value) < step * 1e-6:
        return "0"
    if abs(value) >= 1e6 or step < 1e-4:
        text = f"{value:.2e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    else:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        if round(step / 10 ** math.floor(math.log10(step) + 1e-9), 6) == 2.5:
            decimals += 1
        text = f"{value:.{decimals}f}"
    return text.replace("-", MINUS)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in ``[lo, hi]`` (every k-th when there are more than eight decades)."""
    first, last = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    stride = max(1, math.ceil((last - first + 1) / 8))
    return [10.0**k for k in range(first, last + 1, stride)]


def _log_label(value: float) -> str:
    exponent = round(math.log10(value))
    if -3 <= exponent <= 4:
        return tick_label(value, value)
    return f"1e{exponent}".replace("-", MINUS)


def _thin(series: Series) -> list[tuple[float, float | None]]:
    points = list(zip(series.x, series.y, strict=False))
    if len(points) <= MAX_LINE_POINTS:
        return points
    stride = math.ceil(len(points) / MAX_LINE_POINTS)
    kept = points[::stride]
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def _axis_title(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


def _f(value: float) -> str:
    return f"{value:.1f}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Layout:
    """Margins, scales and ticks of one chart."""

    def __init__(self, chart: Chart, diagonal: bool) -> None:
        self.chart = chart
        self.bars = chart.kind in {"bar", "histogram"}
        self.categories = list(chart.categories or []) if chart.kind == "bar" else []
        xs = [x for s in chart.series for x, y in zip(s.x, s.y, strict=False) if _finite(x) and _finite(y, chart.log_y)]
        ys = [y for s in chart.series for y in s.y if y is not None and _finite(y, chart.log_y)]
        xs += [v for b in chart.bands for v in (b.start, b.end) if _finite(v)]
        xs += [r.x for r in chart.rules if r.x is not None and _finite(r.x)]
        ys += [r.y for r in chart.rules if r.y is not None and _finite(r.y, chart.log_y)]
        self.empty = not ys
        if chart.kind == "histogram":
            self.bin_width = _bin_width(chart.series)
            xs += [x + sign * self.bin_width / 2 for x in xs for sign in (-1, 1)]
        if diagonal and xs and ys:
            both = xs + ys
            xs, ys = both, both
        self.y_lo, self.y_hi, self.y_ticks, self.y_labels = self._y_axis(ys)
        if self.categories:
            self.x_lo, self.x_hi = -0.5, len(self.categories) - 0.5
            self.x_ticks: list[float] = []
            self.x_labels: list[str] = []
        else:
            lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
            self.x_lo, self.x_hi, step = nice_domain(lo, hi, target=8)
            if xs and all(float(x).is_integer() for x in xs) and step < 1:
                self.x_lo, self.x_hi, step = math.floor(lo), math.ceil(hi), 1.0  # an index axis: whole ticks
            self.x_ticks = linear_ticks(self.x_lo, self.x_hi, step)
            self.x_labels = [tick_label(t, step) for t in self.x_ticks]
        longest_y = max((len(t) for t in self.y_labels), default=1)
        self.left = 30 + 7 * longest_y + 10
        self.top, self.right = 16, 18
        longest_x = min(MAX_CATEGORY_LABEL, max((len(c) for c in self.categories), default=0))
        slot = (WIDTH - self.right - self.left) / max(1, len(self.categories))
        # category labels turn when they would not fit side by side (about 6.2 px per character at 11 px)
        self.rotate = bool(self.categories) and 6.2 * longest_x + 8 > slot
        self.bottom = 52 + (int(longest_x * 4.3) if self.rotate else 0)
        self.height = HEIGHT + (self.bottom - 52)
        self.x = Scale(self.x_lo, self.x_hi, self.left, WIDTH - self.right)
        self.y = Scale(self.y_lo, self.y_hi, self.height - self.bottom, self.top, log=chart.log_y)

    def _y_axis(self, ys: list[float]) -> tuple[float, float, list[float], list[str]]:
        chart = self.chart
        if chart.log_y:
            lo, hi = (min(ys), max(ys)) if ys else (1.0, 10.0)
            lo = 10.0 ** math.floor(math.log10(lo) + 1e-9)
            hi = 10.0 ** math.ceil(math.log10(hi) - 1e-9)
            if hi <= lo:
                hi = lo * 10
            ticks = log_ticks(lo, hi)
            return lo, hi, ticks, [_log_label(t) for t in ticks]
        lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
        lo, hi, step = nice_domain(lo, hi, include_zero=self.bars)
        ticks = linear_ticks(lo, hi, step)
        return lo, hi, ticks, [tick_label(t, step) for t in ticks]

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom


def _bin_width(series: Sequence[Series]) -> float:
    centres = sorted({x for s in series for x in s.x if math.isfinite(x)})
    gaps = [b - a for a, b in itertools.pairwise(centres) if b > a]
    return min(gaps) if gaps else 1.0


def describe(chart: Chart, layout: _Layout | None = None) -> str:
    """A one-paragraph text alternative: kind, axes with units and ranges, series, bands and rules."""
    layout = layout or _Layout(chart, diagonal=False)
    kind = {"line": "Line chart", "scatter": "Scatter plot", "bar": "Bar chart", "histogram": "Histogram"}[chart.kind]
    parts = [f"{kind}."]
    if layout.categories:
        parts.append(f"x: {_axis_title(chart.x_label, chart.x_unit)}, {len(layout.categories)} categories.")
    else:
        parts.append(
            f"x: {_axis_title(chart.x_label, chart.x_unit)} from {number(layout.x_lo)} to {number(layout.x_hi)}."
        )
    scale = " (logarithmic)" if chart.log_y else ""
    parts.append(
        f"y: {_axis_title(chart.y_label, chart.y_unit)}{scale} from {number(layout.y_lo)} to {number(layout.y_hi)}."
    )
    names = [s.name for s in chart.series]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    parts.append(f"{len(names)} series: {shown}.")
    if chart.bands:
        parts.append(
            "Shaded: "
            + "; ".join(f"{b.label or 'range'} {number(b.start)} to {number(b.end)}" for b in chart.bands)
            + "."
        )
    if chart.rules:
        marks = [
            f"{r.label or 'line'} at {'x' if r.x is not None else 'y'} = {number(r.x if r.x is not None else r.y)}"
            for r in chart.rules
        ]
        parts.append("Lines: " + "; ".join(marks) + ".")
    if layout.empty:
        parts.append("No finite values to draw.")
    return " ".join(parts)


def chart_svg(chart: Chart, uid: str, *, diagonal: bool = False) -> Html:
    """The chart as an ``<svg>`` element (``uid``: unique id prefix in the page; ``diagonal``: draw y = x, for a
    scatter of paired values on one scale)."""
    lay = _Layout(chart, diagonal)
    out: list[str] = [
        f"<svg{attrs({'class': 'gc-chart', 'viewBox': f'0 0 {WIDTH} {lay.height}', 'role': 'img'})}"
        f"{attrs({'aria-label': chart.title, 'aria-describedby': f'{uid}-d'})}"
        f"{attrs({'preserveAspectRatio': 'xMidYMid meet'})}>",
        f"<title>{esc(chart.title)}</title>",
        f'<desc id="{esc(uid)}-d">{esc(describe(chart, lay))}</desc>',
        f'<defs><clipPath id="{esc(uid)}-clip"><rect x="{_f(lay.left)}" y="{_f(lay.top)}" '
        f'width="{_f(WIDTH - lay.right - lay.left)}" height="{_f(lay.plot_bottom - lay.top)}"/></clipPath></defs>',
    ]
    out += _bands(chart, lay)
    out += _grid_and_axes(chart, lay)
    out.append(f'<g clip-path="url(#{esc(uid)}-clip)">')
    if chart.kind == "bar":
        out += _bars(chart, lay)
    elif chart.kind == "histogram":
        out += _histogram(chart, lay)
    else:
        out += _points(chart, lay)
    if diagonal and not lay.empty:
        lo, hi = max(lay.x_lo, lay.y_lo), min(lay.x_hi, lay.y_hi)
        out.append(
            f'<line class="gc-rule gc-diagonal" x1="{_f(lay.x(lo))}" y1="{_f(lay.y(lo))}" x2="{_f(lay.x(hi))}" '
            f'y2="{_f(lay.y(hi))}"><title>y = x (no change)</title></line>'
        )
    out += _rules(chart, lay)
    out.append("</g>")
    if lay.empty:
        out.append(
            f'<text class="gc-empty" x="{_f((lay.left + WIDTH - lay.right) / 2)}" '
            f'y="{_f((lay.top + lay.plot_bottom) / 2)}" text-anchor="middle">no finite values</text>'
        )
    out.append("</svg>")
    return Html("".join(out))


def _bands(chart: Chart, lay: _Layout) -> list[str]:
    out = []
    for band in chart.bands:
        if not (_finite(band.start) and _finite(band.end)):
            continue
        x0, x1 = sorted((lay.x(band.start), lay.x(band.end)))
        tip = f"{band.label or 'range'}: {number(band.start, 6)} to {number(band.end, 6)}"
        out.append(
            f'<rect class="gc-band" x="{_f(x0)}" y="{_f(lay.top)}" width="{_f(max(x1 - x0, 1.0))}" '
            f'height="{_f(lay.plot_bottom - lay.top)}"><title>{esc(tip)}</title></rect>'
        )
    return out


def _grid_and_axes(chart: Chart, lay: _Layout) -> list[str]:
    out = ['<g class="gc-grid">']
    for tick in lay.y_ticks:
        y = lay.y(tick)
        out.append(f'<line x1="{_f(lay.left)}" x2="{_f(WIDTH - lay.right)}" y1="{_f(y)}" y2="{_f(y)}"/>')
    out.append("</g>")
    out.append('<g class="gc-axis">')
    bottom = lay.plot_bottom
    out.append(f'<line x1="{_f(lay.left)}" x2="{_f(WIDTH - lay.right)}" y1="{_f(bottom)}" y2="{_f(bottom)}"/>')
    out.append(f'<line x1="{_f(lay.left)}" x2="{_f(lay.left)}" y1="{_f(lay.top)}" y2="{_f(bottom)}"/>')
    for tick, label in zip(lay.y_ticks, lay.y_labels, strict=True):
        y = lay.y(tick)
        out.append(f'<line x1="{_f(lay.left - 4)}" x2="{_f(lay.left)}" y1="{_f(y)}" y2="{_f(y)}"/>')
        out.append(f'<text x="{_f(lay.left - 7)}" y="{_f(y + 4)}" text-anchor="end">{esc(label)}</text>')
    if lay.categories:
        slot = (WIDTH - lay.right - lay.left) / max(1, len(lay.categories))
        longest = max(len(_clip(c, MAX_CATEGORY_LABEL)) for c in lay.categories)
        stride = max(1, math.ceil((LABEL_SPACING if lay.rotate else 6.2 * longest + 8) / slot))
        for index, name in enumerate(lay.categories):
            if index % stride:
                continue
            x = lay.x(index)
            out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(bottom)}" y2="{_f(bottom + 4)}"/>')
            label = esc(_clip(name, MAX_CATEGORY_LABEL))
            if lay.rotate:
                out.append(
                    f'<text x="{_f(x)}" y="{_f(bottom + 12)}" text-anchor="end" '
                    f'transform="rotate(-40 {_f(x)} {_f(bottom + 12)})"><title>{esc(name)}</title>{label}</text>'
                )
            else:
                out.append(f'<text x="{_f(x)}" y="{_f(bottom + 17)}" text-anchor="middle">{label}</text>')
    else:
        for tick, label in zip(lay.x_ticks, lay.x_labels, strict=True):
            x = lay.x(tick)
            out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(bottom)}" y2="{_f(bottom + 4)}"/>')
            out.append(f'<text x="{_f(x)}" y="{_f(bottom + 17)}" text-anchor="middle">{esc(label)}</text>')
    out.append("</g>")
    x_title = _axis_title(chart.x_label, chart.x_unit)
    y_title = _axis_title(chart.y_label, chart.y_unit)
    mid_y = (lay.top + bottom) / 2
    out.append(
        f'<text class="gc-axis-title" x="{_f((lay.left + WIDTH - lay.right) / 2)}" y="{_f(lay.height - 8)}" '
        f'text-anchor="middle">{esc(x_title)}</text>'
    )
    out.append(
        f'<text class="gc-axis-title" x="14" y="{_f(mid_y)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_f(mid_y)})">{esc(y_title)}</text>'
    )
    return out


def _tip(chart: Chart, series: Series, x: float, y: float) -> str:
    if chart.kind == "bar" and chart.categories:
        index = round(x)
        where = chart.categories[index] if 0 <= index < len(chart.categories) else number(x)
        return f"{where} — {series.name}: {number(y, 6)} {chart.y_unit}".rstrip()
    if chart.kind == "histogram":
        return f"{series.name}: {number(y, 6)} at {number(x, 6)} {chart.x_unit}".rstrip()
    x_text = f"{chart.x_label} {number(x, 6)}"
    return f"{series.name}: {x_text}, {chart.y_label} {number(y, 6)} {chart.y_unit}".rstrip()


def _base(lay: _Layout) -> float:
    return lay.y(lay.y_lo) if lay.chart.log_y else lay.y(max(lay.y_lo, min(0.0, lay.y_hi)))


def _bars(chart: Chart, lay: _Layout) -> list[str]:
    out = []
    n = len(chart.series)
    slot = (lay.x(1) - lay.x(0)) * 0.8
    width = slot / max(1, n)
    base = _base(lay)
    for k, series in enumerate(chart.series):
        out.append(f'<g class="gc-s{k % PALETTE_SIZE} gc-bars">')
        for x, y in zip(series.x, series.y, strict=False):
            if not (_finite(x) and _finite(y, chart.log_y)):
                continue
            assert y is not None
            left = lay.x(x) - slot / 2 + k * width
            top = lay.y(y)
            y0, y1 = sorted((top, base))
            out.append(
                f'<rect x="{_f(left)}" y="{_f(y0)}" width="{_f(max(width - 1, 1.0))}" height="{_f(max(y1 - y0, 0.5))}">'
                f"<title>{esc(_tip(chart, series, x, y))}</title></rect>"
            )
        out.append("</g>")
    return out


def _histogram(chart: Chart, lay: _Layout) -> list[str]:
    out = []
    half = lay.bin_width / 2
    base = _base(lay)
    for k, series in enumerate(chart.series):
        out.append(f'<g class="gc-s{k % PALETTE_SIZE} gc-bars">')
        for x, y in zip(series.x, series.y, strict=False):
            if not (_finite(x) and _finite(y, chart.log_y)):
                continue
            assert y is not None
            x0, x1 = lay.x(x - half), lay.x(x + half)
            top = lay.y(y)
            y0, y1 = sorted((top, base))
            tip = f"{number(x - half, 4)} to {number(x + half, 4)} {chart.x_unit}: {number(y, 6)}".strip()
            out.append(
                f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(max(x1 - x0 - 1, 1.0))}" height="{_f(max(y1 - y0, 0.0))}">'
                f"<title>{esc(series.name)}: {esc(tip)}</title></rect>"
            )
        out.append("</g>")
    return out


def _points(chart: Chart, lay: _Layout) -> list[str]:
    out = []
    total = sum(len(s.x) for s in chart.series)
    hover = chart.kind == "scatter" or total <= MAX_HOVER_POINTS
    for k, series in enumerate(chart.series):
        cls = f"gc-s{k % PALETTE_SIZE}"
        points = _thin(series) if chart.kind == "line" else list(zip(series.x, series.y, strict=False))
        if chart.kind == "line":
            segments: list[list[str]] = [[]]
            for x, y in points:
                if _finite(x) and _finite(y, chart.log_y):
                    assert y is not None
                    segments[-1].append(f"{_f(lay.x(x))},{_f(lay.y(y))}")
                elif segments[-1]:
                    segments.append([])
            for segment in segments:
                if len(segment) > 1:
                    out.append(
                        f'<polyline class="{cls} gc-line" points="{" ".join(segment)}">'
                        f"<title>{esc(series.name)}</title></polyline>"
                    )
        if not hover and chart.kind == "line":
            continue
        radius = 3.0 if chart.kind == "scatter" else 2.2
        hidden = chart.kind == "line" and len(points) > MAX_MARKERS
        out.append(f'<g class="{cls} gc-points{" gc-hover" if hidden else ""}">')
        for x, y in points:
            if not (_finite(x) and _finite(y, chart.log_y)):
                continue
            assert y is not None
            out.append(
                f'<circle cx="{_f(lay.x(x))}" cy="{_f(lay.y(y))}" r="{radius}">'
                f"<title>{esc(_tip(chart, series, x, y))}</title></circle>"
            )
        out.append("</g>")
    return out


def _rules(chart: Chart, lay: _Layout) -> list[str]:
    out = []
    for rule in chart.rules:
        if rule.x is not None and _finite(rule.x):
            x = lay.x(rule.x)
            tip = f"{rule.label or 'x'} = {number(rule.x, 6)}"
            out.append(
                f'<line class="gc-rule" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(lay.top)}" y2="{_f(lay.plot_bottom)}">'
                f"<title>{esc(tip)}</title></line>"
            )
        elif rule.y is not None and _finite(rule.y, chart.log_y):
            y = lay.y(rule.y)
            tip = f"{rule.label or 'y'} = {number(rule.y, 6)}"
            out.append(
                f'<line class="gc-rule" x1="{_f(lay.left)}" x2="{_f(WIDTH - lay.right)}" y1="{_f(y)}" y2="{_f(y)}">'
                f"<title>{esc(tip)}</title></line>"
            )
    return out
