"""A :class:`~guardchain.core.views.ResultView` as HTML: tables with numbers rounded for people (full precision in
the cell's ``title``), paragraphs, and figures (the chart's SVG, its legend and caption).

Every chart gets a unique id from a :class:`Ids` counter of the page, so two figures never share the ids their
accessible descriptions point to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from guardchain.core.views import DASH as fmt_dash
from guardchain.core.views import Chart, ResultView, Table, Text, number
from guardchain.report.markup import Html, el, esc, join
from guardchain.report.svg import PALETTE_SIZE, chart_svg

#: the largest JSON shown in a collapsible block, in characters; longer JSON is cut (the file has it all)
MAX_JSON_CHARS = 60_000


class Ids:
    """Unique, readable element ids for one page."""

    def __init__(self) -> None:
        self._count = 0

    def next(self, stem: str = "fig") -> str:
        self._count += 1
        return f"{stem}-{self._count}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cell(value: Any) -> Html:
    """One table cell: floats rounded (4 significant figures) with the full value on hover; text escaped."""
    if isinstance(value, float) and not isinstance(value, bool):
        full = repr(value) if math.isfinite(value) else str(value)
        shown = str(int(value)) if value.is_integer() and abs(value) < 1e12 else number(value)
        return el("td", shown, class_="num", title=full)
    if isinstance(value, int) and not isinstance(value, bool):
        return el("td", str(value), class_="num")
    if isinstance(value, Html):
        return Html(f"<td>{value}</td>")
    return el("td", number(value) if value is None or isinstance(value, bool) else str(value))


def table(columns: Iterable[object], rows: Iterable[Iterable[Any]], *, caption: str = "", cls: str = "") -> Html:
    """A table with a header row; ``caption`` is its visible title (and accessible name). A two-column table
    (key, value) aligns its values left."""
    names = list(columns)
    body_rows = [list(row) for row in rows]
    numeric = [
        all(_is_number(row[i]) or row[i] is None for row in body_rows if i < len(row))
        and any(i < len(row) and _is_number(row[i]) for row in body_rows)
        for i in range(len(names))
    ]
    head = el("tr", *(el("th", c, scope="col", class_="num" if numeric[i] else None) for i, c in enumerate(names)))
    body = join(el("tr", *(cell(v) for v in row)) for row in body_rows)
    parts: list[object] = []
    if caption:
        parts.append(el("caption", caption))
    parts += [el("thead", head), el("tbody", body)]
    classes = " ".join(c for c in (cls, "kv" if len(names) == 2 else "") if c)
    return el("div", el("table", *parts, class_=classes or None), class_="table-wrap")


def facts_list(facts: Iterable[tuple[str, str]]) -> Html:
    """A ``<dl>`` of label/value pairs (provenance, environment)."""
    return el("dl", *(Html(el("dt", k) + el("dd", v)) for k, v in facts), class_="facts")


def plugins_table(rows: Iterable[Any]) -> Html | None:
    """The loaded plugins (name, distribution, version, status) as a run record or certificate lists them."""
    plugins = [p for p in rows if isinstance(p, dict)]
    if not plugins:
        return None
    return table(
        ["plugin", "distribution", "version", "status"],
        [[p.get("name"), p.get("distribution"), p.get("version"), p.get("status")] for p in plugins],
        caption="Plugins",
    )


def figure(chart: Chart, ids: Ids, *, diagonal: bool = False) -> Html:
    """The chart in a ``<figure>``: visible title, SVG, legend and caption.

    The legend names the series (when there are several, or marks to tell them from), the shaded bands and the
    rules with their values, and the y = x line of a ``diagonal`` scatter.
    """
    items: list[Html] = []
    if len(chart.series) > 1 or chart.bands or chart.rules or diagonal:
        items += [_legend_item(f"swatch gc-s{k % PALETTE_SIZE}", s.name) for k, s in enumerate(chart.series)]
    items += [
        _legend_item("swatch band", f"{b.label} ({legend_number(b.start)} to {legend_number(b.end)})")
        for b in chart.bands
        if b.label
    ]
    for rule in chart.rules:
        if rule.label:
            axis, at = ("x", rule.x) if rule.x is not None else ("y", rule.y)
            items.append(_legend_item("swatch rule", f"{rule.label} ({axis} = {legend_number(at)})"))
    if diagonal:
        items.append(_legend_item("swatch rule", "y = x (no change)"))
    legend = el("ul", *items, class_="legend", aria_label=f"legend of {chart.title}") if items else Html("")
    caption = el("p", chart.caption, class_="caption") if chart.caption else Html("")
    return el(
        "figure",
        el("figcaption", chart.title, class_="chart-title"),
        chart_svg(chart, ids.next(), diagonal=diagonal),
        legend,
        caption,
        class_="chart",
    )


def legend_number(value: float | None) -> str:
    """A band's or rule's value in a legend: 4 significant figures, no trailing zeros (``50``, ``0.3``, ``1e-07``)."""
    return fmt_dash if value is None else f"{value:.4g}".replace("-", "−")


def _legend_item(swatch: str, text: str) -> Html:
    return el("li", el("span", "", class_=swatch, aria_hidden="true"), text)


def block(item: Chart | Table | Text, ids: Ids) -> Html:
    """One block of a view."""
    if isinstance(item, Chart):
        return figure(item, ids)
    if isinstance(item, Table):
        return table(item.columns, item.rows, caption=item.title)
    return el("p", item.text, class_="text")


def view(result_view: ResultView, ids: Ids, *, level: int = 3) -> Html:
    """A whole view: its title as a heading of ``level``, the summary, and the blocks in the renderer's order
    (consecutive charts share a grid row)."""
    parts: list[Html] = [el(f"h{level}", result_view.title)]
    if result_view.summary:
        parts.append(el("p", result_view.summary, class_="summary"))
    return join([*parts, *blocks(result_view.blocks, ids)])


def blocks(items: Iterable[Chart | Table | Text], ids: Ids) -> list[Html]:
    """Blocks in order, consecutive charts grouped in one ``.charts`` grid."""
    out: list[Html] = []
    run: list[Html] = []
    for item in items:
        if isinstance(item, Chart):
            run.append(figure(item, ids))
            continue
        if run:
            out.append(el("div", *run, class_="charts"))
            run = []
        out.append(block(item, ids))
    if run:
        out.append(el("div", *run, class_="charts"))
    return out


def json_details(payload: Any, label: str = "Full JSON") -> Html:
    """A closed ``<details>`` with ``payload`` as indented JSON (cut at :data:`MAX_JSON_CHARS`)."""
    text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=True, default=str)
    note = ""
    if len(text) > MAX_JSON_CHARS:
        note = f" (first {MAX_JSON_CHARS:,} of {len(text):,} characters; the file holds all of it)"
        text = text[:MAX_JSON_CHARS] + "\n…"
    return el("details", el("summary", label + note), el("pre", el("code", text)), class_="json")


def problem_note(message: str) -> Html:
    """A visible note that something could not be shown as intended."""
    return el("p", message, class_="note", role="note")


def esc_code(value: object) -> Html:
    """``value`` in a ``<code>`` element."""
    return el("code", esc(value))
