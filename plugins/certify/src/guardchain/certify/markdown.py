"""``certificate.md``: a human-readable view of a certificate (the JSON is the certificate; this only shows it).

Sections, in the order the HTML report (``guardchain report``) also uses: verdict and summary, gates, primary metric,
guards, metric gates (when the preset has any), edit, timing, provenance. Numbers are rounded for people
(:mod:`guardchain.core.views`); nothing prints as ``None``.
"""

from __future__ import annotations

from typing import Any

from guardchain.certify.certificate import Certificate, SplitEvaluation
from guardchain.core import views as fmt

#: the guard through which a preset's gates on any metric run (:mod:`guardchain.certify.metric_gate`)
METRIC_GATE = "metric_gate"


def render_markdown(certificate: Certificate) -> str:
    """The markdown view of ``certificate``."""
    c = certificate
    lines = [
        f"# guardchain certificate: {c.verdict}" + (" (edit rolled back)" if c.rolled_back else ""),
        "",
        f"- baseline: `{c.provenance.baseline.get('ref', '')}`",
        f"- subject: `{c.provenance.subject.get('ref', '')}` ({c.mode} mode)",
        f"- policy: tier **{c.policy.tier}**, profile **{c.policy.profile}**, guard chain **{c.policy.guard_chain}**",
        f"- run `{c.run_id}` at {c.created_at}",
        f"- digest `{c.digest}`" + (f", signed (Ed25519) by `{c.signed_by[:16]}…`" if c.signed_by else ", unsigned"),
        "",
    ]
    lines += ["## Gates", "", "| gate | measured | threshold | result |", "|---|---|---|---|"]
    for gate in c.gates:
        result = "pass" if gate.passed else "**FAIL**" + (" (rolls back)" if gate.rollback else "")
        lines.append(
            f"| {gate.name} | {fmt.measured(gate.measured)} | {fmt.threshold(gate.threshold, gate.comparison)} | "
            f"{result} |"
        )
    lines.append("")
    lines += _primary(c)
    lines += _guards(c)
    lines += _metric_gates(c)
    lines += _edit(c)
    lines += ["## Timing", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {key.removesuffix('_s')} | {value:.2f} |" for key, value in c.timing.items()]
    lines += ["", "## Provenance", ""]
    for name, side in (("baseline", c.provenance.baseline), ("subject", c.provenance.subject)):
        lines.append(
            f"- {name}: `{side.get('ref', '')}` — {side.get('model_class') or 'model'}, "
            f"{fmt.number(side.get('n_parameters'))} parameters, {side.get('dtype', '')} on {side.get('device', '')}; "
            f"weights `{str(side.get('weights_sha256', ''))[:16]}…`"
        )
    dataset = c.provenance.dataset
    lines.append(f"- data: {dataset.get('name', '')}, sha256 `{str(dataset.get('dataset_sha256', ''))[:16]}…`")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(c.provenance.libraries.items()))
    lines += [f"- libraries: {versions}", f"- device: {c.provenance.device}", ""]
    return "\n".join(lines)


def _primary(c: Certificate) -> list[str]:
    pm = c.primary_metric
    if pm is None and not c.policy.primary_metric:
        return ["## Primary metric", "", "None: certified on the guards and metric gates alone (metric: null).", ""]
    if pm is None:
        return ["## Primary metric", "", "The subject's outputs were not finite: there is no primary metric.", ""]

    def row(name: str, split: SplitEvaluation) -> str:
        return (
            f"| {name} | {split.n_windows} | {split.n_tokens:.0f} | {fmt.number(split.baseline.ppl)} | "
            f"{fmt.number(split.subject.ppl)} | {fmt.number(split.ratio, 6)} | "
            f"{fmt.interval(split.ci_low, split.ci_high)} |"
        )

    out = [
        f"## Primary metric: {pm.kind}" + (f" ({pm.mode})" if pm.mode else ""),
        "",
        f"| windows | n | tokens | baseline | subject | ratio | {pm.bootstrap.confidence:.0%} BCa CI |",
        "|---|---|---|---|---|---|---|",
        row("preview", pm.preview),
        row("final", pm.final),
        "",
    ]
    if pm.ci_half_width_log is not None:
        out += [
            f"Half-width of the final CI of log(ratio): {fmt.number(pm.ci_half_width_log)} (profile target "
            f"{fmt.number(c.policy.sizes.target_half_width)}; about {pm.n_final_for_target} final windows would "
            "reach it).",
            "",
        ]
    return out


def _is_metric_gate(report: dict[str, Any]) -> bool:
    return report.get("guard") == METRIC_GATE


def _guards(c: Certificate) -> list[str]:
    guards = [(i, r) for i, r in enumerate(c.guards) if not _is_metric_gate(r)]
    if not guards:
        return ["## Guards", "", f"No guards ran (guard chain: {c.policy.guard_chain}).", ""]
    out = ["## Guards", "", "| # | guard | mode | status | findings | corrections |", "|---|---|---|---|---|---|"]
    for index, report in guards:
        codes = sorted({str(f.get("code")) for f in report.get("findings", [])})
        applied = sum(1 for a in report.get("actions", []) if a.get("applied"))
        out.append(
            f"| {index} | {report.get('guard')} | {report.get('mode')} | {report.get('status')} | "
            f"{', '.join(codes) or fmt.DASH} | {applied} |"
        )
    overhead = c.guard_overhead
    if overhead is not None:
        out += ["", f"The guards took {overhead.guard_share:.1%} of the wall time."]
        if overhead.uncorrected_final is not None:
            out.append(
                "Without their corrections the subject's final perplexity is "
                f"{fmt.number(overhead.uncorrected_final.ppl)}."
            )
    return [*out, ""]


def _metric_gates(c: Certificate) -> list[str]:
    gates = [(i, r) for i, r in enumerate(c.guards) if _is_metric_gate(r)]
    if not gates:
        return []
    out = [
        "## Metric gates",
        "",
        "| # | gate | metric | compared | baseline | subject | estimate | interval | bounds | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, report in gates:
        d = report.get("details") or {}
        paired = d.get("compare") in {"ratio", "difference"}  # z and verdict have no interval of their own
        interval = (d.get("interval") or [None, None]) if paired else [None, None]
        bounds = ", ".join(
            f"{fmt.threshold(b.get('threshold'), 'le' if b.get('side') == 'max' else 'ge')} "
            f"{'pass' if b.get('passed') else 'FAIL'}"
            for b in d.get("bounds") or []
            if b.get("side") in {"max", "min"}
        )
        sides = [d.get(name) or {} for name in ("baseline", "subject")]
        values = [fmt.number(side.get("value")) if side else "not finite" for side in sides]
        out.append(
            f"| {index} | {d.get('label')} | {d.get('metric')} | {d.get('compare')} | {values[0]} | {values[1]} | "
            f"{fmt.number(d.get('estimate'))} | {fmt.interval(interval[0], interval[1])} | {bounds or fmt.DASH} | "
            f"{report.get('status')} |"
        )
    return [*out, ""]


def _edit(c: Certificate) -> list[str]:
    if not c.edit:
        return []
    report: dict[str, Any] = c.edit.get("report", {})
    settings = ", ".join(f"{k}={v}" for k, v in sorted((c.edit.get("config") or {}).items()) if v is not None)
    return [
        "## Edit",
        "",
        f"- {c.edit.get('name')}" + (f" ({settings})" if settings else ""),
        f"- {len(report.get('modules_changed', []))} tensors, {fmt.number(report.get('parameters_changed', 0))} "
        "parameters changed",
        "",
    ]
