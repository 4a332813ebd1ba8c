"""The decision of ``rmt``, from its recorded evidence to its report; and its verifier. No torch.

**Evidence** (what :class:`~guardchain.guards.rmt.RMTGuard` measured):

* per activation site: its family and the edge risk ``r`` of the baseline and of the subject (``None``: the
  activations were not finite);
* per weight matrix the edit changed: the MP edge and the singular values above twice it (``values`` always
  holds ``sigma_1`` too), before and after (``None``: not finite; ``missing``: the subject has no matrix of that
  name and shape); per family, the same for the matrices the edit did not change, without names (their spectrum
  is the baseline's by construction, so they add the same count before and after).

**Decision** (:func:`build_report`): per family the edge risk ``max r`` against ``(1 + epsilon_f)`` times the
baseline's, and the outlier count ``C_f`` (singular values above ``(1 + margin)`` times the edge,
:func:`guardchain.guards.mp.outlier_count`) against ``|C_f - C_f,base| <= outlier_tolerance_f C_f,base +
outlier_slack`` — formulas in :mod:`guardchain.guards.rmt`. Spectra are recorded down to twice the edge, so
any allowed margin (``>= 1``) can be re-counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pydantic import Field

from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus
from guardchain.guards.codes import FindingCode
from guardchain.guards.mp import outlier_count
from guardchain.guards.reporting import build_report as assemble
from guardchain.guards.reporting import finding
from guardchain.guards.rmt_config import RMTConfig
from guardchain.guards.tiers import Family, RMTPreset
from guardchain.guards.verifying import Evidence, EvidenceError, Mismatch, Rows, verify_with

NAME = "rmt"


class SiteEvidence(Evidence):
    """One activation site: its family and edge risk before and after (``None``: not finite)."""

    family: Family
    base: float | None = Field(ge=0)
    subject: float | None = Field(ge=0)


class SpectrumEvidence(Evidence):
    """The top of one matrix's singular spectrum: its MP edge and every singular value above twice it."""

    edge: float = Field(ge=0)
    values: list[float] = Field(min_length=1)


class WeightEvidence(Evidence):
    """One matrix the edit changed (``None``: not finite; ``missing``: not measured on the subject)."""

    name: str
    family: Family
    base: SpectrumEvidence | None
    subject: SpectrumEvidence | None
    missing: bool = False


class WeightsEvidence(Evidence):
    """The weight spectra: named for the changed matrices, per family and unnamed for the unchanged ones."""

    changed: list[WeightEvidence]
    unchanged: dict[Family, list[SpectrumEvidence]]


class RMTEvidence(Evidence):
    """Everything the decision reads (see the module docstring)."""

    sites: dict[str, SiteEvidence]
    weights: WeightsEvidence
    calibration: Rows | None


def thresholds(config: RMTConfig) -> RMTPreset:
    """The tier's preset with the config's overrides."""
    resolved = config.thresholds()
    assert isinstance(resolved, RMTPreset)
    return resolved


def count(spectrum: SpectrumEvidence | None, margin: float) -> int:
    """Outliers of one recorded spectrum at ``margin`` (0 without a spectrum)."""
    return outlier_count(spectrum.values, spectrum.edge, margin) if spectrum is not None else 0


def build_report(evidence: RMTEvidence, config: RMTConfig) -> GuardReport:
    """The report of ``rmt`` from its evidence and config (see the module docstring).

    :raises EvidenceError: a site or matrix of a family the config does not measure.
    """
    t = thresholds(config)
    mode = GuardMode(config.mode)
    for site, entry in evidence.sites.items():
        if entry.family not in config.activation_sites:
            raise EvidenceError(f"details.sites.{site}.family", f"{entry.family!r} has no activation sites configured")
    weights = evidence.weights
    for index, w in enumerate(weights.changed):
        if w.family not in config.weight_families:
            raise EvidenceError(f"details.weights.changed[{index}].family", f"{w.family!r} is not measured")
    for family in weights.unchanged:
        if family not in config.weight_families:
            raise EvidenceError(f"details.weights.unchanged.{family}", f"{family!r} is not measured")
    findings: list[Finding] = []
    measurements: dict[str, float] = {}
    edge_details = _edge_risk(evidence.sites, t, mode, findings, measurements)
    outlier_details = _outliers(weights, t, mode, findings, measurements)
    measurements["violations"] = float(len(findings))
    return assemble(
        NAME,
        mode,
        findings,
        measurements=measurements,
        details={
            "tier": config.tier,
            "thresholds": t.model_dump(mode="json"),
            "edge_risk": edge_details,
            "outliers": outlier_details,
            "sites": {site: entry.model_dump(mode="json") for site, entry in evidence.sites.items()},
            "weights": weights.model_dump(mode="json"),
            "calibration": evidence.calibration.model_dump() if evidence.calibration is not None else None,
        },
    )


