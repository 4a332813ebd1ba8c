"""``guardchain verify``: recompute everything a certificate claims.

Checks, each reported with the field it concerns:

1. the schema (pydantic, ``extra="forbid"``);
2. every scalar leaf against its ``leaf_digests`` entry (names the exact field that changed), and the body digest;
3. per window set: Δ = subject − baseline per window; each arm's perplexity = exp(Σ w·nll / Σ w); the ratio =
   exp(Σ w·Δ / Σ w) = ppl_subject / ppl_baseline; window and token counts; the BCa CI recomputed from the stored
   arrays and bootstrap settings (same seed, same resamples);
4. pairing: unique window ids, preview and final disjoint, equal weights for both arms;
5. the policy: thresholds equal the stored tier's, the policy digest matches;
6. every gate: its measured value recomputed from the primary metric (``subject_finite`` from its presence, a
   guard's gate from that guard's report), its outcome from measured and threshold;
7. the decision: ``PASS`` if and only if every gate passed; an edit is ``rolled_back`` if and only if the
   catastrophe gate, the ``subject_finite`` gate or a guard's gate failed;
8. the guard overhead: the per-guard times add up to the stated share of the total; the uncorrected arm is paired
   with the final windows;
9. the signature, when there is one (against ``--pubkey`` when given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from guardchain.core.certificate import Certificate, PrimaryMetric, SplitEvaluation, body_digest, leaf_digests
from guardchain.core.config import format_path
from guardchain.core.statistics import bootstrap_interval

REL_TOL = 1e-9


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between what a certificate says and what verification recomputed."""

    field: str
    message: str

    def render(self) -> str:
        """``field: message``."""
        return f"{self.field}: {self.message}"


def _close(a: float | None, b: float | None, rel: float = REL_TOL) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def verify_certificate(
    data: dict[str, Any], *, public_key_hex: str | None = None
) -> tuple[Certificate | None, list[Mismatch]]:
    """Verify a certificate given as parsed JSON.

    :param public_key_hex: when given, the certificate must be signed by this Ed25519 key (raw, hex).
    :returns: the parsed certificate (``None`` if it does not match the schema) and every mismatch found.
    """
    try:
        cert = Certificate.model_validate(data)
    except ValidationError as exc:
        return None, [Mismatch(format_path(tuple(e["loc"])) or "(certificate)", e["msg"]) for e in exc.errors()]
    out: list[Mismatch] = []
    out += _check_integrity(data)
    pm = cert.primary_metric
    if pm is not None:
        for name, split in (("preview", pm.preview), ("final", pm.final)):
            out += _check_split(f"primary_metric.{name}", split, pm)
        overlap = set(pm.preview.unit_ids) & set(pm.final.unit_ids)
        if overlap:
            out.append(Mismatch("primary_metric", f"{len(overlap)} window(s) are in both preview and final"))
    out += _check_overhead(cert)
    out += _check_policy(cert)
    out += _check_gates(cert)
    out += _check_decision(cert)
    out += _check_signature(cert, public_key_hex)
    return cert, out


def _check_integrity(data: dict[str, Any]) -> list[Mismatch]:
    out = []
    stored = data.get("leaf_digests") or {}
    fresh = leaf_digests(data)
    for path in sorted(set(stored) | set(fresh)):
        if path not in fresh:
            out.append(Mismatch(path, "field is missing (it was sealed into the certificate)"))
        elif path not in stored:
            out.append(Mismatch(path, "field was added after the certificate was sealed"))
        elif stored[path] != fresh[path]:
            out.append(Mismatch(path, "value changed after the certificate was sealed"))
    if data.get("digest") != body_digest(data):
        out.append(Mismatch("digest", "does not match the SHA-256 of the certificate's canonical JSON"))
    return out


