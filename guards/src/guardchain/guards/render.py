"""How the HTML report shows each guard's report (``guardchain_render_result``): declarative charts and tables of
:mod:`guardchain.core.views`, read from the report's ``details`` as the decision modules record them.

* ``spectral`` — per matrix family, σ_max (top singular value) and stable rank ‖W‖_F² / σ_max² of every changed
  matrix before and after the edit, and each matrix's change in the family's standard units
  ``z = ln(ratio) / τ_f`` against the cap ±κ_f;
* ``rmt`` — per family the outlier count (singular values above (1 + margin) × the Marchenko-Pastur edge) before
  and after with the allowed change, per changed matrix σ_1 / edge, and per activation site the edge risk;
* ``variance`` — per site the drift ½ ln(var / var_base) (= ln of the std ratio) against ±max_drift, and the
  proposed and applied rescalings;
* ``invariants`` — the count of each kind of violation and the logits probe.

Every view starts with the status and, when there are any, the findings and the corrections. Torch-free: the
report imports this module without loading a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from guardchain.core import views as fmt
from guardchain.core.views import Chart, ResultView, Rule, Series, Table, Text

Block = Chart | Table | Text


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are untrusted JSON)."""
    return value if isinstance(value, Mapping) else {}


def render_guard(name: str, report: Mapping[str, Any]) -> ResultView | None:
    """The view of one of this member's guard reports (``None`` for a guard it does not know)."""
    view = VIEWS.get(name)
    if view is None or not isinstance(report.get("details"), Mapping):
        return None
    details: Mapping[str, Any] = report["details"]
    return ResultView(
        title=f"{name} guard",
        summary=_summary(report),
        blocks=[*view(details, report), *_findings_and_actions(report)],
    )


# -- shared pieces -----------------------------------------------------------------------------------------------


def _summary(report: Mapping[str, Any]) -> str:
    findings = [f for f in report.get("findings") or [] if isinstance(f, Mapping)]
    failing = [f for f in findings if f.get("severity") in {"fail", "warn"}]
    actions = [a for a in report.get("actions") or [] if isinstance(a, Mapping)]
    applied = sum(1 for a in actions if a.get("applied"))
    text = f"{report.get('status')} ({report.get('mode')} mode)"
    text += f"; {len(failing)} finding(s)" if failing else "; no finding"
    if actions:
        text += f"; {applied} of {len(actions)} correction(s) applied"
    tier = (report.get("details") or {}).get("tier")
    return text + (f"; tier {tier}" if tier else "")


