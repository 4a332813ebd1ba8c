"""The decision of ``variance``, from its recorded evidence to its report; and its verifier. No torch (numpy for the
bootstrap).

**Evidence** (what :class:`~guardchain.guards.variance.VarianceGuard` measured): per site the matrix and bias that
produce it, and the activation variance of the baseline, of the subject, and of the subject after an applied repair
(``None``: not finite); for the paired predictive check, the held-out windows available (when a check was needed),
and when it ran, the per-window NLL differences ``delta_w`` (``None``: not finite), the bootstrap seed and the
windows' ids.

**Decision** (:func:`build_report`; the guard also calls :func:`propose` and :func:`predictive_check` to decide
what to measure and apply): ``drift = 1/2 ln(v / v_base)``; a proposed scale ``clamp(exp(-drift), 1 +- max_step)``
where ``|exp(-drift) - 1| >= deadband``; the BCa bound of ``mean(delta)`` (:func:`guardchain.guards.stats.
paired_interval`) accepts the scales when below ``-min_effect`` and 0; gate mode applies accepted scales; a drift
above ``max_drift`` after that fails — formulas in :mod:`guardchain.guards.variance`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from guardchain.core.results import Finding, GuardAction, GuardMode, GuardReport, GuardStatus
from guardchain.guards.codes import FindingCode
from guardchain.guards.reporting import build_report as assemble
from guardchain.guards.reporting import finding, finite_or_none
from guardchain.guards.stats import paired_interval
from guardchain.guards.tiers import VariancePreset
from guardchain.guards.variance_config import VarianceConfig
from guardchain.guards.verifying import Evidence, EvidenceError, Mismatch, Rows, verify_with

NAME = "variance"

#: held-out windows the predictive check needs at least
MIN_HELDOUT = 2


class SiteEvidence(Evidence):
    """One tapped site: what produces it, and its activation variances (``None``: not finite)."""

    site: str
    matrix: str | None
    bias: str | None
    variance_base: float | None = Field(ge=0)
    variance: float | None = Field(ge=0)
    variance_after: float | None = Field(default=None, ge=0)


class CheckEvidence(Evidence):
    """What the paired predictive check measured (absent keys: it did not get that far)."""

    heldout_windows: int | None = None
    seed: int | None = None
    deltas: list[float | None] | None = None
    source: str | None = None
    ids: list[str] | None = None
    tokens: list[int] | None = None


class VarianceEvidence(Evidence):
    """Everything the decision reads (see the module docstring)."""

    sites: list[SiteEvidence] = Field(min_length=1)
    predictive_check: CheckEvidence
    calibration: Rows


def thresholds(config: VarianceConfig) -> VariancePreset:
    """The tier's preset with the config's overrides."""
    resolved = config.thresholds()
    assert isinstance(resolved, VariancePreset)
    return resolved


def drift(base: float | None, now: float | None) -> float | None:
    """``1/2 ln(now / base)``; ``None`` when either is not finite; ``+-inf`` when one side is 0 and the other is not."""
    if base is None or now is None:
        return None
    if base <= 0.0 or now <= 0.0:
        return 0.0 if now == base else (math.inf if now > 0 else -math.inf)
    return 0.5 * math.log(now / base)


def propose(sites: list[SiteEvidence], t: VariancePreset) -> dict[str, tuple[float, float]]:
    """``site -> (ideal scale, proposed scale)`` for each finite site with a producing matrix whose ideal scale
    ``exp(-drift)`` is at least ``deadband`` away from 1; the proposal is clamped to ``1 +- max_step``."""
    out: dict[str, tuple[float, float]] = {}
    for s in sites:
        d = drift(s.variance_base, s.variance)
        if d is None or s.matrix is None:
            continue
        ideal = math.exp(-d)
        if abs(ideal - 1.0) >= t.deadband:
            out[s.site] = (ideal, min(max(ideal, 1.0 - t.max_step), 1.0 + t.max_step))
    return out


def needs_check(sites: list[SiteEvidence], proposals: Mapping[str, object]) -> bool:
    """Whether the predictive check must run: scales were proposed and every site's activations are finite."""
    return bool(proposals) and all(drift(s.variance_base, s.variance) is not None for s in sites)


