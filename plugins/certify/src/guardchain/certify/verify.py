"""``guardchain verify``: re-derive everything a certificate claims from its recorded measurements and the
published policy; trust nothing that can be recomputed.

Checks, each reported with the field it concerns:

1. the schema (pydantic, ``extra="forbid"``; v2 only) and, per scalar leaf, the ``leaf_digests`` and the body
   ``digest``;
2. the policy: thresholds and sizes equal this guardchain's tables for the tier and profile, the policy digest,
   and the guard chain — a ``tier`` chain is exactly the required guards in gate mode with the tier's default
   configs (checked against each guard's own config model), optionally followed by metric gates; the request
   agrees with the policy (tier, profile, guards, gates) and its digest with ``provenance.config_digest``;
3. each guard's report: it names its guard and mode, and its status and measurements are re-derived by the
   guard's own verifier (registered with the guard) from the report's recorded values and the recorded config;
4. per window set: Δ per window, each arm's perplexity, the ratio, window and token counts, and the BCa interval
   recomputed from the stored arrays — after checking the bootstrap settings against the profile (so a tampered
   ``n_resamples`` cannot make verification allocate without bound); the half-width and the windows needed for
   the target; pairing;
5. seeds, the dataset's window counts, the edit (its settings against its plan, its report against its plan, the
   weight digests against the changes it reports);
6. every gate, re-derived in full (:func:`guardchain.certify.gates.derive_gates`), then the verdict and the
   rollback;
7. the guard overhead;
8. the signature: ``signed_by`` (inside the digest) must match it; checked against ``--pubkey`` when given.

What cannot be checked is reported apart from mismatches (a signature with no trusted key to check it against, a
guard whose plugin is not installed): the command exits non-zero for it unless told to accept it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from guardchain.certify.cache import record_problems
from guardchain.certify.certificate import (
    CERTIFICATE_SCHEMA_VERSION,
    Certificate,
    PrimaryMetric,
    SplitEvaluation,
    body_digest,
    leaf_digests,
)
from guardchain.certify.gates import derive_gates, rollback_required
from guardchain.certify.pipeline import half_width_and_target
from guardchain.certify.policy import (
    PROFILES,
    TIER_GUARDS,
    TIERS,
    is_metric_gate,
    tier_guard_steps,
)
from guardchain.certify.statistics import BootstrapSettings, bootstrap_interval
from guardchain.core.errors import GuardchainError, describe_exception, format_path
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

REL_TOL = 1e-9


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between what a certificate says and what verification recomputed (or could not check)."""

    field: str
    message: str

    def render(self) -> str:
        """``field: message``."""
        return f"{self.field}: {self.message}"


@dataclass
class Verification:
    """The outcome of :func:`verify_certificate`.

    :ivar certificate: the parsed certificate, ``None`` when it does not match the schema.
    :ivar mismatches: disagreements; any one makes the certificate not intact.
    :ivar unchecked: what could not be checked (no trusted key for a present signature, a guard with no verifier).
    :ivar signature: ``none`` (unsigned), ``verified`` (against the given key), ``unchecked`` (valid for the key it
        names, which nobody vouched for), or ``invalid``.
    """

    certificate: Certificate | None
    mismatches: list[Mismatch] = field(default_factory=list)
    unchecked: list[Mismatch] = field(default_factory=list)
    signature: str = "none"