def _edge_risk(
    sites: Mapping[str, SiteEvidence],
    t: RMTPreset,
    mode: GuardMode,
    findings: list[Finding],
    measurements: dict[str, float],
) -> dict[str, dict[str, object]]:
    details: dict[str, dict[str, object]] = {}
    for family in sorted({entry.family for entry in sites.values()}):
        members = [(site, entry) for site, entry in sites.items() if entry.family == family]
        before = [entry.base for _, entry in members]
        after = [entry.subject for _, entry in members]
        if any(r is None for r in before) or any(r is None for r in after):
            bad = [site for site, entry in members if entry.subject is None]
            findings.append(
                finding(
                    FindingCode.RMT_NONFINITE,
                    GuardStatus.FAIL,
                    mode,
                    f"{family}: non-finite activations at {bad or 'the baseline'}",
                    family,
                )
            )
            continue
        r_base = max(r for r in before if r is not None)
        r_cur = max(r for r in after if r is not None)
        epsilon = t.epsilon[family]
        limit = (1.0 + epsilon) * r_base
        measurements[f"{family}.edge_risk_base"] = r_base
        measurements[f"{family}.edge_risk"] = r_cur
        measurements[f"{family}.edge_ratio"] = r_cur / r_base if r_base > 0 else 1.0
        deltas = sorted(
            ((cast(float, entry.subject) / entry.base - 1.0 if entry.base else 0.0, site) for site, entry in members),
            key=lambda item: -abs(item[0]),
        )
        details[family] = {
            "edge_risk_base": r_base,
            "edge_risk": r_cur,
            "epsilon": epsilon,
            "limit": limit,
            "sites": len(members),
            "top_site_deltas": [{"site": s, "relative_change": d} for d, s in deltas[:3]],
        }
        if r_base > 0 and r_cur > limit:
            findings.append(
                finding(
                    FindingCode.RMT_EDGE,
                    GuardStatus.FAIL,
                    mode,
                    f"{family}: activation edge risk {r_cur:.4g} > (1 + {epsilon:g}) x baseline {r_base:.4g}",
                    family,
                    edge_risk=r_cur,
                    edge_risk_base=r_base,
                    limit=limit,
                )
            )
    return details


def _outliers(
    weights: WeightsEvidence,
    t: RMTPreset,
    mode: GuardMode,
    findings: list[Finding],
    measurements: dict[str, float],
) -> dict[str, dict[str, object]]:
    details: dict[str, dict[str, object]] = {}
    families = {w.family for w in weights.changed} | set(weights.unchanged)
    for family in sorted(families):
        changed = [w for w in weights.changed if w.family == family]
        unchanged = weights.unchanged.get(family, [])
        broken = [w.name for w in changed if w.subject is None and not w.missing]
        if broken:
            findings.append(
                finding(
                    FindingCode.RMT_NONFINITE,
                    GuardStatus.FAIL,
                    mode,
                    f"{family}: non-finite weights in {broken}",
                    family,
                )
            )
            continue
        same = sum(count(s, t.margin) for s in unchanged)
        count_base = same + sum(count(w.base, t.margin) for w in changed)
        count_now = same + sum(count(w.subject, t.margin) for w in changed if not w.missing)
        tolerance = t.outlier_tolerance[family]
        allowed = tolerance * count_base + t.outlier_slack
        measurements[f"{family}.outliers_base"] = count_base
        measurements[f"{family}.outliers"] = count_now
        moves = sorted(
            ((count(w.subject, t.margin) - count(w.base, t.margin), w.name) for w in changed if not w.missing),
            key=lambda item: (-abs(item[0]), item[1]),
        )
        details[family] = {
            "outliers_base": count_base,
            "outliers": count_now,
            "allowed_change": allowed,
            "matrices": len(changed) + len(unchanged),
            "top_matrix_changes": [{"name": n, "change": c} for c, n in moves[:3] if c != 0],
        }
        if abs(count_now - count_base) > allowed:
            findings.append(
                finding(
                    FindingCode.RMT_OUTLIERS,
                    GuardStatus.FAIL,
                    mode,
                    f"{family}: {count_now} singular values beyond (1 + {t.margin:g}) x MP edge, baseline "
                    f"{count_base} (allowed change {allowed:.3g})",
                    family,
                    outliers=count_now,
                    outliers_base=count_base,
                    allowed_change=allowed,
                )
            )
    return details


def verify_report(report: Mapping[str, Any], config: Mapping[str, Any]) -> list[Mismatch]:
    """The guard verifier of ``rmt`` (contract in :mod:`guardchain.guards.verifying`): rebuilds the report from its
    recorded edge risks and spectra and the config's thresholds and names every field that differs."""
    return verify_with(
        report,
        config,
        guard=NAME,
        config_model=RMTConfig,
        evidence_model=RMTEvidence,
        rebuild=build_report,
        evidence_words="the recorded edge risks and spectra",
    )
