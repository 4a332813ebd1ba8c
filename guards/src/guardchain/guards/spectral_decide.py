"""The decision of ``spectral``, from its recorded evidence to its report; and its verifier. No torch.

**Evidence** (what :class:`~guardchain.guards.spectral.SpectralGuard` measured): for every matrix whose value
changed (its sketch differs from the baseline's), ``sigma_1`` and the stable rank before and after (``None``: the
matrix is not finite) and the Lanczos steps; per family the number of matrices compared; the matrices skipped
(missing or reshaped). A matrix whose value did not change has the baseline's spectrum by construction, so its log
ratios are exactly 0, ``z = 0`` and ``p = 1``: the family's count is all the evidence it needs.

**Decision** (:func:`build_report`, used by the guard and by :func:`verify_report`): log ratios (dead-banded), z
against the family's null scale, per-matrix Bonferroni p, Simes per family, Benjamini-Hochberg across families,
violations, the budget, the caps (``W <- W exp(kappa tau - l_sigma)``; applied in gate mode within budget),
findings, measurements — formulas in :mod:`guardchain.guards.spectral`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import Field

from guardchain.core.results import Finding, GuardAction, GuardMode, GuardReport, GuardStatus
from guardchain.guards.codes import FindingCode
from guardchain.guards.reporting import build_report as assemble
from guardchain.guards.reporting import finding, finite_or_none
from guardchain.guards.spectral_config import SpectralConfig
from guardchain.guards.stats import benjamini_hochberg, simes, two_sided_p
from guardchain.guards.tiers import Family, SpectralPreset
from guardchain.guards.verifying import Evidence, EvidenceError, Mismatch, verify_with

NAME = "spectral"

#: the spectral estimator's description (recorded in the report)
ESTIMATOR_TOL = 1e-5


class MatrixEvidence(Evidence):
    """One changed matrix: its spectrum's summary before and after (``None``: not finite, no spectrum)."""

    name: str
    family: Family
    sigma_base: float | None = Field(ge=0)
    sigma: float | None = Field(ge=0)
    srank_base: float | None = Field(ge=0)
    srank: float | None = Field(ge=0)
    lanczos_steps: int = Field(ge=0)


class FamilyEvidence(Evidence):
    """A family's number of compared matrices (changed or not)."""

    count: int = Field(ge=0)


class SpectralEvidence(Evidence):
    """Everything the decision reads (see the module docstring)."""

    families: dict[Family, FamilyEvidence]
    matrices: list[MatrixEvidence]
    skipped: list[str]


@dataclass(frozen=True)
class _Change:
    evidence: MatrixEvidence
    finite: bool
    log_sigma: float
    log_srank: float
    raw_log_sigma: float
    raw_log_srank: float
    z_sigma: float
    z_srank: float
    p: float

    @property
    def name(self) -> str:
        return self.evidence.name

    @property
    def family(self) -> Family:
        return self.evidence.family

    def row(self) -> dict[str, Any]:
        e = self.evidence
        return {
            "name": e.name,
            "family": e.family,
            "finite": self.finite,
            "log_sigma_ratio": finite_or_none(self.log_sigma),
            "log_srank_ratio": finite_or_none(self.log_srank),
            "raw_log_sigma_ratio": finite_or_none(self.raw_log_sigma),
            "raw_log_srank_ratio": finite_or_none(self.raw_log_srank),
            "z_sigma": finite_or_none(self.z_sigma),
            "z_srank": finite_or_none(self.z_srank),
            "p": self.p,
            "sigma_base": e.sigma_base,
            "sigma": e.sigma,
            "srank_base": e.srank_base,
            "srank": e.srank,
            "lanczos_steps": e.lanczos_steps,
        }


def thresholds(config: SpectralConfig) -> SpectralPreset:
    """The tier's preset with the config's overrides."""
    resolved = config.thresholds()
    assert isinstance(resolved, SpectralPreset)
    return resolved


def log_ratio(value: float, base: float, deadband: float) -> float:
    """``ln(value / base)``, 0 when ``|ln| <= deadband``; ``+-inf`` when one side is 0 and the other is not."""
    if base <= 0.0 or value <= 0.0:
        return 0.0 if value == base else math.copysign(math.inf, value - base)
    ratio = math.log(value / base)
    return 0.0 if abs(ratio) <= deadband else ratio