def _close(a: Any, b: Any, rel: float = REL_TOL) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
        return bool(a == b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def verify_certificate(
    data: Any, *, public_key_hex: str | None = None, registry: Registry | None = None
) -> Verification:
    """Verify a certificate given as parsed JSON (see the module docstring).

    :param public_key_hex: the trusted signer's Ed25519 public key (hex); the certificate must be signed by it.
    :param registry: where guard verifiers and config models are found (the CLI passes its own); without one,
        guard statuses are reported as unchecked.
    """
    if not isinstance(data, dict):
        return Verification(None, [Mismatch("(certificate)", "is not a JSON object")])
    version = data.get("schema_version")
    if version != CERTIFICATE_SCHEMA_VERSION:
        return Verification(
            None,
            [
                Mismatch(
                    "schema_version",
                    f"is {version!r}; this guardchain verifies version {CERTIFICATE_SCHEMA_VERSION} certificates",
                )
            ],
        )
    try:
        cert = Certificate.model_validate(data)
    except ValidationError as exc:
        return Verification(
            None, [Mismatch(format_path(tuple(e["loc"])) or "(certificate)", e["msg"]) for e in exc.errors()]
        )
    result = Verification(cert)
    checks: list[tuple[str, Callable[[], list[Mismatch]]]] = [
        ("digest", lambda: _check_integrity(data)),
        ("policy", lambda: _check_policy(cert, registry, result)),
        ("guards", lambda: _check_guards(cert, registry, result)),
        ("primary_metric", lambda: _check_primary(cert)),
        ("provenance", lambda: _check_provenance(cert)),
        (
            "baseline_cache",
            lambda: [Mismatch(f, m) for f, m in record_problems(data.get("baseline_cache"), data["provenance"])],
        ),
        ("edit", lambda: _check_edit(cert)),
        ("gates", lambda: _check_gates(cert)),
        ("guard_overhead", lambda: _check_overhead(cert)),
        ("signature", lambda: _check_signature(cert, public_key_hex, result)),
    ]
    for where, check in checks:
        try:
            result.mismatches += check()
        except Exception as exc:  # a malformed value a check did not foresee: not intact, never a crash
            result.mismatches.append(Mismatch(where, f"cannot be checked: {describe_exception(exc)}"))
    return result


def _check_integrity(data: dict[str, Any]) -> list[Mismatch]:
    out = []
    try:
        fresh = leaf_digests(data)
        body = body_digest(data)
    except ValueError as exc:
        return [Mismatch("(certificate)", f"holds a value JSON cannot represent: {exc}")]
    stored = data.get("leaf_digests") or {}
    for path in sorted(set(stored) | set(fresh)):
        if path not in fresh:
            out.append(Mismatch(path, "field is missing (it was sealed into the certificate)"))
        elif path not in stored:
            out.append(Mismatch(path, "field was added after the certificate was sealed"))
        elif stored[path] != fresh[path]:
            out.append(Mismatch(path, "value changed after the certificate was sealed"))
    if data.get("digest") != body:
        out.append(Mismatch("digest", "does not match the SHA-256 of the certificate's canonical JSON"))
    return out


# -- policy and guards -----------------------------------------------------------------------------------------


def _check_policy(cert: Certificate, registry: Registry | None, result: Verification) -> list[Mismatch]:
    policy, request = cert.policy, cert.request
    out = []
    if policy.thresholds != TIERS[policy.tier]:
        out.append(Mismatch("policy.thresholds", f"differ from tier {policy.tier!r} of this guardchain"))
    if policy.sizes != PROFILES[policy.profile]:
        out.append(Mismatch("policy.sizes", f"differ from profile {policy.profile!r} of this guardchain"))
    if cert.provenance.policy_digest != policy.digest():
        out.append(Mismatch("provenance.policy_digest", "does not match the policy"))
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    if cert.provenance.config_digest != hashlib.sha256(canonical.encode()).hexdigest():
        out.append(Mismatch("provenance.config_digest", "does not match the request"))
    for key in ("tier", "profile"):
        if request.get(key) != getattr(policy, key):
            out.append(Mismatch(f"request.{key}", f"is {request.get(key)!r}, the policy says {getattr(policy, key)!r}"))
    if cert.mode != ("compare" if request.get("subject") else "edit"):
        out.append(
            Mismatch(
                "mode", f"is {cert.mode!r}, but the request {'has' if request.get('subject') else 'has no'} subject"
            )
        )
    preset = request.get("preset") or {}
    if policy.primary_metric != (preset.get("metric", "") is not None):
        out.append(Mismatch("policy.primary_metric", "does not follow the request's metric"))
    guards = preset.get("guards")
    expected_kind = "tier" if guards is None else ("custom" if guards else "none")
    if policy.guard_chain != expected_kind:
        out.append(Mismatch("policy.guard_chain", f"is {policy.guard_chain!r}, the request asks for {expected_kind!r}"))
    gates = list(preset.get("gates") or [])
    steps = list(policy.guards)
    if len(gates) > len(steps):
        return [
            *out,
            Mismatch("policy.guards", f"hold {len(steps)} steps, fewer than the request's {len(gates)} gates"),
        ]
    head, tail = steps[: len(steps) - len(gates)], steps[len(steps) - len(gates) :]
    for index, (gate, step) in enumerate(zip(gates, tail, strict=True)):
        if not is_metric_gate(step.guard) or any(step.config.get(k) != v for k, v in gate.items()):
            out.append(Mismatch(f"policy.guards[{len(head) + index}]", f"is not the request's gates[{index}]"))
    if policy.guard_chain == "tier":
        out += _check_tier_chain(cert, head, registry, result)
    elif policy.guard_chain == "none" and head:
        out.append(Mismatch("policy.guards", "a certificate without a guard chain lists guards"))
    elif policy.guard_chain == "custom":
        declared = list(guards or [])
        same = len(head) == len(declared) and all(
            isinstance(d, Mapping)
            and step.guard == d.get("guard")
            and all(step.config.get(k) == v for k, v in (d.get("config") or {}).items())
            for step, d in zip(head, declared, strict=False)
        )
        if not same:
            out.append(Mismatch("policy.guards", "are not the request's guards"))
    return out


def _check_tier_chain(
    cert: Certificate, head: list[Any], registry: Registry | None, result: Verification
) -> list[Mismatch]:
    """A ``tier`` chain is exactly the required guards, in gate mode, with the tier's default configs."""
    if [s.guard for s in head] != list(TIER_GUARDS):
        return [Mismatch("policy.guards", f"are not the tier's required chain {', '.join(TIER_GUARDS)}")]
    out = []
    for index, (step, required) in enumerate(zip(head, tier_guard_steps(cert.policy.tier), strict=True)):
        spec = _guard_spec(registry, step.guard)
        if spec is None:
            result.unchecked.append(Mismatch(f"policy.guards[{index}].config", f"{step.guard} is not installed here"))
            continue
        expected = spec.config_model.model_validate(required.config).model_dump(mode="json")
        if step.config != expected:
            changed = sorted(k for k in set(expected) | set(step.config) if expected.get(k) != step.config.get(k))
            out.append(
                Mismatch(
                    f"policy.guards[{index}].config",
                    f"differs from the tier's default config of {step.guard} ({', '.join(changed)})",
                )
            )
    return out


def _guard_spec(registry: Registry | None, name: str) -> Any:
    if registry is None:
        return None
    try:
        return registry.get_spec(CapabilityKind.GUARD, name)
    except GuardchainError:
        return None


def _check_guards(cert: Certificate, registry: Registry | None, result: Verification) -> list[Mismatch]:
    """Each report names its guard and mode; its guard's verifier re-derives the rest."""
    steps = cert.policy.guards
    if len(cert.guards) != len(steps):
        return [Mismatch("guards", f"hold {len(cert.guards)} reports for {len(steps)} guards in the policy")]
    out = []
    for index, (report, step) in enumerate(zip(cert.guards, steps, strict=True)):
        where = f"guards[{index}]"
        bare = step.guard.rpartition(":")[2]
        if report.get("guard") != bare:
            out.append(Mismatch(f"{where}.guard", f"is {report.get('guard')!r}, the policy's guard is {bare!r}"))
        if report.get("mode") != step.config.get("mode"):
            out.append(
                Mismatch(f"{where}.mode", f"is {report.get('mode')!r}, its config says {step.config.get('mode')!r}")
            )
        verifier = _verifier(registry, step.guard)
        if verifier is None:
            result.unchecked.append(
                Mismatch(
                    where,
                    f"the status of {step.guard} cannot be re-derived here (its plugin is not installed "
                    "or registers no verifier)",
                )
            )
            continue
        for path, message in verifier(report, step.config):
            out.append(Mismatch(f"{where}.{path}", message))
    return out


def _verifier(
    registry: Registry | None, name: str
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[tuple[str, str]]] | None:
    spec = _guard_spec(registry, name)
    reference = spec.extras.get("verifier") if spec is not None else None
    if not reference:
        return None
    module, _, attr = reference.partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception:
        return None
    return target if callable(target) else None


# -- primary metric ---------------------------------------------------------------------------------------------


def _weighted_mean(values: list[float], weights: list[float]) -> float:
    total = math.fsum(weights)
    return math.fsum(v * w for v, w in zip(values, weights, strict=True)) / total if total else math.nan


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def _check_primary(cert: Certificate) -> list[Mismatch]:
    pm = cert.primary_metric
    if pm is not None and not cert.policy.primary_metric:
        return [Mismatch("primary_metric", "is present, but the policy certifies without one")]
    if pm is None:
        return []
    expected = BootstrapSettings(n_resamples=PROFILES[cert.policy.profile].n_resamples, seed=_seed(cert))
    if pm.bootstrap != expected:
        return [Mismatch("primary_metric.bootstrap", f"is not the profile's ({expected.model_dump(mode='json')})")]
    out = []
    for name, split in (("preview", pm.preview), ("final", pm.final)):
        out += _check_split(f"primary_metric.{name}", split, pm)
    if set(pm.preview.unit_ids) & set(pm.final.unit_ids):
        out.append(Mismatch("primary_metric", "a window is in both preview and final"))
    half, needed = half_width_and_target(
        pm.final.ci_low, pm.final.ci_high, pm.final.n_windows, cert.policy.sizes.target_half_width
    )
    if not _close(pm.ci_half_width_log, half, 1e-7):
        out.append(Mismatch("primary_metric.ci_half_width_log", f"is {pm.ci_half_width_log}, the CI gives {half}"))
    if pm.n_final_for_target != needed:
        out.append(Mismatch("primary_metric.n_final_for_target", f"is {pm.n_final_for_target}, the CI gives {needed}"))
    return out


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
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            out.append(Mismatch(f"{prefix}.{name}[{bad[0]}]", "is not a finite number"))
    if out:
        return out
    if len(set(split.unit_ids)) != n:
        out.append(Mismatch(f"{prefix}.unit_ids", "window ids are not unique"))
    if split.n_windows != n:
        out.append(Mismatch(f"{prefix}.n_windows", f"says {split.n_windows}, the arrays hold {n} windows"))
    if split.baseline.unit_weights != split.subject.unit_weights:
        out.append(Mismatch(f"{prefix}.subject.unit_weights", "differ from the baseline's: windows not paired"))
    weights = split.baseline.unit_weights
    if any(w <= 0 for w in weights):
        return [*out, Mismatch(f"{prefix}.baseline.unit_weights", "a window has no scored token")]
    if not _close(split.n_tokens, math.fsum(weights)):
        out.append(Mismatch(f"{prefix}.n_tokens", f"says {split.n_tokens}, the weights sum to {sum(weights)}"))
    for i, (b, s, d) in enumerate(zip(split.baseline.per_unit, split.subject.per_unit, split.deltas, strict=True)):
        if not _close(d, s - b):
            out.append(Mismatch(f"{prefix}.deltas[{i}]", f"is {d}, subject − baseline is {s - b}"))
    for arm in ("baseline", "subject"):
        side = getattr(split, arm)
        expected = _exp(_weighted_mean(side.per_unit, weights))
        if not _close(side.ppl, expected):
            out.append(Mismatch(f"{prefix}.{arm}.ppl", f"is {side.ppl}, exp(weighted mean NLL) is {expected}"))
    deltas = [s - b for b, s in zip(split.baseline.per_unit, split.subject.per_unit, strict=True)]
    ratio = _exp(_weighted_mean(deltas, weights))
    if not _close(split.ratio, ratio):
        out.append(Mismatch(f"{prefix}.ratio", f"is {split.ratio}, exp(mean Δ) is {ratio}"))
    low, high = bootstrap_interval(deltas, weights, pm.bootstrap)
    expected_low = None if low is None else _exp(low)
    expected_high = None if high is None else _exp(high)
    if not _close(split.ci_low, expected_low, 1e-7):
        out.append(Mismatch(f"{prefix}.ci_low", f"is {split.ci_low}, the recomputed BCa bound is {expected_low}"))
    if not _close(split.ci_high, expected_high, 1e-7):
        out.append(Mismatch(f"{prefix}.ci_high", f"is {split.ci_high}, the recomputed BCa bound is {expected_high}"))
    return out


# -- provenance and edit ----------------------------------------------------------------------------------------


def _seed(cert: Certificate) -> int:
    seed = (cert.request.get("preset") or {}).get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else -1


def _check_provenance(cert: Certificate) -> list[Mismatch]:
    out = []
    seed = _seed(cert)
    for key, value in cert.provenance.seeds.items():
        if value != seed:
            out.append(Mismatch(f"provenance.seeds.{key}", f"is {value}, the run's seed is {seed}"))
    config = cert.provenance.dataset.get("config") or {}
    if config.get("seed", seed) != seed:
        out.append(Mismatch("provenance.dataset.config.seed", f"is {config.get('seed')}, the run's seed is {seed}"))
    sizes = cert.policy.sizes
    asked = (cert.request.get("preset") or {}).get("dataset_config") or {}
    for key in ("seq_len", "n_preview", "n_final"):
        want = asked.get(key, getattr(sizes, key))
        if config.get(key) != want:
            out.append(Mismatch(f"provenance.dataset.config.{key}", f"is {config.get(key)}, the request gives {want}"))
        elif key != "seq_len" and isinstance(want, int) and want < getattr(sizes, key):
            out.append(Mismatch(f"provenance.dataset.config.{key}", f"is below the profile's {getattr(sizes, key)}"))
    pm = cert.primary_metric
    if pm is not None:
        for split in ("preview", "final"):
            count = getattr(pm, split).n_windows
            if config.get(f"n_{split}") != count:
                out.append(
                    Mismatch(
                        f"primary_metric.{split}.n_windows", f"is {count}, the dataset cut {config.get(f'n_{split}')}"
                    )
                )
    for arm in ("baseline", "subject"):
        ref = getattr(cert.provenance, arm).get("ref")
        if arm == "baseline" and ref != cert.request.get("baseline"):
            out.append(Mismatch("provenance.baseline.ref", "is not the request's baseline"))
        if arm == "subject" and cert.request.get("subject") and ref != cert.request.get("subject"):
            out.append(Mismatch("provenance.subject.ref", "is not the request's subject"))
    return out


def _check_edit(cert: Certificate) -> list[Mismatch]:
    edit = cert.edit
    if edit is None:
        return [Mismatch("edit", "is missing")]
    out = []
    plan, report = edit.get("plan") or {}, edit.get("report") or {}
    targets = set(plan.get("targets") or [])
    changed = report.get("modules_changed") or []
    outside = [name for name in changed if name not in targets]
    if outside:
        out.append(Mismatch("edit.report.modules_changed", f"{outside[0]} is not a target of the plan"))
    per_module = report.get("per_module") or {}
    if per_module and report.get("parameters_changed") != sum(int(s.get("numel", 0)) for s in per_module.values()):
        out.append(Mismatch("edit.report.parameters_changed", "is not the sum of the changed modules' sizes"))
    if cert.mode == "edit":
        preset = cert.request.get("preset") or {}
        asked = str(preset.get("edit", ""))
        if edit.get("name") != asked.rpartition(":")[2]:
            out.append(Mismatch("edit.name", f"is {edit.get('name')!r}, the request asks for {asked!r}"))
        config = edit.get("config") or {}
        for key, value in (preset.get("edit_config") or {}).items():
            if config.get(key) != value:
                out.append(Mismatch(f"edit.config.{key}", f"is {config.get(key)!r}, the request asks for {value!r}"))
        details = plan.get("details") or {}
        for key in sorted(set(config) & set(details)):
            if config[key] != details[key]:
                out.append(Mismatch(f"edit.config.{key}", f"is {config[key]!r}, the plan applied {details[key]!r}"))
        moved = any(float(s.get("max_abs_error", 0.0)) > 0 for s in per_module.values())
        corrected = any(a.get("applied") for g in cert.guards for a in g.get("actions") or [])
        same = cert.provenance.subject.get("weights_sha256") == cert.provenance.baseline.get("weights_sha256")
        if per_module and same and (moved or corrected):
            out.append(
                Mismatch("provenance.subject.weights_sha256", "equals the baseline's, but the edit changed weights")
            )
        if per_module and not same and not (moved or corrected):
            out.append(
                Mismatch("provenance.subject.weights_sha256", "differs from the baseline's, but nothing changed")
            )
    return out


# -- gates and decision ----------------------------------------------------------------------------------------


def _check_gates(cert: Certificate) -> list[Mismatch]:
    out = []
    expected = derive_gates(cert.policy, cert.primary_metric, cert.guards)
    recorded = {g.name: (i, g) for i, g in enumerate(cert.gates)}
    for gate in expected:
        if gate.name not in recorded:
            out.append(Mismatch("gates", f"the {gate.name!r} gate is missing"))
            continue
        index, got = recorded[gate.name]
        for key in ("comparison", "measured", "threshold", "passed", "rollback", "interval"):
            want, have = getattr(gate, key), getattr(got, key)
            if not _same(want, have):
                out.append(Mismatch(f"gates[{index}].{key}", f"{gate.name}: is {have!r}, re-derived {want!r}"))
    extra = [name for name in recorded if name not in {g.name for g in expected}]
    out += [
        Mismatch(f"gates[{recorded[name][0]}]", f"the {name!r} gate has no basis in the certificate") for name in extra
    ]
    all_passed = all(g.passed for g in expected)
    if (cert.verdict == "PASS") != all_passed:
        out.append(Mismatch("verdict", f"is {cert.verdict}, but the gates say {'PASS' if all_passed else 'FAIL'}"))
    must_roll_back = cert.mode == "edit" and rollback_required(expected)
    if cert.rolled_back != must_roll_back:
        out.append(
            Mismatch("rolled_back", f"is {str(cert.rolled_back).lower()}, the gates say {str(must_roll_back).lower()}")
        )
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return _close(a, b)


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
        expected = _exp(_weighted_mean(arm.per_unit, arm.unit_weights))
        if not _close(arm.ppl, expected):
            out.append(Mismatch("guard_overhead.uncorrected_final.ppl", f"is {arm.ppl}, exp(mean NLL) is {expected}"))
    return out


def _check_signature(cert: Certificate, public_key_hex: str | None, result: Verification) -> list[Mismatch]:
    from guardchain.certify.signing import signature_valid

    signature = cert.signature
    if signature is None:
        if cert.signed_by is not None:
            result.signature = "invalid"
            return [
                Mismatch("signature", f"is missing, but the certificate says it was signed by {cert.signed_by[:16]}…")
            ]
        if public_key_hex:
            result.signature = "invalid"
            return [Mismatch("signature", "the certificate is not signed, but a signer's key was given")]
        return []
    if cert.signed_by is None or cert.signed_by.lower() != signature.public_key.lower():
        result.signature = "invalid"
        return [Mismatch("signed_by", "does not name the key of the signature")]
    if public_key_hex and signature.public_key.lower() != public_key_hex.lower():
        result.signature = "invalid"
        return [Mismatch("signature.public_key", "was made with another key than the one given")]
    try:
        valid = signature_valid(signature.public_key, signature.value, cert.digest)
    except GuardchainError as exc:  # no 'cryptography': the signature cannot be checked here
        result.signature = "unchecked"
        result.unchecked.append(Mismatch("signature", exc.problems[0].message))
        return []
    if not valid:
        result.signature = "invalid"
        return [Mismatch("signature.value", "does not verify against the digest")]
    if public_key_hex:
        result.signature = "verified"
    else:
        result.signature = "unchecked"
        result.unchecked.append(
            Mismatch("signature", "present, not checked: no trusted public key was given (--pubkey)")
        )
    return []
