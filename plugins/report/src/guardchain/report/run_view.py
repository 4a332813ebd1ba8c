"""The page of a chain run (``run.json``): status, the steps, each step's result, timing, problems, provenance.

Each metric, edit and intervention step is drawn by the renderer its plugin supplies (``guardchain_render_result``),
or by the generic view. A guard step only prepares its reference; its report arrives with the next edit step
(the runner applies the edit under the guards before it), so guard reports are drawn under that edit, each by its
guard's renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from guardchain.core import views as fmt
from guardchain.core.views import Chart, Series
from guardchain.report.blocks import Ids, facts_list, figure, json_details, plugins_table, problem_note, table
from guardchain.report.markup import Html, el, join
from guardchain.report.page import Section
from guardchain.report.rendering import render, rendered_html
from guardchain.report.source import RunFolder

if TYPE_CHECKING:
    from guardchain.core.registry import Registry

STATUS_CLASS = {"ok": "pass", "rolled_back": "warn", "failed": "fail"}


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are untrusted JSON)."""
    return value if isinstance(value, Mapping) else {}


def run_page(folder: RunFolder, registry: Registry | None, ids: Ids) -> tuple[str, Html, list[Section]]:
    """``(page title, banner, sections)`` of a chain run folder."""
    run = folder.data
    steps = [s for s in run.get("steps") or [] if isinstance(s, Mapping)]
    sections = [Section("steps", "Steps", steps_table(steps))]
    guards_of = _guards_of_edits(steps)
    for step in steps:
        if step.get("kind") == "guard" and step.get("status") == "ok":
            continue  # drawn under its edit step
        sections.append(
            Section(f"step-{step.get('index')}", _step_title(step), step_html(step, guards_of, folder, registry, ids))
        )
    sections.append(Section("timing", "Timing", timing_html(run, steps, ids)))
    problems = [p for p in run.get("problems") or [] if isinstance(p, Mapping)]
    if problems:
        sections.append(Section("problems", "Problems", problems_html(problems)))
    sections.append(Section("provenance", "Provenance", provenance_html(run, folder)))
    title = f"guardchain run: {run.get('chain')} — {run.get('status')}"
    return title, banner(run, steps), sections