def _compare(e: MatrixEvidence, t: SpectralPreset) -> _Change:
    if e.sigma_base is None or e.sigma is None or e.srank_base is None or e.srank is None:
        nan = math.nan
        return _Change(e, False, nan, nan, nan, nan, math.inf, math.inf, 0.0)
    log_sigma = log_ratio(e.sigma, e.sigma_base, t.deadband)
    log_srank = log_ratio(e.srank, e.srank_base, t.deadband)
    z_sigma = log_sigma / t.sigma_scale[e.family]
    z_srank = log_srank / t.srank_scale[e.family]
    p = min(1.0, 2.0 * min(two_sided_p(z_sigma), two_sided_p(z_srank)))
    raw_sigma = log_ratio(e.sigma, e.sigma_base, 0.0)
    raw_srank = log_ratio(e.srank, e.srank_base, 0.0)
    return _Change(e, True, log_sigma, log_srank, raw_sigma, raw_srank, z_sigma, z_srank, p)


def build_report(evidence: SpectralEvidence, config: SpectralConfig) -> GuardReport:
    """The report of ``spectral`` from its evidence and config (see the module docstring).

    :raises EvidenceError: a matrix of a family the config does not measure, or a family whose count is below its
        recorded changed matrices.
    """
    t = thresholds(config)
    mode = GuardMode(config.mode)
    for family, fam in evidence.families.items():
        if family not in config.families:
            raise EvidenceError(f"details.families.{family}", f"is not among the measured families {config.families}")
        changed = sum(1 for m in evidence.matrices if m.family == family)
        if fam.count < changed:
            raise EvidenceError(f"details.families.{family}.count", f"is {fam.count}, below its {changed} changed")
    for index, m in enumerate(evidence.matrices):
        if m.family not in evidence.families:
            raise EvidenceError(f"details.matrices[{index}].family", f"{m.family!r} has no count in details.families")
    changes = [_compare(m, t) for m in evidence.matrices]
    family_p: dict[str, float] = {}
    for family, fam in sorted(evidence.families.items()):  # a Family is a str: BH ranks families by name on ties
        members = [c for c in changes if c.family == family]
        unchanged = [1.0] * (fam.count - len(members))  # z = 0 exactly, p = 1 (see the module docstring)
        family_p[family] = 0.0 if any(not c.finite for c in members) else simes([c.p for c in members] + unchanged)
    selected = benjamini_hochberg(family_p, t.alpha)
    violations = [c for c in changes if not c.finite or (c.family in selected and _exceeds(c, t))]
    findings, actions = _decide(violations, t, mode)
    return _report(evidence, config, t, mode, changes, violations, findings, actions, family_p, selected)


def _exceeds(change: _Change, t: SpectralPreset) -> bool:
    kappa = t.kappa[change.family]
    return abs(change.z_sigma) > kappa or abs(change.z_srank) > kappa


def _decide(violations: list[_Change], t: SpectralPreset, mode: GuardMode) -> tuple[list[Finding], list[GuardAction]]:
    over_budget = len(violations) > t.max_caps
    findings: list[Finding] = []
    actions: list[GuardAction] = []
    if over_budget:
        findings.append(
            finding(
                FindingCode.SPEC_BUDGET,
                GuardStatus.FAIL,
                mode,
                f"{len(violations)} matrices violate their caps, more than max_caps={t.max_caps}: not corrected",
                "model",
                violations=len(violations),
                max_caps=t.max_caps,
            )
        )
    severity = GuardStatus.FAIL if over_budget else GuardStatus.WARN
    for change in violations:
        if not change.finite:
            findings.append(
                finding(
                    FindingCode.SPEC_NONFINITE,
                    GuardStatus.FAIL,
                    mode,
                    f"{change.name} is not finite: its spectrum is undefined",
                    change.name,
                )
            )
            continue
        family = change.family
        kappa = t.kappa[family]
        if change.z_sigma > kappa:
            cap = kappa * t.sigma_scale[family]
            scale = math.exp(cap - change.log_sigma)
            apply = mode == GuardMode.GATE and not over_budget
            actions.append(
                GuardAction(
                    kind="spectral_cap",
                    target=change.name,
                    applied=apply,
                    parameters={"scale": scale, "log_sigma_ratio": change.log_sigma, "cap_log_ratio": cap},
                    reason=f"sigma_1 grew by {math.exp(change.log_sigma):.4g}x (z={change.z_sigma:.3g} > "
                    f"kappa={kappa:g}); rescaled to the cap exp({cap:.3g})",
                )
            )
            verb = "rescaled to its cap" if apply else "would be rescaled to its cap"
            findings.append(
                finding(
                    FindingCode.SPEC_SIGMA,
                    severity,
                    mode,
                    f"{change.name}: sigma_1 x{math.exp(change.log_sigma):.4g} vs its baseline "
                    f"(z={change.z_sigma:.3g}); {verb}",
                    change.name,
                    log_sigma_ratio=change.log_sigma,
                    z_sigma=change.z_sigma,
                    scale=scale,
                )
            )
        else:
            code = FindingCode.SPEC_SIGMA if abs(change.z_sigma) > kappa else FindingCode.SPEC_SRANK
            findings.append(
                finding(
                    code,
                    severity,
                    mode,
                    f"{change.name}: sigma_1 x{math.exp(change.log_sigma):.4g}, stable rank "
                    f"x{math.exp(change.log_srank):.4g} vs its baseline (z={change.z_sigma:.3g}, "
                    f"{change.z_srank:.3g}); not correctable by rescaling",
                    change.name,
                    log_sigma_ratio=change.log_sigma,
                    log_srank_ratio=change.log_srank,
                    z_sigma=change.z_sigma,
                    z_srank=change.z_srank,
                )
            )
    return findings, actions