def _weighted_mean(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total if total else math.nan


def _check_split(prefix: str, split: SplitEvaluation, pm: PrimaryMetric) -> list[Mismatch]:
    out = []
    n = len(split.unit_ids)
    arrays = {
        "baseline.per_unit": split.baseline.per_unit,
        "baseline.unit_weights": split.baseline.unit_weights,
        "subject.per_unit": split.subject.per_unit,
        "subject.unit_weights": split.subject.unit_weights,
        "deltas": split.deltas,
    }
    for name, values in arrays.items():
        if len(values) != n:
            out.append(Mismatch(f"{prefix}.{name}", f"has {len(values)} values for {n} windows"))
    if out:
        return out
    if len(set(split.unit_ids)) != n:
        out.append(Mismatch(f"{prefix}.unit_ids", "window ids are not unique"))
    if split.n_windows != n:
        out.append(Mismatch(f"{prefix}.n_windows", f"says {split.n_windows}, the arrays hold {n} windows"))
    if split.baseline.unit_weights != split.subject.unit_weights:
        out.append(Mismatch(f"{prefix}.subject.unit_weights", "differ from the baseline's: windows not paired"))
    weights = split.baseline.unit_weights
    if not _close(split.n_tokens, sum(weights)):
        out.append(Mismatch(f"{prefix}.n_tokens", f"says {split.n_tokens}, the weights sum to {sum(weights)}"))
    for i, (b, s, d) in enumerate(zip(split.baseline.per_unit, split.subject.per_unit, split.deltas, strict=True)):
        if not _close(d, s - b):
            out.append(Mismatch(f"{prefix}.deltas[{i}]", f"is {d}, subject − baseline is {s - b}"))
    for arm in ("baseline", "subject"):
        side = getattr(split, arm)
        expected = math.exp(_weighted_mean(side.per_unit, weights))
        if not _close(side.ppl, expected):
            out.append(Mismatch(f"{prefix}.{arm}.ppl", f"is {side.ppl}, exp(weighted mean NLL) is {expected}"))
    deltas = [s - b for b, s in zip(split.baseline.per_unit, split.subject.per_unit, strict=True)]
    ratio = math.exp(_weighted_mean(deltas, weights))
    if not _close(split.ratio, ratio):
        out.append(Mismatch(f"{prefix}.ratio", f"is {split.ratio}, exp(mean Δ) is {ratio}"))
    low, high = bootstrap_interval(deltas, weights, pm.bootstrap)
    expected_low = None if low is None else math.exp(low)
    expected_high = None if high is None else math.exp(high)
    if not _close(split.ci_low, expected_low, 1e-7):
        out.append(Mismatch(f"{prefix}.ci_low", f"is {split.ci_low}, the recomputed BCa bound is {expected_low}"))
    if not _close(split.ci_high, expected_high, 1e-7):
        out.append(Mismatch(f"{prefix}.ci_high", f"is {split.ci_high}, the recomputed BCa bound is {expected_high}"))
    return out


def _check_policy(cert: Certificate) -> list[Mismatch]:
    from guardchain.core.policy import PROFILES, TIERS

    out = []
    if cert.policy.thresholds != TIERS[cert.policy.tier]:
        out.append(Mismatch("policy.thresholds", f"differ from tier {cert.policy.tier!r} of this guardchain"))
    if cert.policy.sizes != PROFILES[cert.policy.profile]:
        out.append(Mismatch("policy.sizes", f"differ from profile {cert.policy.profile!r} of this guardchain"))
    if cert.provenance.policy_digest != cert.policy.digest():
        out.append(Mismatch("provenance.policy_digest", "does not match the policy"))
    return out


def expected_gate_measurements(pm: PrimaryMetric) -> dict[str, Any]:
    """What each primary-metric gate measures, recomputed from the primary metric."""
    pairing_ok = (
        len(pm.preview.unit_ids) == pm.preview.n_windows
        and len(pm.final.unit_ids) == pm.final.n_windows
        and not set(pm.preview.unit_ids) & set(pm.final.unit_ids)
        and pm.preview.baseline.unit_weights == pm.preview.subject.unit_weights
        and pm.final.baseline.unit_weights == pm.final.subject.unit_weights
    )
    return {
        "primary_ratio_ci_upper": pm.final.ci_high,
        "preview_final_drift": pm.preview.ratio / pm.final.ratio,
        "pairing": pairing_ok,
        "catastrophe": pm.final.ratio,
    }


PRIMARY_GATES = ("primary_ratio_ci_upper", "preview_final_drift", "pairing", "catastrophe")


def gate_passes(comparison: str, measured: Any, threshold: Any) -> bool:
    """How a gate's outcome follows from its measured value and threshold (see :class:`Gate`)."""
    if comparison == "le":
        return measured is not None and threshold is not None and float(measured) <= float(threshold)
    if comparison == "within":
        return measured is not None and float(threshold[0]) <= float(measured) <= float(threshold[1])
    if comparison == "true":
        return measured is True
    if comparison == "not_fail":
        return bool(measured != "fail")
    raise ValueError(f"unknown comparison {comparison!r}")


def _check_gates(cert: Certificate) -> list[Mismatch]:
    out = []
    pm = cert.primary_metric
    expected: dict[str, Any] = {"subject_finite": pm is not None}
    if pm is not None:
        expected.update(expected_gate_measurements(pm))
    thresholds = cert.policy.thresholds
    expected_thresholds: dict[str, Any] = {
        "primary_ratio_ci_upper": thresholds.ratio_ci_upper_max,
        "preview_final_drift": [thresholds.drift_min, thresholds.drift_max],
        "catastrophe": thresholds.catastrophe_ratio,
    }
    names = [g.name for g in cert.gates]
    required = ("subject_finite", *PRIMARY_GATES) if pm is not None else ("subject_finite",)
    for name in required:
        if name not in names:
            out.append(Mismatch("gates", f"the {name!r} gate is missing"))
    if pm is None:
        out += [
            Mismatch("gates", f"the {n!r} gate has no primary metric to measure") for n in PRIMARY_GATES if n in names
        ]
    gate_guards = {
        f"guard:{i}:{g.get('guard')}": g.get("status") for i, g in enumerate(cert.guards) if g.get("mode") == "gate"
    }
    for name in gate_guards:
        if name not in names:
            out.append(Mismatch("gates", f"the gate-mode guard {name[6:]!r} has no gate"))
    for index, gate in enumerate(cert.gates):
        where = f"gates[{index}]"
        if gate.name in expected:
            want = expected[gate.name]
            same = want == gate.measured if isinstance(want, bool) else _close(gate.measured, want)  # type: ignore[arg-type]
            if not same:
                out.append(Mismatch(f"{where}.measured", f"{gate.name}: is {gate.measured}, recomputed {want}"))
        if gate.name in expected_thresholds and gate.threshold != expected_thresholds[gate.name]:
            out.append(
                Mismatch(
                    f"{where}.threshold",
                    f"{gate.name}: is {gate.threshold}, the policy says {expected_thresholds[gate.name]}",
                )
            )
        if gate.name.startswith("guard:") and gate_guards.get(gate.name) != gate.measured:
            out.append(
                Mismatch(f"{where}.measured", f"{gate.name}: the guard report says {gate_guards.get(gate.name)!r}")
            )
        if gate_passes(gate.comparison, gate.measured, gate.threshold) != gate.passed:
            out.append(
                Mismatch(
                    f"{where}.passed",
                    f"{gate.name}: measured {gate.measured} against "
                    f"{gate.threshold} ({gate.comparison}) does not give passed={gate.passed}",
                )
            )
    return out


def _check_decision(cert: Certificate) -> list[Mismatch]:
    out = []
    all_passed = all(gate_passes(g.comparison, g.measured, g.threshold) for g in cert.gates)
    if (cert.verdict == "PASS") != all_passed:
        out.append(Mismatch("verdict", f"is {cert.verdict}, but the gates say {'PASS' if all_passed else 'FAIL'}"))
    must_roll_back = any(
        not gate_passes(g.comparison, g.measured, g.threshold)
        and (g.name in ("catastrophe", "subject_finite") or g.name.startswith("guard:"))
        for g in cert.gates
    )
    if cert.rolled_back and not (must_roll_back and cert.mode == "edit"):
        out.append(Mismatch("rolled_back", "is true, but no rollback gate failed on an edit"))
    if must_roll_back and cert.mode == "edit" and not cert.rolled_back:
        out.append(Mismatch("rolled_back", "is false, but a rollback gate failed on an edit"))
    return out


def _check_overhead(cert: Certificate) -> list[Mismatch]:
    overhead = cert.guard_overhead
    if overhead is None:
        return [Mismatch("guard_overhead", "is missing, but guards ran")] if cert.guards else []
    out = []
    total = cert.timing.get("total_s")
    share = sum(overhead.guard_time_s.values()) / total if total else 0.0
    if not _close(overhead.guard_share, round(share, 4), 1e-3):
        out.append(Mismatch("guard_overhead.guard_share", f"is {overhead.guard_share}, the times give {share:.4f}"))
    for key, value in overhead.guard_time_s.items():
        if cert.timing.get(key) != value:
            out.append(
                Mismatch(f"guard_overhead.guard_time_s.{key}", f"is {value}, timing says {cert.timing.get(key)}")
            )
    applied = sum(1 for g in cert.guards for a in g.get("actions", []) if a.get("applied"))
    if overhead.corrections_applied != applied:
        out.append(
            Mismatch(
                "guard_overhead.corrections_applied", f"is {overhead.corrections_applied}, the reports hold {applied}"
            )
        )
    arm = overhead.uncorrected_final
    if arm is not None:
        if applied == 0:
            out.append(Mismatch("guard_overhead.uncorrected_final", "is present, but no correction was applied"))
        if cert.primary_metric is not None and arm.unit_weights != cert.primary_metric.final.baseline.unit_weights:
            out.append(Mismatch("guard_overhead.uncorrected_final.unit_weights", "are not the final windows' weights"))
        expected = math.exp(_weighted_mean(arm.per_unit, arm.unit_weights))
        if not _close(arm.ppl, expected):
            out.append(Mismatch("guard_overhead.uncorrected_final.ppl", f"is {arm.ppl}, exp(mean NLL) is {expected}"))
    return out


def _check_signature(cert: Certificate, public_key_hex: str | None) -> list[Mismatch]:
    if cert.signature is None:
        return [Mismatch("signature", "the certificate is not signed")] if public_key_hex else []
    if public_key_hex and cert.signature.public_key.lower() != public_key_hex.lower():
        return [Mismatch("signature.public_key", "was made with another key than the one given")]
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:  # pragma: no cover - depends on the environment
        return [Mismatch("signature", "cannot be checked: install 'cryptography' (guardchain-core[sign])")]
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(cert.signature.public_key))
        key.verify(bytes.fromhex(cert.signature.value), cert.digest.encode())
    except (InvalidSignature, ValueError):
        return [Mismatch("signature.value", "does not verify against the digest")]
    return []