def predictive_check(
    sites: list[SiteEvidence],
    proposals: Mapping[str, object],
    check: CheckEvidence,
    t: VariancePreset,
    config: VarianceConfig,
) -> dict[str, Any]:
    """The check's record: not evaluated (why), or the paired bound of the recorded ``deltas`` and whether it
    accepts the scales (``accepted``: the bound is below 0 and below ``-min_effect``).

    :raises EvidenceError: the check ran (or had to) but its evidence is missing or does not fit the config.
    """
    where = "details.predictive_check"
    if not proposals:
        return {"evaluated": False, "reason": "no scale proposed"}
    if not needs_check(sites, proposals):
        return {"evaluated": False, "reason": "non-finite activations"}
    count = check.heldout_windows
    if count is None:
        raise EvidenceError(f"{where}.heldout_windows", "is missing: scales were proposed, so the check was needed")
    if count > config.heldout_windows:
        raise EvidenceError(f"{where}.heldout_windows", f"is {count}, above the config's {config.heldout_windows}")
    if count < MIN_HELDOUT:
        return {
            "evaluated": False,
            "reason": f"only {max(count, 0)} held-out preview window(s); {MIN_HELDOUT} needed",
            "heldout_windows": count,
        }
    deltas, seed = check.deltas, check.seed
    if deltas is None or seed is None:
        raise EvidenceError(f"{where}.deltas", "is missing: the check ran on the held-out windows")
    if len(deltas) != count:
        raise EvidenceError(f"{where}.deltas", f"has {len(deltas)} values for {count} held-out windows")
    record: dict[str, Any] = {
        "evaluated": True,
        "heldout_windows": count,
        "seed": seed,
        "deltas": list(deltas),
        "source": check.source,
        "ids": check.ids,
        "tokens": check.tokens,
    }
    finite = [d for d in deltas if d is not None]
    if len(finite) != len(deltas):
        return {**record, "accepted": False, "reason": "non-finite held-out NLL"}
    bound = paired_interval(finite, confidence=t.confidence, sided=t.sided, n_resamples=config.n_resamples, seed=seed)
    accepted = bound.high < 0.0 and bound.high <= -t.min_effect
    reason = (
        f"bound {bound.high:.4g} <= -min_effect {-t.min_effect:g}"
        if accepted
        else f"the {t.sided}-sided bound {bound.high:.4g} of the mean NLL change is not below -min_effect "
        f"{-t.min_effect:g} (and 0)"
    )
    return {
        **record,
        "accepted": accepted,
        "reason": reason,
        "mean": bound.mean,
        "low": finite_or_none(bound.low),
        "high": bound.high,
        "method": bound.method,
        "sided": t.sided,
        "confidence": t.confidence,
        "min_effect": t.min_effect,
        "n_resamples": config.n_resamples,
    }


