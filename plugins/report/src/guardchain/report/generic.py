"""The view of a result no plugin renders: its key numbers, a table of its scalars and, for a metric with per-unit
values, a chart of them. The page adds the result's JSON in a collapsible block under every view.

It reads only the shapes the kernel defines (``MetricResult``, ``GuardReport``, an edit step's plan and report, an
intervention step's attached sites) and otherwise walks the JSON, so any capability gets a readable page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from guardchain.core.views import Chart, ResultView, Series, Table, Text, number

MAX_SCALAR_ROWS = 80
#: a collection of records becomes a table when its records have at most this many keys in all
MAX_RECORD_COLUMNS = 12
MAX_RECORD_ROWS = 200
MAX_DEPTH = 4
#: lists up to this long are shown whole in the scalar table; longer ones as a count and range
MAX_INLINE_LIST = 8
#: per-unit values up to this many are drawn as bars with their ids; more as a line over the unit index
MAX_BAR_UNITS = 40


def generic_view(kind: str, name: str, result: Mapping[str, Any]) -> ResultView:
    """A readable view of any step result."""
    if "metric" in result and "value" in result:
        return _metric(name, result)
    if "guard" in result and "status" in result:
        return _guard(name, result)
    blocks: list[Chart | Table | Text] = []
    if kind == "intervention" and isinstance(result.get("attached"), list):
        blocks.append(Table(title="Sites", columns=["site"], rows=[[str(s)] for s in result["attached"]]))
    blocks += structure_blocks(result)
    return ResultView(title=f"{name} ({kind})", summary=_summary_of(kind, result), blocks=blocks)


def _summary_of(kind: str, result: Mapping[str, Any]) -> str:
    if kind == "intervention" and isinstance(result.get("attached"), list):
        return f"attached at {len(result['attached'])} site(s)"
    report = result.get("report")
    if kind == "edit" and isinstance(report, Mapping):
        changed = report.get("modules_changed") or []
        return f"{len(changed)} tensors, {number(report.get('parameters_changed'))} parameters changed"
    return ""


def _metric(name: str, result: Mapping[str, Any]) -> ResultView:
    value, uncertainty, units = result.get("value"), result.get("uncertainty"), str(result.get("units") or "")
    summary = f"{number(value)}" + (f" ± {number(uncertainty)}" if uncertainty is not None else "")
    summary += f" {units}" if units else ""
    verdict = result.get("verdict")
    key = [["value", value], ["uncertainty", uncertainty], ["units", units or None]]
    if isinstance(verdict, Mapping):
        label = str(verdict.get("label") or ("pass" if verdict.get("passed") else "fail"))
        summary += f" — verdict: {label}"
        key.append(["verdict", label])
    blocks: list[Chart | Table | Text] = [Table(title="Key numbers", columns=["quantity", "value"], rows=key)]
    chart = per_unit_chart(name, result)
    if chart is not None:
        blocks.append(chart)
    blocks += structure_blocks(result.get("details") or {}, "details")
    return ResultView(title=f"{name} (metric)", summary=summary, blocks=blocks)


def per_unit_chart(name: str, result: Mapping[str, Any]) -> Chart | None:
    """The per-unit values of a metric result as bars (few units, labelled by id) or a line (many)."""
    values = result.get("per_unit") or []
    ids = [str(u) for u in result.get("unit_ids") or []]
    numbers = [float(v) if isinstance(v, int | float) and math.isfinite(v) else None for v in values]
    if not numbers or all(v is None for v in numbers):
        return None
    units = str(result.get("units") or "")
    if len(numbers) <= MAX_BAR_UNITS and len(ids) == len(numbers):
        return Chart(
            kind="bar",
            title=f"{name}: value per unit",
            x_label="unit",
            y_label=name,
            y_unit=units,
            categories=ids,
            series=[Series(name=name, x=[float(i) for i in range(len(numbers))], y=numbers)],
        )
    return Chart(
        kind="line",
        title=f"{name}: value per unit",
        x_label="unit index",
        y_label=name,
        y_unit=units,
        series=[Series(name=name, x=[float(i) for i in range(len(numbers))], y=numbers)],
    )


def _guard(name: str, result: Mapping[str, Any]) -> ResultView:
    findings = [f for f in result.get("findings") or [] if isinstance(f, Mapping)]
    actions = [a for a in result.get("actions") or [] if isinstance(a, Mapping)]
    applied = sum(1 for a in actions if a.get("applied"))
    summary = (
        f"status {result.get('status')} ({result.get('mode')} mode): {len(findings)} finding(s), "
        f"{applied} of {len(actions)} correction(s) applied"
    )
    blocks: list[Chart | Table | Text] = []
    measurements = result.get("measurements") or {}
    if isinstance(measurements, Mapping) and measurements:
        blocks.append(
            Table(
                title="Measurements", columns=["measurement", "value"], rows=[[k, v] for k, v in measurements.items()]
            )
        )
    if findings:
        blocks.append(findings_table(findings))
    blocks += structure_blocks(result.get("details") or {}, "details")
    return ResultView(title=f"{name} (guard)", summary=summary, blocks=blocks)


def findings_table(findings: list[Mapping[str, Any]]) -> Table:
    """A guard's findings: severity, code, target and message."""
    return Table(
        title="Findings",
        columns=["severity", "code", "target", "message"],
        rows=[
            [str(f.get("severity")), str(f.get("code")), str(f.get("target") or ""), str(f.get("message"))]
            for f in findings
        ],
    )