def _capability(step: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = step.get("capability")
    return ref if isinstance(ref, Mapping) else {}


def _step_title(step: Mapping[str, Any]) -> str:
    cap = _capability(step)
    return f"Step {step.get('index')}: {step.get('id')} ({step.get('kind')} {cap.get('name')})"


def banner(run: Mapping[str, Any], steps: list[Mapping[str, Any]]) -> Html:
    """The run's status and what it ran on."""
    status = str(run.get("status"))
    model = _map(run.get("model"))
    data = _map(run.get("data"))
    dataset = _map(data.get("dataset"))
    failed = [str(s.get("id")) for s in steps if s.get("status") == "failed"]
    rolled = [str(s.get("id")) for s in steps if s.get("rolled_back")]
    facts = [
        ("chain", str(run.get("chain"))),
        ("model", str(model.get("ref") or fmt.DASH)),
        ("data", str(dataset.get("name") or fmt.DASH)),
        ("seed", str(run.get("seed"))),
        ("steps", str(len(steps))),
        ("wall time", fmt.seconds(run.get("duration_s"))),
    ]
    if failed:
        note = f"Step {', '.join(failed)} failed; the chain stopped there."
    elif rolled:
        note = f"A gate-mode guard failed: the edit of step {', '.join(rolled)} was rolled back."
    else:
        note = "Every step succeeded."
    return el(
        "div",
        el(
            "h1",
            el("span", "Run status", class_="label"),
            el("span", status.replace("_", " "), class_="value"),
            id="verdict",
        ),
        el("ul", *(el("li", f"{k}: ", el("b", v)) for k, v in facts), class_="facts"),
        el("p", note),
        el("p", f"run {run.get('run_id')} from {run.get('started_at')} to {run.get('finished_at')}"),
        class_=f"banner {STATUS_CLASS.get(status, 'warn')}",
    )


def steps_table(steps: list[Mapping[str, Any]]) -> Html:
    """One row per step."""
    rows = []
    for step in steps:
        cap = _capability(step)
        status = str(step.get("status"))
        shown = el("span", status, class_="result-pass" if status == "ok" else "result-fail")
        origin = " ".join(str(x) for x in (cap.get("distribution") or cap.get("plugin"), cap.get("version")) if x)
        rows.append(
            [
                step.get("index"),
                str(step.get("id")),
                str(step.get("kind")),
                f"{cap.get('name')} ({origin})",
                shown,
                _duration(step.get("duration_s")),
                "yes" if step.get("rolled_back") else "",
            ]
        )
    columns = ["#", "id", "kind", "capability", "status", "seconds", "rolled back"]
    return table(columns, rows, caption="Steps")


def _duration(value: Any) -> Html:
    """Seconds to the millisecond, the full value on hover."""
    if not isinstance(value, int | float):
        return Html(fmt.DASH)
    return el("span", f"{value:.3f}", title=repr(value))


def _guards_of_edits(steps: list[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    """For each edit step, the guard steps whose reports it carries (those since the previous edit, in order)."""
    out: dict[int, list[Mapping[str, Any]]] = {}
    active: list[Mapping[str, Any]] = []
    for step in steps:
        if step.get("kind") == "guard" and step.get("status") == "ok":
            active.append(step)
        elif step.get("kind") == "edit":
            out[int(step.get("index", -1))] = active
            active = []
    return out


def step_html(
    step: Mapping[str, Any],
    guards_of: Mapping[int, list[Mapping[str, Any]]],
    folder: RunFolder,
    registry: Registry | None,
    ids: Ids,
) -> Html:
    """One step: its error if it failed, else its result as its plugin renders it (edit: and its guards')."""
    cap = _capability(step)
    parts: list[Html] = []
    error = step.get("error")
    if isinstance(error, Mapping):
        text = f"{error.get('code')}: {error.get('message')}"
        if error.get("hint"):
            text += f" — {error.get('hint')}"
        parts.append(problem_note(text))
    result = step.get("result")
    if not isinstance(result, Mapping):
        if not parts:
            parts.append(el("p", "This step recorded no result."))
        return join(parts)
    kind, name = str(step.get("kind")), str(cap.get("name"))
    if step.get("rolled_back"):
        failing = ", ".join(map(str, result.get("failed_guards") or [])) or "a gate-mode guard"
        parts.append(
            problem_note(
                f"{failing} failed in gate mode: the edit was rolled back and the weights restored (digest "
                f"{str(result.get('weights_digest_after'))[:16]}…, as before: "
                f"{'yes' if result.get('weights_digest_after') == result.get('weights_digest_before') else 'no'})."
            )
        )
    rendered = render(
        registry, kind, name, result, folder.artifacts, distribution=cap.get("distribution"), plugin=cap.get("plugin")
    )
    parts.append(rendered_html(rendered, result, ids))
    if kind == "edit":
        parts.append(_guard_reports(step, result, guards_of, folder, registry, ids))
    return join(parts)


def _guard_reports(
    step: Mapping[str, Any],
    result: Mapping[str, Any],
    guards_of: Mapping[int, list[Mapping[str, Any]]],
    folder: RunFolder,
    registry: Registry | None,
    ids: Ids,
) -> Html:
    reports = [r for r in result.get("guards") or [] if isinstance(r, Mapping)]
    if not reports:
        return el("p", "No guard was active during this edit.")
    guard_steps = guards_of.get(int(step.get("index", -1)), [])
    parts: list[Html] = [el("h3", f"Guards active during the edit ({len(reports)})")]
    for position, report in enumerate(reports):
        cap = _capability(guard_steps[position]) if position < len(guard_steps) else {}
        name = str(cap.get("name") or report.get("guard"))
        rendered = render(
            registry,
            "guard",
            name,
            report,
            folder.artifacts,
            distribution=cap.get("distribution"),
            plugin=cap.get("plugin"),
        )
        parts.append(el("section", rendered_html(rendered, report, ids, level=4), class_="subject"))
    return join(parts)


def timing_html(run: Mapping[str, Any], steps: list[Mapping[str, Any]], ids: Ids) -> Html:
    """Wall time per step, and what the run spent outside the steps (loading the model and the data, writing)."""
    names = [f"{s.get('index')}: {s.get('id')}" for s in steps]
    values = [float(s.get("duration_s") or 0.0) for s in steps]
    total = run.get("duration_s")
    if isinstance(total, int | float) and total - sum(values) > 0.005:
        names.append("outside the steps")
        values.append(float(total) - sum(values))
    if not names:
        return el("p", "No step ran.")
    chart = Chart(
        kind="bar",
        title="Wall time per step",
        x_label="step",
        y_label="wall time",
        y_unit="s",
        categories=names,
        series=[Series(name="wall time", x=[float(i) for i in range(len(names))], y=list[float | None](values))],
        caption=f"Total {fmt.seconds(total)}; outside the steps: loading the model and the data, writing the record.",
    )
    return el("div", figure(chart, ids), class_="charts")


def problems_html(problems: list[Mapping[str, Any]]) -> Html:
    """The run's problems (failed observers, failed detaching, ...)."""
    rows = [
        [str(p.get("code")), str(p.get("message")), str(p.get("path") or ""), str(p.get("hint") or "")]
        for p in problems
    ]
    return table(["code", "message", "where", "hint"], rows, caption="Problems")


def provenance_html(run: Mapping[str, Any], folder: RunFolder) -> Html:
    """Model, data, software and the run's files."""
    model = _map(run.get("model"))
    prov = _map(model.get("provenance"))
    adapter = _map(model.get("adapter"))
    data = _map(run.get("data"))
    dataset = _map(data.get("dataset"))
    env = _map(run.get("environment"))
    facts = [
        ("model", str(model.get("ref") or fmt.DASH)),
        (
            "adapter",
            f"{adapter.get('name')} ({adapter.get('distribution')} {adapter.get('version')})" if adapter else fmt.DASH,
        ),
        ("class", str(prov.get("model_class") or fmt.DASH)),
        ("parameters", fmt.number(prov.get("n_parameters"))),
        ("dtype, device", f"{prov.get('dtype', fmt.DASH)}, {prov.get('device', fmt.DASH)}"),
        ("weights sha256", str(prov.get("weights_sha256") or fmt.DASH)),
        ("tokenizer sha256", str(prov.get("tokenizer_sha256") or fmt.DASH)),
        (
            "data",
            f"{dataset.get('name')} ({dataset.get('distribution')} {dataset.get('version')})" if dataset else fmt.DASH,
        ),
        ("data fingerprint", str(data.get("fingerprint") or fmt.DASH)),
        ("chain digest", str(run.get("chain_digest"))),
        ("chain file", str(run.get("source") or fmt.DASH)),
        ("guardchain-core", str(env.get("guardchain_core") or fmt.DASH)),
        ("python", str(env.get("python") or fmt.DASH)),
        ("platform", str(env.get("platform") or fmt.DASH)),
    ]
    parts: list[Html] = [facts_list(facts)]
    plugins = plugins_table(env.get("plugins") or [])
    if plugins is not None:
        parts.append(plugins)
    if folder.artifacts:
        rows = [[name, path.stat().st_size] for name, path in sorted(folder.artifacts.items())]
        parts.append(table(["file", "bytes"], rows, caption="Artifacts"))
    if prov:
        parts.append(json_details(dict(prov), "Model provenance (JSON)"))
    return join(parts)
