"""The decision of ``invariants``, from its recorded evidence to its report; and its verifier. No torch.

**Evidence** (what :class:`~guardchain.guards.invariants.InvariantsGuard` found): the number of parameters; whether
the scope was checked and the declared scope (plan targets, names tied to them, the guards' announced
corrections); the tied groups; and every violation by kind — parameters missing, added, reshaped, retyped,
non-finite (with counts), ties broken, changes out of scope — and the probe batch's non-finite log-probabilities.

**Decision** (:func:`build_report`): one finding per violation, ``fail`` in gate mode and ``warn`` in monitor mode;
there is no threshold beyond the probe's length, so the verifier checks that the evidence is coherent (nothing out
of scope is in the declared scope; the probe ran exactly when ``check_logits``, on at most ``probe_tokens`` tokens
per row) and that the findings, status and counts are the ones it gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus
from guardchain.guards.codes import FindingCode
from guardchain.guards.invariants_config import InvariantsConfig
from guardchain.guards.reporting import build_report as assemble
from guardchain.guards.reporting import finding
from guardchain.guards.tiers import InvariantsPreset
from guardchain.guards.verifying import Evidence, EvidenceError, Mismatch, verify_with

NAME = "invariants"


class ShapeChange(Evidence):
    """A parameter whose shape changed."""

    name: str
    base: list[int]
    subject: list[int]


class DtypeChange(Evidence):
    """A parameter whose dtype changed."""

    name: str
    base: str
    subject: str


class NonfiniteTensor(Evidence):
    """A parameter (or ``buffer:<name>``) holding NaN or inf."""

    name: str
    nonfinite: int = Field(ge=1)
    numel: int = Field(ge=1)


class BrokenTie(Evidence):
    """A parameter no longer tied to the first of its group."""

    name: str
    tied_to: str


class Violations(Evidence):
    """Every violation found, by kind."""

    missing: list[str]
    added: list[str]
    shape_changed: list[ShapeChange]
    dtype_changed: list[DtypeChange]
    nonfinite: list[NonfiniteTensor]
    tie_broken: list[BrokenTie]
    out_of_scope: list[str]


class Probe(Evidence):
    """The probe batch (``checked: false`` when ``check_logits`` is off)."""

    checked: bool
    nonfinite: int | None = Field(default=None, ge=0)
    scored: int | None = Field(default=None, ge=0)
    source: str | None = None
    ids: list[str] | None = None
    tokens: list[int] | None = None
    output: Literal["token_logprobs", "class_logits"] = Field(
        default="token_logprobs",
        description="What was checked for finiteness: the per-token log-probabilities, or, for a model with a "
        "classifier head (no language-model head), its class logits.",
    )


class InvariantsEvidence(Evidence):
    """Everything the decision reads (see the module docstring)."""

    parameters: int = Field(ge=0)
    scope_checked: bool
    declared_scope: list[str] | None
    tied_groups: list[list[str]]
    baseline_nonfinite: list[str]
    violations: Violations
    probe: Probe


def thresholds(config: InvariantsConfig) -> InvariantsPreset:
    """The tier's preset with the config's overrides."""
    resolved = config.thresholds()
    assert isinstance(resolved, InvariantsPreset)
    return resolved


def _coherent(evidence: InvariantsEvidence, config: InvariantsConfig, t: InvariantsPreset) -> None:
    v = evidence.violations
    if evidence.scope_checked != (evidence.declared_scope is not None):
        raise EvidenceError("details.declared_scope", "is present exactly when the scope was checked")
    if not evidence.scope_checked and v.out_of_scope:
        raise EvidenceError("details.violations.out_of_scope", "names changes although the scope was not checked")
    inside = set(evidence.declared_scope or ()) & set(v.out_of_scope)
    if inside:
        raise EvidenceError("details.violations.out_of_scope", f"names {sorted(inside)[:3]}, in the declared scope")
    probe = evidence.probe
    if probe.checked != config.check_logits:
        raise EvidenceError("details.probe.checked", f"is {probe.checked}, but check_logits is {config.check_logits}")
    if probe.checked:
        if probe.nonfinite is None or probe.scored is None or probe.tokens is None:
            raise EvidenceError("details.probe", "does not record the probe's counts and tokens")
        if probe.nonfinite > probe.scored:
            raise EvidenceError("details.probe.nonfinite", f"{probe.nonfinite} of {probe.scored} scored")
        if any(n > t.probe_tokens or n < 2 for n in probe.tokens):
            raise EvidenceError("details.probe.tokens", f"rows must hold 2..probe_tokens={t.probe_tokens} tokens")


def build_report(evidence: InvariantsEvidence, config: InvariantsConfig) -> GuardReport:
    """The report of ``invariants`` from its evidence and config (see the module docstring).

    :raises EvidenceError: the evidence contradicts itself or the config.
    """
    t = thresholds(config)
    mode = GuardMode(config.mode)
    _coherent(evidence, config, t)
    v = evidence.violations
    fail = GuardStatus.FAIL
    findings: list[Finding] = []
    findings += [finding(FindingCode.INV_PARAM_MISSING, fail, mode, f"parameter {n} is gone", n) for n in v.missing]
    findings += [finding(FindingCode.INV_PARAM_ADDED, fail, mode, f"parameter {n} is new", n) for n in v.added]
    findings += [
        finding(FindingCode.INV_SHAPE, fail, mode, f"{c.name} changed shape from {c.base} to {c.subject}", c.name)
        for c in v.shape_changed
    ]
    findings += [
        finding(FindingCode.INV_DTYPE, fail, mode, f"{c.name} changed dtype {c.base} -> {c.subject}", c.name)
        for c in v.dtype_changed
    ]
    findings += [
        finding(
            FindingCode.INV_NONFINITE,
            fail,
            mode,
            f"{c.name} holds {c.nonfinite} non-finite value(s) (NaN or inf)",
            c.name,
            nonfinite=c.nonfinite,
            numel=c.numel,
        )
        for c in v.nonfinite
    ]
    findings += [
        finding(
            FindingCode.INV_TIE_BROKEN,
            fail,
            mode,
            f"{c.name} is no longer tied to {c.tied_to}: different storage and different values",
            c.name,
        )
        for c in v.tie_broken
    ]
    findings += [
        finding(FindingCode.INV_OUT_OF_SCOPE, fail, mode, f"{n} changed but is not in the edit's declared scope", n)
        for n in v.out_of_scope
    ]
    probe = evidence.probe
    if probe.checked and probe.nonfinite:
        findings.append(
            finding(
                FindingCode.INV_LOGITS,
                fail,
                mode,
                f"{probe.nonfinite} of {probe.scored} log-probabilities on the probe batch are not finite",
                "probe",
                nonfinite=probe.nonfinite,
                scored=float(probe.scored or 0),
            )
        )
    return assemble(
        NAME,
        mode,
        findings,
        measurements={
            "parameters": float(evidence.parameters),
            "violations": float(len(findings)),
            "nonfinite_tensors": float(len(v.nonfinite)),
            "out_of_scope": float(len(v.out_of_scope)),
            "tied_groups": float(len(evidence.tied_groups)),
        },
        details={
            "tier": config.tier,
            "thresholds": t.model_dump(mode="json"),
            "parameters": evidence.parameters,
            "scope_checked": evidence.scope_checked,
            "declared_scope": evidence.declared_scope,
            "tied_groups": evidence.tied_groups,
            "baseline_nonfinite": evidence.baseline_nonfinite,
            "violations": v.model_dump(mode="json"),
            "probe": probe.model_dump(mode="json", exclude_none=True),
        },
    )


def verify_report(report: Mapping[str, Any], config: Mapping[str, Any]) -> list[Mismatch]:
    """The guard verifier of ``invariants`` (contract in :mod:`guardchain.guards.verifying`): rebuilds the findings,
    status and counts from the recorded violations and names every field that differs."""
    return verify_with(
        report,
        config,
        guard=NAME,
        config_model=InvariantsConfig,
        evidence_model=InvariantsEvidence,
        rebuild=build_report,
        evidence_words="the recorded violations",
    )