def build_report(evidence: VarianceEvidence, config: VarianceConfig) -> GuardReport:
    """The report of ``variance`` from its evidence and config (see the module docstring)."""
    t = thresholds(config)
    mode = GuardMode(config.mode)
    sites = evidence.sites
    drifts = {s.site: drift(s.variance_base, s.variance) for s in sites}
    if len(drifts) != len(sites):
        raise EvidenceError("details.sites", "names a site twice")
    findings: list[Finding] = [
        finding(FindingCode.VAR_NONFINITE, GuardStatus.FAIL, mode, f"{site}: non-finite activations", site)
        for site, d in drifts.items()
        if d is None
    ]
    proposals = propose(sites, t)
    check = predictive_check(sites, proposals, evidence.predictive_check, t, config)
    accepted = check.get("accepted") is True
    applied = accepted and mode == GuardMode.GATE
    actions = [
        GuardAction(
            kind="variance_scale",
            target=next(s.matrix for s in sites if s.site == site) or site,
            applied=applied,
            parameters={
                k: v
                for k, v in {"scale": scale, "ideal_scale": ideal, "drift": drifts[site]}.items()
                if v is not None and math.isfinite(v)
            },
            reason=f"restore the baseline variance at {site} (bounded step {t.max_step:g})",
        )
        for site, (ideal, scale) in sorted(proposals.items())
    ]
    after = {s.site: drift(s.variance_base, s.variance_after) for s in sites} if applied else dict(drifts)
    for site, d in after.items():
        if applied and d is None and drifts[site] is not None:
            findings.append(
                finding(FindingCode.VAR_NONFINITE, GuardStatus.FAIL, mode, f"{site}: non-finite after the repair", site)
            )
    violations = [site for site, d in after.items() if d is not None and abs(d) > t.max_drift]
    for site in violations:
        d = after[site]
        assert d is not None
        before = drifts[site]
        findings.append(
            finding(
                FindingCode.VAR_DRIFT,
                GuardStatus.FAIL,
                mode,
                f"{site}: activation std x{math.exp(d):.4g} vs baseline (|drift| {abs(d):.3g} > {t.max_drift:g})"
                + ("" if not proposals else " after the repair" if applied else ", not repaired"),
                site,
                drift=d,
                drift_before=before if before is not None else 0.0,
            )
        )
    if applied:
        findings.append(
            finding(
                FindingCode.VAR_REPAIRED,
                GuardStatus.WARN,
                mode,
                f"{len(proposals)} site(s) rescaled after the held-out NLL fell by {-float(check['mean']):.4g} "
                "nats/token",
                "model",
                sites=len(proposals),
            )
        )
    elif proposals:
        why = "monitor mode (the predictive check accepted them)" if accepted else check.get("reason")
        findings.append(
            finding(
                FindingCode.VAR_REJECTED,
                GuardStatus.PASS,
                mode,
                f"{len(proposals)} proposed scale(s) not applied: {why}",
                "model",
                sites=len(proposals),
            )
        )
    return _report(evidence, config, t, mode, drifts, after, proposals, applied, check, findings, actions, violations)


def _report(
    evidence: VarianceEvidence,
    config: VarianceConfig,
    t: VariancePreset,
    mode: GuardMode,
    drifts: dict[str, float | None],
    after: dict[str, float | None],
    proposals: dict[str, tuple[float, float]],
    applied: bool,
    check: dict[str, Any],
    findings: list[Finding],
    actions: list[GuardAction],
    violations: list[str],
) -> GuardReport:
    finite = [abs(d) for d in drifts.values() if d is not None and math.isfinite(d)]
    finite_after = [abs(d) for d in after.values() if d is not None and math.isfinite(d)]
    rows = []
    for s in evidence.sites:
        ideal, scale = proposals.get(s.site, (None, None))
        d, a = drifts[s.site], after[s.site]
        rows.append(
            {
                "site": s.site,
                "matrix": s.matrix,
                "bias": s.bias,
                "variance_base": s.variance_base,
                "variance": s.variance,
                "variance_after": s.variance_after if applied else None,
                "drift": None if d is None else finite_or_none(d),
                "ideal_scale": ideal,
                "proposed_scale": scale,
                "applied": applied and s.site in proposals,
                "drift_after": None if a is None else finite_or_none(a),
            }
        )
    measurements = {
        "sites": float(len(evidence.sites)),
        "max_abs_drift": max(finite, default=0.0),
        "max_abs_drift_after": max(finite_after, default=0.0),
        "violations": float(len(violations)),
        "proposed": float(len(proposals)),
        "applied": float(len(proposals) if applied else 0),
    }
    if "mean" in check:
        measurements["delta_nll_mean"] = float(check["mean"])
        measurements["delta_nll_bound"] = float(check["high"])
    return assemble(
        NAME,
        mode,
        findings,
        actions=actions,
        measurements=measurements,
        details={
            "tier": config.tier,
            "thresholds": t.model_dump(mode="json"),
            "sites": rows,
            "predictive_check": check,
            "calibration": evidence.calibration.model_dump(),
        },
    )


def verify_report(report: Mapping[str, Any], config: Mapping[str, Any]) -> list[Mismatch]:
    """The guard verifier of ``variance`` (contract in :mod:`guardchain.guards.verifying`): rebuilds the report from
    its recorded variances and held-out NLL differences and the config's thresholds, and names every field that
    differs. The bootstrap is re-run with the recorded seed (numpy only)."""
    return verify_with(
        report,
        config,
        guard=NAME,
        config_model=VarianceConfig,
        evidence_model=VarianceEvidence,
        rebuild=build_report,
        evidence_words="the recorded variances and held-out differences",
    )
