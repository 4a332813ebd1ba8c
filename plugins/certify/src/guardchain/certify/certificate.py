"""Certificate v2: what ``guardchain certify`` writes and ``guardchain verify`` checks.

Integrity has three layers:

* ``digest`` — SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of the certificate without its
  ``digest``, ``leaf_digests`` and ``signature`` fields;
* ``leaf_digests`` — a short SHA-256 per scalar leaf (``path -> 16 hex``) so that ``verify`` names the exact field
  that changed, not only that something did;
* ``signature`` (optional) — Ed25519 over the digest, with the public key, so a third party can check who issued it.
  The body names the signer's public key (``signed_by``), so a signature cannot be stripped without the digest
  changing.

Every derived number (ratios, perplexities, CIs, token counts, gate outcomes, guard statuses, verdict) is also
recomputed by :mod:`guardchain.certify.verify` from the stored arrays, settings and published policy.

v2 (this version) adds ``request``, ``signed_by``, the guard chain in the policy, and gates' ``rollback`` and
``interval``; ``verify`` refuses v1 certificates with a message saying so.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guardchain.certify.policy import Policy
from guardchain.certify.statistics import BootstrapSettings

CERTIFICATE_SCHEMA_VERSION: Literal[2] = 2
UNSIGNED_FIELDS = ("digest", "leaf_digests", "signature")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Arm(_Strict):
    """One model's per-window values on one window set.

    :ivar ppl: exp(Σ w_i nll_i / Σ w_i), the token-weighted perplexity.
    :ivar per_unit: mean NLL per window, nats/token, aligned with the split's ``unit_ids``.
    :ivar unit_weights: tokens scored per window.
    """

    ppl: float
    per_unit: list[float]
    unit_weights: list[float]


class SplitEvaluation(_Strict):
    """Baseline and subject on one window set (preview or final), paired window by window.

    :ivar ratio: exp(mean Δ) = ppl_subject / ppl_baseline (token-weighted).
    :ivar ci_low: lower end of the BCa interval of the ratio.
    :ivar deltas: per-window Δ = nll_subject − nll_baseline.
    """

    unit_ids: list[str]
    baseline: Arm
    subject: Arm
    deltas: list[float]
    ratio: float
    ci_low: float | None
    ci_high: float | None
    n_windows: int
    n_tokens: float


class PrimaryMetric(_Strict):
    """The decisive metric: perplexity (pseudo-perplexity for masked LMs) on paired windows."""

    kind: str
    mode: str
    preview: SplitEvaluation
    final: SplitEvaluation
    bootstrap: BootstrapSettings
    ci_half_width_log: float | None = Field(description="Half-width of the final CI of log(ratio).")
    n_final_for_target: int | None = Field(description="Final windows needed to reach the profile's target.")


class Gate(_Strict):
    """One gate: what was measured, against what, and the outcome.

    ``comparison`` says how ``passed`` follows from ``measured`` and ``threshold``: ``le`` (measured <= threshold),
    ``ge`` (measured >= threshold), ``within`` (threshold[0] <= measured <= threshold[1]), ``true`` (measured is
    true), ``not_fail`` (measured is not ``"fail"``).

    :ivar rollback: whether failing this gate rolls an edit back (the policy decides; ``verify`` checks it).
    :ivar interval: for a metric gate, the confidence interval (or ``[z, z]``) its bound was applied to.
    """

    name: str
    comparison: Literal["le", "ge", "within", "true", "not_fail"]
    measured: float | bool | str | None
    threshold: float | list[float] | None
    passed: bool
    rollback: bool = False
    interval: list[float | None] | None = None
    detail: str = ""


class GuardOverhead(_Strict):
    """What the guards cost and what their corrections changed.

    :ivar guard_time_s: wall time per guard instance (``guard:<position>:<name>_s``: prepare + after_edit +
        finalize), seconds.
    :ivar guard_share: Σ guard_time_s / timing.total_s, the fraction of the certification's wall time.
    :ivar corrections_applied: number of applied ``GuardAction`` over all reports.
    :ivar uncorrected_final: the subject on the final windows *without* the guards' corrections (``None`` when no
        correction was applied, or when it was not finite); the primary metric is the corrected subject.
    :ivar uncorrected_nonfinite: true when corrections were applied and the uncorrected subject was not finite.
    """

    guard_time_s: dict[str, float]
    guard_share: float
    corrections_applied: int
    uncorrected_final: Arm | None = None
    uncorrected_nonfinite: bool = False


class Provenance(_Strict):
    """What exactly was compared, with what software."""

    seeds: dict[str, int]
    baseline: dict[str, Any]
    subject: dict[str, Any]
    dataset: dict[str, Any]
    plugins: list[dict[str, Any]]
    config_digest: str
    policy_digest: str
    libraries: dict[str, str]
    device: str


class BaselineCacheRecord(_Strict):
    """Where the baseline's evaluation came from (:mod:`guardchain.certify.cache`).

    :ivar key: SHA-256 of the canonical JSON of ``inputs``: the cache entry's address.
    :ivar hit: true when the baseline's per-window results were read from the cache, false when they were
        evaluated here (and stored). Either way they are the same numbers: ``verify`` treats both alike.
    :ivar inputs: everything the key covers (weights digest, windows digest, adapter, metric, seed, library
        versions); ``verify`` recomputes the key from it and checks it against the provenance.
    """

    key: str
    hit: bool
    inputs: dict[str, Any]


class Signature(_Strict):
    """An Ed25519 signature over the UTF-8 bytes of ``digest``."""

    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str = Field(description="Raw 32-byte public key, hex.")
    value: str = Field(description="64-byte signature, hex.")


class Certificate(_Strict):
    """A certificate of one edit (or one subject checkpoint) against its baseline.

    ``verdict`` is ``PASS`` only if every gate passed; ``rolled_back`` says the weights of an edit were restored
    (verified by digest) because the catastrophe gate, the ``subject_finite`` gate or a gate-mode guard failed.
    """

    schema_version: Literal[2] = CERTIFICATE_SCHEMA_VERSION
    run_id: str
    created_at: str
    verdict: Literal["PASS", "FAIL"]
    rolled_back: bool
    mode: Literal["edit", "compare"]
    request: dict[str, Any] = Field(description="The certification request (baseline, subject, tier, profile, preset).")
    policy: Policy
    primary_metric: PrimaryMetric | None = Field(
        description="Absent only when the subject's outputs were not finite (the subject_finite gate failed)."
    )
    gates: list[Gate]
    edit: dict[str, Any] | None
    guards: list[dict[str, Any]]
    guard_overhead: GuardOverhead | None = None
    provenance: Provenance
    timing: dict[str, float]
    baseline_cache: BaselineCacheRecord | None = Field(
        default=None,
        description="The baseline cache entry the baseline's evaluation was read from or stored into; null when "
        "the certification ran without the cache.",
    )
    signed_by: str | None = Field(
        default=None,
        description="The signer's raw Ed25519 public key (hex), inside the digest: stripping the "
        "signature is then detected.",
    )
    digest: str = ""
    leaf_digests: dict[str, str] = Field(default_factory=dict)
    signature: Signature | None = None


def canonical_body(data: dict[str, Any]) -> bytes:
    """Canonical JSON of a certificate's content, without the integrity fields."""
    body = {k: v for k, v in data.items() if k not in UNSIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def body_digest(data: dict[str, Any]) -> str:
    """SHA-256 hex of :func:`canonical_body`."""
    return hashlib.sha256(canonical_body(data)).hexdigest()


def leaf_digests(data: dict[str, Any]) -> dict[str, str]:
    """``path -> first 16 hex of sha256(path=value)`` for every scalar leaf of the content."""
    out: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key], f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        else:
            encoded = json.dumps(value, sort_keys=True, allow_nan=False)
            out[path] = hashlib.sha256(f"{path}={encoded}".encode()).hexdigest()[:16]

    walk({k: v for k, v in data.items() if k not in UNSIGNED_FIELDS}, "")
    return out


def seal(certificate: Certificate) -> Certificate:
    """Return ``certificate`` with ``digest`` and ``leaf_digests`` filled in (signature dropped)."""
    data = certificate.model_dump(mode="json")
    return certificate.model_copy(
        update={"digest": body_digest(data), "leaf_digests": leaf_digests(data), "signature": None}
    )
