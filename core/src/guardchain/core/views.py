"""What a plugin hands the report to show one result: titled blocks of text, tables and declarative charts.

A renderer (the ``guardchain_render_result`` hook) describes *what* to draw — series, axes with units, shaded
ranges, reference lines — and the report member decides *how* (inline SVG that follows the page's light or dark
theme). So a plugin draws without depending on any plotting library or on the report's code, and the kernel knows
no metric: only this small vocabulary. Every model forbids extra keys, so a renderer's typo is an error, not a
silently missing axis.

The number formats at the end are the one place where guardchain rounds for people (the certificate's markdown,
the HTML report, the CLI's tables): ratios and perplexities to 4 significant figures, configured thresholds as
written, and never ``None``. Full precision stays in the JSON.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Series(_View):
    """One line, set of points or set of bars.

    :ivar name: legend label.
    :ivar x: x values (for a bar chart: indices into :attr:`Chart.categories`).
    :ivar y: y values, aligned with ``x``; ``None`` leaves a gap.
    """

    name: str
    x: list[float]
    y: list[float | None]


class Band(_View):
    """A shaded range of x (a burn-in, a confidence interval)."""

    start: float
    end: float
    label: str = ""


class Rule(_View):
    """A reference line: vertical at ``x`` or horizontal at ``y`` (a mean, a threshold, a bound)."""

    x: float | None = None
    y: float | None = None
    label: str = ""


class Chart(_View):
    """A chart. Every chart has a title and labelled axes with units.

    :ivar kind: ``line``, ``scatter``, ``bar`` (``categories`` label the x positions) or ``histogram`` (``series``
        hold bin centres in ``x`` and counts in ``y``).
    :ivar x_label: the x axis, with its unit in ``x_unit`` (``"SGLD step"``, ``"layer"``).
    :ivar y_label: the y axis, with its unit in ``y_unit`` (``"loss"``, ``"nats/token"``).
    :ivar log_y: a logarithmic y axis.
    """

    type: Literal["chart"] = "chart"
    kind: Literal["line", "scatter", "bar", "histogram"]
    title: str = Field(min_length=1)
    x_label: str = Field(min_length=1)
    y_label: str = Field(min_length=1)
    x_unit: str = ""
    y_unit: str = ""
    series: list[Series] = Field(min_length=1)
    categories: list[str] | None = None
    bands: list[Band] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    log_y: bool = False
    caption: str = ""


class Table(_View):
    """A table; numbers are rounded for people by the report (full precision on hover)."""

    type: Literal["table"] = "table"
    title: str = Field(min_length=1)
    columns: list[str] = Field(min_length=1)
    rows: list[list[str | float | int | bool | None]]


class Text(_View):
    """A paragraph of plain text (no markup: the report escapes it)."""

    type: Literal["text"] = "text"
    text: str


Block = Annotated[Chart | Table | Text, Field(discriminator="type")]


class ResultView(_View):
    """How one step's result is shown: a title, a one-line summary, and blocks in order."""

    title: str = Field(min_length=1)
    summary: str = ""
    blocks: list[Block] = Field(default_factory=list)


# -- numbers for people ------------------------------------------------------------------------------------------

DASH = "—"


def number(value: Any, digits: int = 4) -> str:
    """A float rounded to ``digits`` significant figures (fixed notation when reasonable); ints as they are;
    booleans as yes/no; ``None`` and NaN as a dash."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return DASH
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        if -4 <= magnitude < 6:
            decimals = max(0, digits - 1 - magnitude)
            return f"{value:.{decimals}f}"
        return f"{value:.{digits - 1}e}"
    return str(value)


def short(value: Any) -> str:
    """A configured number as written (``1.1``, not ``1.100``): up to 6 significant figures, no trailing zeros."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return number(value)


def threshold(value: Any, comparison: str) -> str:
    """A gate's threshold with its comparison: ``≤ 1.1``, ``≥ −0.02``, ``0.95 – 1.05``, ``true``, ``not fail``."""
    if comparison == "le":
        return f"≤ {short(value)}"
    if comparison == "ge":
        return f"≥ {short(value)}"
    if comparison == "within" and isinstance(value, list | tuple) and len(value) == 2:
        return f"{short(value[0])} – {short(value[1])}"
    if comparison == "true":
        return "true"
    if comparison == "not_fail":
        return "not fail"
    return number(value)


def measured(value: Any) -> str:
    """A gate's measured value: numbers rounded, statuses and booleans as words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return number(value)


def interval(low: Any, high: Any) -> str:
    """``[low, high]`` rounded, or a dash when there is none."""
    if low is None or high is None:
        return DASH
    return f"[{number(low)}, {number(high)}]"


def seconds(value: Any) -> str:
    """Seconds with two decimals."""
    return DASH if value is None else f"{float(value):.2f} s"
