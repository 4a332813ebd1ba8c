"""The page of a certification: verdict, gates, primary metric, guards, metric gates, edit, timing, provenance.

The same sections, in the same order, as ``certificate.md``. Guard reports, metric gates and the edit are drawn
by their plugins' renderers (``guardchain_render_result``); the primary metric, gates, timing and provenance are
the certificate's own and drawn here. Numbers are rounded with :mod:`guardchain.core.views` (full precision on
hover and in the JSON blocks).

Primary metric: per window ``i``, ``Δ_i = nll_subject,i − nll_baseline,i`` (nats/token). The certificate's ratio
is ``exp(Σ w_i Δ_i / Σ w_i)`` (token-weighted) and its BCa interval is on the ratio, so the histogram of ``Δ`` marks
the weighted mean ``log(ratio)`` and the interval ``[log(ci_low), log(ci_high)]`` on the same Δ axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from guardchain.core import views as fmt
from guardchain.core.views import Band, Chart, Rule, Series
from guardchain.report.blocks import Ids, facts_list, figure, json_details, plugins_table, table
from guardchain.report.markup import Html, el, join
from guardchain.report.page import Section
from guardchain.report.rendering import render, rendered_html
from guardchain.report.source import RunFolder

if TYPE_CHECKING:
    from guardchain.core.registry import Registry

METRIC_GATE = "metric_gate"
#: the certification's stages in the order they run (``timing`` keys); others follow, sorted
STAGES = ["load_s", "baseline_eval_s", "guards_prepare_s", "edit_s", "subject_eval_s", "statistics_s"]


def certificate_page(folder: RunFolder, registry: Registry | None, ids: Ids) -> tuple[str, Html, list[Section]]:
    """``(page title, banner, sections)`` of a certification folder."""
    c = folder.data
    subject = _side(c, "subject").get("ref", "")
    title = f"guardchain certificate: {c['verdict']} — {subject}"
    sections = [
        Section("gates", "Gates", gates_section(c)),
        Section("primary", "Primary metric", primary_section(c, ids)),
    ]
    guards, metric_gates = _split_guards(c)
    sections.append(Section("guards", "Guards", guards_section(c, guards, folder, registry, ids)))
    if metric_gates:
        sections.append(
            Section("metric-gates", "Metric gates", metric_gates_section(c, metric_gates, folder, registry, ids))
        )
    if c.get("edit"):
        sections.append(Section("edit", "Edit", edit_section(c, folder, registry, ids)))
    sections.append(Section("timing", "Timing", timing_section(c, ids)))
    sections.append(Section("provenance", "Provenance", provenance_section(c)))
    return title, banner(c), sections


def _side(c: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = c.get("provenance", {}).get(name)
    return value if isinstance(value, dict) else {}


def banner(c: Mapping[str, Any]) -> Html:
    """The verdict, what was compared, and the primary ratio."""
    verdict = str(c["verdict"])
    rolled = " (edit rolled back)" if c.get("rolled_back") else ""
    policy = c.get("policy", {})
    facts: list[tuple[str, str]] = [
        ("baseline", str(_side(c, "baseline").get("ref", ""))),
        ("subject", f"{_side(c, 'subject').get('ref', '')} ({c.get('mode')} mode)"),
        (
            "policy",
            f"tier {policy.get('tier')}, profile {policy.get('profile')}, guard chain {policy.get('guard_chain')}",
        ),
    ]
    pm = c.get("primary_metric")
    if isinstance(pm, Mapping):
        final = pm.get("final", {})
        facts.append(
            (
                "ratio (final)",
                f"{fmt.number(final.get('ratio'), 6)} {fmt.interval(final.get('ci_low'), final.get('ci_high'))}",
            )
        )
    failed = [g["name"] for g in c["gates"] if isinstance(g, Mapping) and not g.get("passed")]
    gates = f"{len(c['gates']) - len(failed)} of {len(c['gates'])} gates passed"
    note = el("p", f"Failed: {', '.join(failed)}." if failed else "Every gate passed.")
    signed = f"signed (Ed25519) by {str(c.get('signed_by'))[:16]}…" if c.get("signed_by") else "unsigned"
    return el(
        "div",
        el(
            "h1",
            el("span", "Verdict", class_="label"),
            el("span", f"{verdict}{rolled}", class_="value"),
            id="verdict",
        ),
        el("ul", *(el("li", f"{k}: ", el("b", v)) for k, v in facts), el("li", gates), class_="facts"),
        note,
        el("p", f"run {c.get('run_id')} at {c.get('created_at')} — digest {str(c.get('digest'))[:16]}…, {signed}"),
        class_=f"banner {'pass' if verdict == 'PASS' else 'fail'}",
    )


def _result_cell(passed: bool, rollback: bool) -> Html:
    if passed:
        return Html('<span class="result-pass">pass</span>')
    tail = " (rolls back)" if rollback else ""
    return Html(f'<span class="result-fail">FAIL{tail}</span>')


def gates_section(c: Mapping[str, Any]) -> Html:
    """Every gate: measured value, bound and result, rounded (full values on hover and in the JSON)."""
    rows = []
    for gate in c["gates"]:
        if not isinstance(gate, Mapping):
            continue
        measured = gate.get("measured")
        interval = gate.get("interval")
        shown = fmt.interval(interval[0], interval[1]) if isinstance(interval, list) and len(interval) == 2 else ""
        full = repr(measured)
        rows.append(
            Html(
                el(
                    "tr",
                    el("th", gate.get("name"), scope="row"),
                    el("td", fmt.measured(measured), class_="num", title=full),
                    el("td", shown, class_="num"),
                    el(
                        "td",
                        fmt.threshold(gate.get("threshold"), str(gate.get("comparison"))),
                        title=repr(gate.get("threshold")),
                    ),
                    el("td", _result_cell(bool(gate.get("passed")), bool(gate.get("rollback")))),
                    el("td", gate.get("detail") or ""),
                )
            )
        )
    head = el("tr", *(el("th", h, scope="col") for h in ("gate", "measured", "interval", "bound", "result", "what")))
    grid = el(
        "div",
        el("table", el("thead", head), el("tbody", *rows), class_="gates", aria_label="Gates"),
        class_="table-wrap",
    )
    return join([grid, json_details(c["gates"], "Gates at full precision (JSON)")])


def primary_section(c: Mapping[str, Any], ids: Ids) -> Html:
    """The primary metric: both window sets, the histogram of paired differences and the paired scatter."""
    pm = c.get("primary_metric")
    if not isinstance(pm, Mapping):
        if not (c.get("policy") or {}).get("primary_metric", True):
            return el("p", "None: certified on the guards and metric gates alone (metric: null).")
        return el("p", "The subject's outputs were not finite: there is no primary metric.")
    confidence = float(pm.get("bootstrap", {}).get("confidence", 0.95))
    columns = ["windows", "n", "tokens", "baseline", "subject", "ratio", f"{confidence:.0%} BCa CI"]
    rows = []
    for name in ("preview", "final"):
        split = pm.get(name, {})
        rows.append(
            [
                name,
                split.get("n_windows"),
                split.get("n_tokens"),
                split.get("baseline", {}).get("ppl"),
                split.get("subject", {}).get("ppl"),
                _precise(split.get("ratio"), 6),
                fmt.interval(split.get("ci_low"), split.get("ci_high")),
            ]
        )
    mode = f" ({pm.get('mode')})" if pm.get("mode") else ""
    parts: list[Html] = [
        el(
            "p",
            f"{pm.get('kind')}{mode}: perplexity of the baseline and of the subject on the same windows, paired "
            "window by window.",
            class_="summary",
        ),
        table(columns, rows, caption="Perplexity on paired windows"),
    ]
    half = pm.get("ci_half_width_log")
    if half is not None:
        target = c.get("policy", {}).get("sizes", {}).get("target_half_width")
        parts.append(
            el(
                "p",
                f"Half-width of the final CI of log(ratio): {fmt.number(half)} (profile target {fmt.number(target)}; "
                f"about {pm.get('n_final_for_target')} final windows would reach it).",
            )
        )
    charts = [histogram_chart(pm, confidence, c)]
    scatter = scatter_chart(pm, c)
    figures = [figure(charts[0], ids)]
    if scatter is not None:
        figures.append(figure(scatter, ids, diagonal=True))
    parts.append(el("div", *figures, class_="charts"))
    return join(parts)


def _precise(value: Any, digits: int) -> Html:
    """A number to ``digits`` significant figures, the full value on hover."""
    return el("span", fmt.number(value, digits), title=repr(value))


def _numbers(values: Any) -> list[float]:
    return [float(v) for v in values or [] if isinstance(v, int | float) and math.isfinite(v)]


def histogram_chart(pm: Mapping[str, Any], confidence: float, c: Mapping[str, Any]) -> Chart:
    """Histogram of the final windows' Δ NLL, with log(ratio) and the log of the BCa interval marked."""
    final = pm.get("final", {})
    deltas = _numbers(final.get("deltas"))
    series: list[Series] = []
    if deltas:
        bins = int(min(30, max(6, math.ceil(2 * len(deltas) ** (1 / 3)) * 2)))
        counts, edges = np.histogram(np.asarray(deltas), bins=bins)
        centres = ((edges[:-1] + edges[1:]) / 2).tolist()
        series.append(Series(name="final windows", x=centres, y=[float(n) for n in counts]))
    else:
        series.append(Series(name="final windows", x=[], y=[]))
    bands, rules = [], []
    low, high, ratio = final.get("ci_low"), final.get("ci_high"), final.get("ratio")
    if _positive(low) and _positive(high):
        bands.append(Band(start=math.log(low), end=math.log(high), label=f"{confidence:.0%} BCa CI"))
    if _positive(ratio):
        rules.append(Rule(x=math.log(ratio), label="log ratio"))
    bound = c.get("policy", {}).get("thresholds", {}).get("ratio_ci_upper_max")
    caption = (
        "Δ = subject − baseline mean NLL per window. The token-weighted mean of Δ is log(ratio); the interval is "
        "the log of the ratio's BCa interval"
        + (
            f"; the gate needs its upper end ≤ log({fmt.short(bound)}) = {fmt.number(math.log(bound))}."
            if _positive(bound)
            else "."
        )
    )
    return Chart(
        kind="histogram",
        title="Per-window change in loss (final windows)",
        x_label="Δ NLL (subject − baseline)",
        x_unit="nats/token",
        y_label="windows",
        series=series,
        bands=bands,
        rules=rules,
        caption=caption,
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def scatter_chart(pm: Mapping[str, Any], c: Mapping[str, Any]) -> Chart | None:
    """Baseline vs subject NLL per window (final and preview windows; y = x is no change)."""
    series = []
    for name in ("final", "preview"):
        split = pm.get(name, {})
        base = split.get("baseline", {}).get("per_unit") or []
        subj = split.get("subject", {}).get("per_unit") or []
        if base and len(base) == len(subj):
            series.append(Series(name=f"{name} windows", x=[float(v) for v in base], y=[_float(v) for v in subj]))
    overhead = c.get("guard_overhead") or {}
    uncorrected = overhead.get("uncorrected_final") if isinstance(overhead, Mapping) else None
    final_base = pm.get("final", {}).get("baseline", {}).get("per_unit") or []
    if isinstance(uncorrected, Mapping) and len(uncorrected.get("per_unit") or []) == len(final_base):
        series.append(
            Series(
                name="final, without the guards' corrections",
                x=[float(v) for v in final_base],
                y=[_float(v) for v in uncorrected["per_unit"]],
            )
        )
    if not series:
        return None
    return Chart(
        kind="scatter",
        title="Baseline vs subject loss per window",
        x_label="baseline NLL",
        x_unit="nats/token",
        y_label="subject NLL",
        y_unit="nats/token",
        series=series,
        caption="Each point is one window; points above the dashed line y = x got worse after the edit.",
    )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _split_guards(
    c: Mapping[str, Any],
) -> tuple[list[tuple[int, dict[str, Any], str]], list[tuple[int, dict[str, Any], str]]]:
    """Guard reports with their position and registered name (``distribution:name`` from the policy)."""
    policy_guards = c.get("policy", {}).get("guards") or []
    guards: list[tuple[int, dict[str, Any], str]] = []
    metric_gates: list[tuple[int, dict[str, Any], str]] = []
    for index, report in enumerate(c["guards"]):
        if not isinstance(report, dict):
            continue
        entry = policy_guards[index] if index < len(policy_guards) and isinstance(policy_guards[index], Mapping) else {}
        name = str(entry.get("guard") or report.get("guard"))
        target = metric_gates if name.rpartition(":")[2] == METRIC_GATE else guards
        target.append((index, report, name))
    return guards, metric_gates


def _status_cell(status: Any) -> Html:
    cls = {"pass": "result-pass", "fail": "result-fail", "warn": "result-warn"}.get(str(status), "")
    return el("span", status, class_=cls or None)


def guards_section(
    c: Mapping[str, Any],
    guards: Sequence[tuple[int, dict[str, Any], str]],
    folder: RunFolder,
    registry: Registry | None,
    ids: Ids,
) -> Html:
    """A table of every guard, then each guard's report as its plugin renders it."""
    if not guards:
        return el("p", f"No guards ran (guard chain: {c.get('policy', {}).get('guard_chain')}).")
    rows = []
    for index, report, name in guards:
        codes = sorted({str(f.get("code")) for f in report.get("findings") or [] if isinstance(f, Mapping)})
        applied = sum(1 for a in report.get("actions") or [] if isinstance(a, Mapping) and a.get("applied"))
        rows.append(
            [index, name, report.get("mode"), _status_cell(report.get("status")), ", ".join(codes) or fmt.DASH, applied]
        )
    parts: list[Html] = [
        table(["#", "guard", "mode", "status", "findings", "corrections"], rows, caption="Guard chain")
    ]
    overhead = c.get("guard_overhead")
    if isinstance(overhead, Mapping):
        text = f"The guards took {float(overhead.get('guard_share', 0.0)):.1%} of the wall time."
        uncorrected = overhead.get("uncorrected_final")
        if isinstance(uncorrected, Mapping):
            text += (
                f" Without their corrections the subject's final perplexity is {fmt.number(uncorrected.get('ppl'))}."
            )
        parts.append(el("p", text))
    for index, report, name in guards:
        rendered = render(registry, "guard", name, report, folder.artifacts)
        parts.append(el("section", rendered_html(rendered, report, ids), class_="subject", id=f"guard-{index}"))
    return join(parts)


def metric_gates_section(
    c: Mapping[str, Any],
    gates: Sequence[tuple[int, dict[str, Any], str]],
    folder: RunFolder,
    registry: Registry | None,
    ids: Ids,
) -> Html:
    """Each metric gate as its renderer draws it (baseline vs subject, interval and bounds)."""
    parts = []
    for index, report, name in gates:
        rendered = render(registry, "guard", name, report, folder.artifacts)
        parts.append(el("section", rendered_html(rendered, report, ids), class_="subject", id=f"metric-gate-{index}"))
    return join(parts)


def edit_section(c: Mapping[str, Any], folder: RunFolder, registry: Registry | None, ids: Ids) -> Html:
    """The edit as its plugin renders it (the generic view otherwise)."""
    edit = c["edit"]
    settings = ", ".join(f"{k}={v}" for k, v in sorted((edit.get("config") or {}).items()) if v is not None)
    intro = el(
        "p", f"{edit.get('distribution')}:{edit.get('name')}" + (f" ({settings})" if settings else ""), class_="summary"
    )
    rendered = render(
        registry, "edit", str(edit.get("name")), edit, folder.artifacts, distribution=edit.get("distribution")
    )
    return join([intro, rendered_html(rendered, edit, ids)])


def timing_section(c: Mapping[str, Any], ids: Ids) -> Html:
    """Where the wall time went: the stages (and what is left of the total), then each guard."""
    timing = {k: float(v) for k, v in c.get("timing", {}).items() if isinstance(v, int | float)}
    total = timing.get("total_s")
    named = [k for k in timing if k != "total_s" and not k.startswith("guard:")]
    order = sorted(named, key=lambda k: (STAGES.index(k) if k in STAGES else len(STAGES), k))
    stages = {k.removesuffix("_s"): timing[k] for k in order}
    guards = {k.removesuffix("_s"): v for k, v in timing.items() if k.startswith("guard:")}
    if total is not None and stages:
        rest = total - sum(stages.values())
        if rest > 0.005:
            stages["other"] = rest
    parts: list[Html] = []
    if total is not None:
        parts.append(el("p", f"Total wall time {fmt.seconds(total)}.", class_="summary"))
    figures = []
    if stages:
        figures.append(figure(_time_bars("Wall time per stage", stages, total), ids))
    if guards:
        figures.append(figure(_time_bars("Wall time per guard (prepare, after edit, finalize)", guards, total), ids))
    if figures:
        parts.append(el("div", *figures, class_="charts"))
    rows = [[name, seconds] for name, seconds in [*stages.items(), *guards.items()] if name != "other"]
    if total is not None:
        rows.append(["total", total])
    parts.append(table(["stage", "seconds"], rows, caption="Timing"))
    return join(parts)


def _time_bars(title: str, values: Mapping[str, float], total: float | None) -> Chart:
    names = list(values)
    share = f" ({100 * sum(values.values()) / total:.0f}% of the total)" if total else ""
    return Chart(
        kind="bar",
        title=title,
        x_label="stage",
        y_label="wall time",
        y_unit="s",
        categories=names,
        series=[Series(name="wall time", x=[float(i) for i in range(len(names))], y=list(values.values()))],
        caption=f"Sum {fmt.seconds(sum(values.values()))}{share}.",
    )


def provenance_section(c: Mapping[str, Any]) -> Html:
    """Models, data, digests, plugins and libraries."""
    prov = c.get("provenance", {})
    parts: list[Html] = []
    rows = []
    for name in ("baseline", "subject"):
        side = _side(c, name)
        rows.append(
            [
                name,
                str(side.get("ref", "")),
                str(side.get("model_class") or ""),
                side.get("n_parameters"),
                f"{side.get('dtype', '')} on {side.get('device', '')}",
                _digest(side.get("weights_sha256")),
            ]
        )
    parts.append(
        table(["model", "reference", "class", "parameters", "dtype", "weights sha256"], rows, caption="Models")
    )
    dataset = prov.get("dataset", {}) if isinstance(prov.get("dataset"), Mapping) else {}
    facts = [
        ("data", str(dataset.get("name", ""))),
        ("dataset sha256", _digest(dataset.get("dataset_sha256"))),
        ("windows digest", _digest(dataset.get("windows_digest"))),
        ("tokenizer sha256", _digest(dataset.get("tokenizer_sha256"))),
        ("config digest", _digest(prov.get("config_digest"))),
        ("policy digest", _digest(prov.get("policy_digest"))),
        ("certificate digest", _digest(c.get("digest"))),
        ("seeds", ", ".join(f"{k} {v}" for k, v in sorted((prov.get("seeds") or {}).items()))),
        ("device", str(prov.get("device", ""))),
    ]
    parts.append(facts_list(facts))
    plugins = plugins_table(prov.get("plugins") or [])
    if plugins is not None:
        parts.append(plugins)
    libraries = prov.get("libraries") or {}
    if isinstance(libraries, Mapping) and libraries:
        parts.append(table(["library", "version"], sorted(libraries.items()), caption="Libraries"))
    parts.append(json_details(c.get("request") or {}, "Certification request (JSON)"))
    return join(parts)


def _digest(value: Any) -> Html:
    if not value:
        return Html(fmt.DASH)
    text = str(value)
    return el("code", f"{text[:16]}…" if len(text) > 20 else text, title=text)