def _findings_and_actions(report: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    findings = [f for f in report.get("findings") or [] if isinstance(f, Mapping)]
    if findings:
        blocks.append(
            Table(
                title="Findings",
                columns=["severity", "code", "target", "message"],
                rows=[
                    [str(f.get("severity")), str(f.get("code")), str(f.get("target") or ""), str(f.get("message"))]
                    for f in findings
                ],
            )
        )
    actions = [a for a in report.get("actions") or [] if isinstance(a, Mapping)]
    if actions:
        blocks.append(
            Table(
                title="Corrections",
                columns=["target", "kind", "applied", "reason"],
                rows=[
                    [str(a.get("target")), str(a.get("kind")), bool(a.get("applied")), str(a.get("reason") or "")]
                    for a in actions
                ],
            )
        )
    return blocks


def short_names(names: Sequence[str]) -> list[str]:
    """Parameter names without the dotted components every name shares at the start, and without ``.weight``
    (``transformer.h.0.attn.c_attn.weight`` -> ``h.0.attn.c_attn`` among GPT-2's matrices)."""
    parts = [n.removesuffix(".weight").split(".") for n in names]
    common = 0
    if len(parts) > 1:
        for column in zip(*parts, strict=False):
            if len(set(column)) != 1:
                break
            common += 1
    return [".".join(p[min(common, len(p) - 1) :]) for p in parts]


def _num(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def _pair_chart(
    title: str,
    names: Sequence[str],
    before: Sequence[float | None],
    after: Sequence[float | None],
    y_label: str,
    *,
    x_label: str = "matrix",
    y_unit: str = "",
    rules: Sequence[Rule] = (),
    caption: str = "",
) -> Chart:
    index = [float(i) for i in range(len(names))]
    return Chart(
        kind="bar",
        title=title,
        x_label=x_label,
        y_label=y_label,
        y_unit=y_unit,
        categories=list(names),
        series=[Series(name="baseline", x=index, y=list(before)), Series(name="subject", x=index, y=list(after))],
        rules=list(rules),
        caption=caption,
    )


# -- spectral ----------------------------------------------------------------------------------------------------


def _spectral(details: Mapping[str, Any], report: Mapping[str, Any]) -> list[Block]:
    families = _map(details.get("families"))
    rows = [
        [
            family,
            info.get("count"),
            info.get("changed"),
            info.get("kappa"),
            info.get("max_abs_z_sigma"),
            info.get("max_abs_z_srank"),
            info.get("violations"),
        ]
        for family, info in families.items()
        if isinstance(info, Mapping)
    ]
    blocks: list[Block] = [
        Table(
            title="Per matrix family",
            columns=["family", "matrices", "changed", "cap κ", "max |z| σ_max", "max |z| stable rank", "violations"],
            rows=rows,
        )
    ]
    matrices = [m for m in details.get("matrices") or [] if isinstance(m, Mapping) and m.get("name")]
    by_family: dict[str, list[Mapping[str, Any]]] = {}
    for matrix in matrices:
        by_family.setdefault(str(matrix.get("family")), []).append(matrix)
    for family, group in by_family.items():
        names = short_names([str(m["name"]) for m in group])
        blocks.append(
            _pair_chart(
                f"σ_max per {family} matrix, before and after",
                names,
                [_num(m.get("sigma_base")) for m in group],
                [_num(m.get("sigma")) for m in group],
                "σ_max (top singular value)",
            )
        )
        blocks.append(
            _pair_chart(
                f"Stable rank per {family} matrix, before and after",
                names,
                [_num(m.get("srank_base")) for m in group],
                [_num(m.get("srank")) for m in group],
                "stable rank ‖W‖²_F / σ_max²",
            )
        )
    if matrices:
        names = short_names([str(m["name"]) for m in matrices])
        index = [float(i) for i in range(len(matrices))]
        kappas = sorted({k for k in (_num(f.get("kappa")) for f in families.values() if isinstance(f, Mapping)) if k})
        rules = [Rule(y=k, label="cap +κ") for k in kappas] + [Rule(y=-k, label="cap −κ") for k in kappas]
        blocks.append(
            Chart(
                kind="bar",
                title="Change per matrix in standard units",
                x_label="matrix",
                y_label="z = ln(ratio) / τ",
                categories=names,
                series=[
                    Series(name="z of σ_max", x=index, y=[_num(m.get("z_sigma")) for m in matrices]),
                    Series(name="z of stable rank", x=index, y=[_num(m.get("z_srank")) for m in matrices]),
                ],
                rules=rules,
                caption="A matrix beyond ±κ of its family is a violation; more than max_caps violations fail the "
                "guard.",
            )
        )
    else:
        blocks.append(Text(text="The edit changed no matrix this guard measures."))
    return blocks


# -- rmt ---------------------------------------------------------------------------------------------------------


def _rmt(details: Mapping[str, Any], report: Mapping[str, Any]) -> list[Block]:
    thresholds = _map(details.get("thresholds"))
    margin = _num(thresholds.get("margin"))
    outliers = _map(details.get("outliers"))
    edge = _map(details.get("edge_risk"))
    families = sorted(set(outliers) | set(edge))
    rows = []
    for family in families:
        o = _map(outliers.get(family))
        e = _map(edge.get(family))
        rows.append(
            [
                family,
                o.get("outliers_base"),
                o.get("outliers"),
                o.get("allowed_change"),
                e.get("edge_risk_base"),
                e.get("edge_risk"),
                e.get("limit"),
            ]
        )
    blocks: list[Block] = [
        Table(
            title="Per family",
            columns=[
                "family",
                "outliers before",
                "outliers after",
                "allowed change",
                "edge risk before",
                "edge risk after",
                "edge risk limit",
            ],
            rows=rows,
        )
    ]
    if outliers:
        names = sorted(outliers)
        blocks.append(
            _pair_chart(
                "Weight singular values beyond the MP edge, per family",
                names,
                [_num((outliers[f] or {}).get("outliers_base")) for f in names],
                [_num((outliers[f] or {}).get("outliers")) for f in names],
                "outliers",
                x_label="family",
                caption="Singular values above (1 + margin) × the Marchenko-Pastur edge s(√m + √n)"
                + (f", margin {fmt.short(margin)}." if margin is not None else "."),
            )
        )
    weights = _map(details.get("weights"))
    changed = [w for w in weights.get("changed") or [] if isinstance(w, Mapping) and w.get("name")]
    if changed:

        def top_over_edge(side: Any) -> float | None:
            if not isinstance(side, Mapping):
                return None
            values, edge_value = side.get("values") or [], _num(side.get("edge"))
            top = _num(values[0]) if values else None
            return top / edge_value if top is not None and edge_value else None

        rules = [Rule(y=1 + margin, label="outlier threshold 1 + margin")] if margin else []
        blocks.append(
            _pair_chart(
                "Top singular value over the MP edge, per changed matrix",
                short_names([str(w["name"]) for w in changed]),
                [top_over_edge(w.get("base")) for w in changed],
                [top_over_edge(w.get("subject")) for w in changed],
                "σ_1 / MP edge",
                rules=rules,
            )
        )
    sites = _map(details.get("sites"))
    if sites:
        names = list(sites)
        blocks.append(
            _pair_chart(
                "Activation edge risk per site",
                names,
                [_num((sites[s] or {}).get("base")) for s in names],
                [_num((sites[s] or {}).get("subject")) for s in names],
                "edge risk σ_max / (√T + √d)",
                x_label="site",
                caption="Top singular value of the standardised activations over the Marchenko-Pastur edge of "
                "noise of the same shape; each family's maximum may grow at most (1 + ε) × the baseline's.",
            )
        )
    return blocks


# -- variance ----------------------------------------------------------------------------------------------------


def _variance(details: Mapping[str, Any], report: Mapping[str, Any]) -> list[Block]:
    sites = [s for s in details.get("sites") or [] if isinstance(s, Mapping) and s.get("site")]
    thresholds = _map(details.get("thresholds"))
    limit = _num(thresholds.get("max_drift"))
    blocks: list[Block] = []
    if sites:
        names = [str(s["site"]) for s in sites]
        index = [float(i) for i in range(len(sites))]
        series = [Series(name="drift", x=index, y=[_num(s.get("drift")) for s in sites])]
        if any(s.get("applied") for s in sites):
            series.append(Series(name="drift after correction", x=index, y=[_num(s.get("drift_after")) for s in sites]))
        rules = [Rule(y=limit, label="+max_drift"), Rule(y=-limit, label="−max_drift")] if limit else []
        blocks.append(
            Chart(
                kind="bar",
                title="Activation variance drift per site",
                x_label="site",
                y_label="drift ½ ln(var / var_base)",
                categories=names,
                series=series,
                rules=rules,
                caption="The drift is the log of the activation standard deviation's ratio to the baseline's; "
                "beyond ±max_drift a site fails unless a bounded rescaling repairs it.",
            )
        )
        blocks.append(
            Table(
                title="Sites",
                columns=[
                    "site",
                    "variance before",
                    "variance after",
                    "after correction",
                    "drift",
                    "proposed scale",
                    "applied",
                ],
                rows=[
                    [
                        str(s["site"]),
                        s.get("variance_base"),
                        s.get("variance"),
                        s.get("variance_after"),
                        s.get("drift"),
                        s.get("proposed_scale"),
                        bool(s.get("applied")),
                    ]
                    for s in sites
                ],
            )
        )
    check = details.get("predictive_check")
    if isinstance(check, Mapping):
        if check.get("evaluated"):
            text = (
                f"Held-out check of the proposed rescaling on {check.get('heldout_windows')} windows: mean NLL change "
                f"{fmt.number(check.get('mean'))} nats/token, {fmt.number(check.get('confidence'))} BCa interval "
                f"{fmt.interval(check.get('low'), check.get('high'))}; "
                + ("accepted." if check.get("accepted") else f"rejected: {check.get('reason')}.")
            )
        else:
            text = f"No held-out check: {check.get('reason') or 'not evaluated'}."
        blocks.append(Text(text=text))
    return blocks


# -- invariants --------------------------------------------------------------------------------------------------


def _invariants(details: Mapping[str, Any], report: Mapping[str, Any]) -> list[Block]:
    violations = _map(details.get("violations"))
    rows = [
        [
            kind.replace("_", " "),
            len(items) if isinstance(items, list) else items,
            ", ".join(map(str, items[:5])) if isinstance(items, list) else "",
        ]
        for kind, items in violations.items()
    ]
    blocks: list[Block] = [Table(title="Violations by kind", columns=["kind", "count", "first ones"], rows=rows)]
    probe = details.get("probe")
    if isinstance(probe, Mapping):
        if probe.get("checked"):
            blocks.append(
                Text(
                    text=f"Logits probe on {probe.get('source')} window(s) "
                    f"{', '.join(map(str, probe.get('ids') or []))}: "
                    f"{probe.get('scored')} positions scored, {probe.get('nonfinite')} not finite."
                )
            )
        else:
            blocks.append(Text(text="The logits probe did not run."))
    tied = details.get("tied_groups")
    if isinstance(tied, list) and tied:
        blocks.append(
            Text(text="Tied weights kept together: " + "; ".join(" = ".join(map(str, g)) for g in tied) + ".")
        )
    return blocks


VIEWS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[Block]]] = {
    "spectral": _spectral,
    "rmt": _rmt,
    "variance": _variance,
    "invariants": _invariants,
}