def _top(values: list[float]) -> float:
    return max((abs(v) for v in values), default=0.0)


def _report(
    evidence: SpectralEvidence,
    config: SpectralConfig,
    t: SpectralPreset,
    mode: GuardMode,
    changes: list[_Change],
    violations: list[_Change],
    findings: list[Finding],
    actions: list[GuardAction],
    family_p: dict[str, float],
    selected: set[str],
) -> GuardReport:
    finite = [c for c in changes if c.finite]
    measurements: dict[str, float] = {
        "matrices": sum(f.count for f in evidence.families.values()),
        "changed": len(changes),
        "violations": len(violations),
        "caps_applied": sum(1 for a in actions if a.applied),
        "max_abs_z_sigma": _top([c.z_sigma for c in finite]),
        "max_abs_z_srank": _top([c.z_srank for c in finite]),
        "max_abs_log_sigma_ratio": _top([c.log_sigma for c in finite]),
        "max_abs_log_srank_ratio": _top([c.log_srank for c in finite]),
        "nonfinite": len(changes) - len(finite),
    }
    families: dict[str, dict[str, Any]] = {}
    for name in sorted(family_p):
        family = cast(Family, name)
        members = [c for c in changes if c.family == family]
        good = [c for c in members if c.finite]
        ranked = sorted(good, key=lambda c: -max(abs(c.z_sigma), abs(c.z_srank)))
        families[family] = {
            "count": evidence.families[family].count,
            "changed": len(members),
            "p_simes": family_p[family],
            "selected": family in selected,
            "max_abs_z_sigma": _top([c.z_sigma for c in good]),
            "max_abs_z_srank": _top([c.z_srank for c in good]),
            "violations": sum(1 for c in violations if c.family == family),
            "kappa": t.kappa[family],
            "sigma_scale": t.sigma_scale[family],
            "srank_scale": t.srank_scale[family],
            "top": [c.name for c in ranked[:3]],
        }
        measurements[f"{family}.max_abs_z_sigma"] = families[family]["max_abs_z_sigma"]
        measurements[f"{family}.max_abs_z_srank"] = families[family]["max_abs_z_srank"]
    return assemble(
        NAME,
        mode,
        findings,
        actions=actions,
        measurements=measurements,
        details={
            "tier": config.tier,
            "thresholds": t.model_dump(mode="json"),
            "families": families,
            "violations": [c.name for c in violations],
            "matrices": [c.row() for c in changes],
            "skipped": list(evidence.skipped),
            "estimator": {
                "method": "golub-kahan-lanczos",
                "tol": ESTIMATOR_TOL,
                "exact_max_dim": config.exact_max_dim,
                "warm_start": "baseline top right singular vector",
            },
        },
    )


def verify_report(report: Mapping[str, Any], config: Mapping[str, Any]) -> list[Mismatch]:
    """The guard verifier of ``spectral`` (contract in :mod:`guardchain.guards.verifying`): rebuilds the report from
    its recorded spectra and the config's thresholds and names every field that differs."""
    return verify_with(
        report,
        config,
        guard=NAME,
        config_model=SpectralConfig,
        evidence_model=SpectralEvidence,
        rebuild=build_report,
        evidence_words="the recorded spectra",
    )