def structure_blocks(value: Any, path: str = "") -> list[Chart | Table | Text]:
    """Tables of the records in ``value`` (see :func:`walk`), then one table of its remaining scalars."""
    tables: list[Table] = []
    rows: list[list[Any]] = []
    walk(value, path, 0, tables, rows)
    blocks: list[Chart | Table | Text] = []
    if rows:
        shown = rows[:MAX_SCALAR_ROWS]
        title = "Scalars" if len(rows) <= MAX_SCALAR_ROWS else f"Scalars (first {MAX_SCALAR_ROWS} of {len(rows)})"
        blocks.append(Table(title=title, columns=["key", "value"], rows=shown))
    return [*blocks, *tables]


def _records(value: Any) -> list[tuple[str, Mapping[str, Any]]] | None:
    """``(label, record)`` pairs when ``value`` is a collection of at least two flat records sharing their keys:
    a mapping of mappings (labelled by key) or a list of mappings (labelled by position)."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return None
    if len(items) < 2 or not all(isinstance(v, Mapping) and v for _, v in items):
        return None
    keys: set[str] = set()
    for _, record in items:
        if any(isinstance(x, Mapping) or (isinstance(x, list) and len(x) > MAX_INLINE_LIST) for x in record.values()):
            return None
        keys |= set(record)
    if len(keys) > MAX_RECORD_COLUMNS:
        return None
    return items


def walk(value: Any, path: str, depth: int, tables: list[Table], rows: list[list[Any]]) -> None:
    """Collect from ``value``: a :class:`Table` per collection of flat records (a mapping of per-module
    statistics, a list of per-matrix rows; at most :data:`MAX_RECORD_ROWS` rows each), and ``[dotted key, value]``
    for every other scalar leaf down to :data:`MAX_DEPTH` — short lists of scalars inline, longer ones as a count
    and range, deeper structures as their size."""
    records = _records(value)
    if records is not None:
        columns: list[str] = []
        for _, record in records:
            columns += [k for k in record if k not in columns]
        keyed = isinstance(value, Mapping)
        head = [path.rpartition(".")[2] or "entry"] if keyed else []
        body = [
            ([label] if keyed else []) + [_inline(record.get(c)) for c in columns]
            for label, record in records[:MAX_RECORD_ROWS]
        ]
        title = path or "records"
        if len(records) > MAX_RECORD_ROWS:
            title += f" (first {MAX_RECORD_ROWS} of {len(records)})"
        tables.append(Table(title=title, columns=head + columns, rows=body))
        return
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            rows.append([path, f"{len(value)} entries"])
            return
        for key, item in value.items():
            walk(item, f"{path}.{key}" if path else str(key), depth + 1, tables, rows)
    elif isinstance(value, list):
        if all(not isinstance(v, Mapping | list) for v in value):
            if value:
                rows.append([path, _inline(value)])
        else:
            rows.append([path, f"{len(value)} items"])
    else:
        rows.append([path, value])


def _inline(value: Any) -> Any:
    """A scalar as it is; a list of scalars joined (or, when long, its count and range)."""
    if not isinstance(value, list):
        return value if not isinstance(value, Mapping) else f"{len(value)} entries"
    if len(value) <= MAX_INLINE_LIST:
        return ", ".join(number(v) for v in value)
    nums = [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
    finite = [v for v in nums if math.isfinite(v)]
    span = f" from {number(min(finite))} to {number(max(finite))}" if finite else ""
    return f"{len(value)} values{span}"
