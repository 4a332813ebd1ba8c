"""``guardchain certify``: the built-in chain that turns an edit (or a second checkpoint) into a certificate.

load baseline -> windows -> baseline evaluation (preview, final) -> guards.prepare -> edit in place (or load the
subject) -> guards.after_edit / finalize -> subject evaluation on the identical windows -> paired comparison ->
gates -> rollback if the catastrophe gate or a gate-mode guard failed -> certificate (written atomically: the
output directory ends up holding a complete certificate or none).

The kernel names capabilities only through the registry (defaults: dataset ``kjv_excerpt``, metric ``ppl``, edit
``quant_rtn``, the guard chain :data:`DEFAULT_GUARDS`), so any plugin providing those names, or others given in a
preset, works.

Guards see the evaluation windows as ``context.data`` (they calibrate on the preview split) and the edit's plan as
``context.edit_plan``. When a guard applies a correction, the subject is evaluated twice, with and without the
corrections, and both are recorded (:class:`~guardchain.core.certificate.GuardOverhead`) with each guard's wall time.
A subject whose outputs are not finite (``GC-MODEL-NONFINITE``) fails the ``subject_finite`` gate: the certificate
says FAIL, carries no primary metric, and an edit is rolled back.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guardchain.core.certificate import (
    Arm,
    Certificate,
    Gate,
    GuardOverhead,
    PrimaryMetric,
    Provenance,
    SplitEvaluation,
    render_markdown,
    seal,
    sign,
)
from guardchain.core.config import problems_from_validation_error, read_chain_file
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError, Problem
from guardchain.core.kinds import CapabilityKind
from guardchain.core.policy import Policy, Profile, Tier, resolve_policy
from guardchain.core.registry import Registry
from guardchain.core.results import GuardMode, GuardReport, GuardStatus, MetricResult
from guardchain.core.runner import write_json_atomic
from guardchain.core.statistics import BootstrapSettings, PairedComparison, paired_comparison
from guardchain.core.verify import expected_gate_measurements

DEFAULT_GUARDS: tuple[str, ...] = ("invariants", "spectral", "rmt", "variance", "invariants")
"""The canonical guard chain: invariants first and last (the last one sees the other guards' corrections)."""


class GuardStep(BaseModel):
    """A guard of the certify chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    guard: str
    config: dict[str, Any] = Field(default_factory=dict)


class CertifyPreset(BaseModel):
    """What a ``--preset`` file may set (command-line options win over it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    adapter: str | None = None
    adapter_config: dict[str, Any] = Field(default_factory=dict)
    dataset: str = "kjv_excerpt"
    dataset_config: dict[str, Any] = Field(default_factory=dict)
    metric: str = "ppl"
    metric_config: dict[str, Any] = Field(default_factory=dict)
    edit: str = "quant_rtn"
    edit_config: dict[str, Any] = Field(default_factory=dict)
    guards: list[GuardStep] | None = Field(
        default=None, description="Guard chain in order; null means DEFAULT_GUARDS, [] certifies without guards."
    )
    seed: int = Field(default=0, ge=0)


class CertifyRequest(BaseModel):
    """Everything one certification needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    baseline: str
    subject: str | None = None
    tier: Tier = "balanced"
    profile: Profile = "dev"
    preset: CertifyPreset = Field(default_factory=CertifyPreset)
    out: Path


def load_preset(path: str | Path) -> CertifyPreset:
    """Read a preset file (YAML, TOML or JSON), reporting every problem with its path."""
    raw = read_chain_file(path)
    try:
        return CertifyPreset.model_validate(raw)
    except ValidationError as exc:
        raise GuardchainError(problems_from_validation_error(exc, model=CertifyPreset)) from exc


Progress = Callable[[str], None]
StepProgress = Callable[[str, int, int], None]


def certify(
    request: CertifyRequest,
    registry: Registry,
    *,
    progress: Progress | None = None,
    step_progress: StepProgress | None = None,
    signing_key_pem: bytes | None = None,
) -> Certificate:
    """Run the certify chain and write ``certificate.json`` and ``certificate.md`` into ``request.out``.

    :param progress: told the name of each stage as it starts.
    :param step_progress: told ``(task, done, total)`` by capabilities inside a stage (``RunContext.progress``).
    :param signing_key_pem: an Ed25519 private key (PEM); the certificate is signed before it is written.

    :raises GuardchainError: for bad input (unknown plugin, invalid config, missing checkpoint, mismatched
        subject, too few windows); nothing is written then.
    """
    say = progress or (lambda message: None)
    policy = resolve_policy(request.tier, request.profile)
    preset = request.preset
    run_id = uuid.uuid4().hex
    seed = preset.seed
    # Artifacts a step writes land in the staging directory that becomes ``request.out`` with the certificate.
    context = RunContext(
        run_id=run_id,
        seed=seed,
        out_dir=_staging_dir(request.out, run_id),
        registry=registry,
        progress=step_progress,
    )
    timing: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timing[name] = round(now - clock, 4)
        clock = now

    created = _create_all(request, registry, policy)
    adapter = created["adapter"].instance
    context.adapter = adapter
    _seed(seed)
    say(f"loading baseline {request.baseline}")
    handle = adapter.load(request.baseline, context)
    _seed_torch(seed)
    context.handle = handle
    subject_handle = handle
    if request.subject is not None:
        say(f"loading subject {request.subject}")
        subject_handle = adapter.load(request.subject, context)
        _check_compatible(adapter, handle, subject_handle, request)
    lap("load_s")

    say("cutting evaluation windows")
    windows = created["dataset"].instance.load(context)
    context.data = windows
    fingerprint = created["dataset"].instance.fingerprint()
    say("evaluating the baseline")
    baseline_eval = _evaluate(created, handle, windows, context)
    if baseline_eval is None:
        raise GuardchainError.single(
            ErrorCode.MODEL_NONFINITE,
            f"the baseline {request.baseline!r} itself gives non-finite log-probabilities: there is nothing to "
            "certify against",
        )
    baseline_digest = adapter.weights_digest(handle)
    lap("baseline_eval_s")

    guards = _GuardChain(created["guards"], timing)
    say("guards: prepare")
    guards.prepare(handle, context)
    lap("guards_prepare_s")

    edit_record: dict[str, Any] | None = None
    snapshot = None
    if request.subject is None:
        say(f"applying edit {created['edit'].spec.name}")
        snapshot = adapter.snapshot(handle)
        plan = created["edit"].instance.plan(handle, adapter.describe(handle))
        context.edit_plan = plan
        report = created["edit"].instance.apply(handle, plan)
        edit_record = {
            "name": created["edit"].spec.name,
            "distribution": created["edit"].spec.distribution,
            "config": created["edit"].config.model_dump(mode="json"),
            "plan": plan.model_dump(mode="json"),
            "report": report.model_dump(mode="json"),
        }
        lap("edit_s")

    say("guards: after edit")
    uncorrected = adapter.snapshot(subject_handle) if guards else None
    reports = guards.after_edit(subject_handle, context)
    context.edit_plan = None
    lap("guards_after_edit_s")

    say("evaluating the subject on the same windows")
    subject_eval = _evaluate(created, subject_handle, windows, context)
    subject_digest = adapter.weights_digest(subject_handle)
    lap("subject_eval_s")

    uncorrected_eval = None
    corrections = sum(1 for r in reports for a in r.actions if a.applied)
    if corrections and uncorrected is not None:
        say("evaluating the subject without the guards' corrections")
        corrected = adapter.snapshot(subject_handle)
        adapter.restore(subject_handle, uncorrected)
        uncorrected_eval = _evaluate(created, subject_handle, windows, context)
        adapter.restore(subject_handle, corrected)
        del corrected
        lap("uncorrected_eval_s")
    del uncorrected

    settings = BootstrapSettings(n_resamples=policy.sizes.n_resamples, seed=seed)
    primary = None
    if subject_eval is not None:
        preview = paired_comparison(baseline_eval["preview"], subject_eval["preview"], settings=settings)
        final = paired_comparison(baseline_eval["final"], subject_eval["final"], settings=settings)
        primary = _primary_metric(baseline_eval, preview, final, subject_eval, settings, policy)
    lap("statistics_s")
    gates = _gates(policy, primary, reports)

    rolled_back = False
    if snapshot is not None and rollback_required(gates):
        say("rolling the edit back")
        adapter.restore(handle, snapshot)
        restored = adapter.weights_digest(handle)
        if restored != baseline_digest:
            raise GuardchainError.single(
                ErrorCode.STEP_FAILED, "rollback did not restore the baseline weights bit for bit (digest differs)"
            )
        rolled_back = True
        lap("rollback_s")
    timing["total_s"] = round(time.perf_counter() - started, 4)

    certificate = Certificate(
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        verdict="PASS" if all(g.passed for g in gates) else "FAIL",
        rolled_back=rolled_back,
        mode="compare" if request.subject is not None else "edit",
        policy=policy,
        primary_metric=primary,
        gates=gates,
        edit=edit_record,
        guards=[r.model_dump(mode="json") for r in reports],
        guard_overhead=guards.overhead(timing, corrections, baseline_eval, uncorrected_eval) if guards else None,
        provenance=_provenance(
            request,
            registry,
            created,
            handle,
            subject_handle,
            windows,
            fingerprint,
            baseline_digest,
            subject_digest,
            policy,
            seed,
        ),
        timing=timing,
    )
    certificate = seal(certificate)
    if signing_key_pem is not None:
        certificate = sign(certificate, signing_key_pem)
    write_certificate(certificate, request.out)
    return certificate


class _GuardChain:
    """The guards of one certification, run in order, each timed (``timing["guard:<i>:<name>_s"]``)."""

    def __init__(self, created: list[Any], timing: dict[str, float]) -> None:
        self.created = created
        self.timing = timing

    def __bool__(self) -> bool:
        return bool(self.created)

    def _timed(self, index: int, call: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        try:
            return call()
        finally:
            key = f"guard:{index}:{self.created[index].spec.name}_s"
            self.timing[key] = round(self.timing.get(key, 0.0) + time.perf_counter() - began, 4)

    def prepare(self, baseline: Any, context: RunContext) -> None:
        for index, guard in enumerate(self.created):
            self._timed(index, partial(guard.instance.prepare, baseline, context))

    def after_edit(self, subject: Any, context: RunContext) -> list[GuardReport]:
        for index, guard in enumerate(self.created):
            self._timed(index, partial(guard.instance.after_edit, subject, context))
        reports = []
        for index, guard in enumerate(self.created):
            report = self._timed(index, partial(guard.instance.finalize, context))
            if not isinstance(report, GuardReport):
                raise GuardchainError.single(
                    ErrorCode.STEP_FAILED,
                    f"guard {guard.spec.name!r} returned {type(report).__name__} from finalize, not a GuardReport",
                    path=f"guards[{index}]",
                )
            reports.append(report)
        return reports

    def overhead(
        self,
        timing: dict[str, float],
        corrections: int,
        baseline_eval: dict[str, MetricResult],
        uncorrected_eval: dict[str, MetricResult] | None,
    ) -> GuardOverhead:
        per_guard = {k: v for k, v in timing.items() if k.startswith("guard:")}
        uncorrected = None
        if uncorrected_eval is not None:
            final = uncorrected_eval["final"]
            uncorrected = Arm(ppl=final.value, per_unit=list(final.per_unit), unit_weights=list(final.unit_weights))
        return GuardOverhead(
            guard_time_s=per_guard,
            guard_share=round(sum(per_guard.values()) / timing["total_s"], 4) if timing["total_s"] > 0 else 0.0,
            corrections_applied=corrections,
            uncorrected_final=uncorrected,
            uncorrected_nonfinite=corrections > 0 and uncorrected_eval is None,
        )


def rollback_required(gates: list[Gate]) -> bool:
    """An edit is rolled back when the catastrophe gate, the ``subject_finite`` gate or a gate-mode guard failed."""
    return any(not g.passed and (g.name in ROLLBACK_GATES or g.name.startswith("guard:")) for g in gates)


ROLLBACK_GATES = frozenset({"catastrophe", "subject_finite"})


def _create_all(request: CertifyRequest, registry: Registry, policy: Policy) -> dict[str, Any]:
    """Resolve and configure every capability before any work; report every problem at once."""
    preset = request.preset
    problems: list[Problem] = []
    out: dict[str, Any] = {"guards": []}

    def create(key: str, kind: CapabilityKind, name: str, config: dict[str, Any], path: str) -> Any:
        try:
            return registry.create(kind, name, config, path=path)
        except GuardchainError as exc:
            problems.extend(exc.problems)
            return None

    adapter_name = preset.adapter
    if adapter_name is None:
        adapter_name = _resolve(registry, request.baseline, "baseline", problems)
        if adapter_name is not None and request.subject is not None:
            subject_adapter = _resolve(registry, request.subject, "subject", problems)
            if subject_adapter is not None and subject_adapter != adapter_name:
                problems.append(
                    Problem(
                        ErrorCode.PAIRING_MISMATCH,
                        f"the subject {request.subject!r} needs adapter {subject_adapter!r} but the baseline "
                        f"{request.baseline!r} needs {adapter_name!r}: another architecture cannot be compared",
                        path="subject",
                        hint="compare mode needs the same architecture and tokenizer",
                    )
                )
    if adapter_name is not None:
        out["adapter"] = create(
            "adapter", CapabilityKind.ADAPTER, adapter_name, preset.adapter_config, "adapter_config"
        )
    sizes = policy.sizes
    dataset_config = {
        "seq_len": sizes.seq_len,
        "n_preview": sizes.n_preview,
        "n_final": sizes.n_final,
        "seed": preset.seed,
        **preset.dataset_config,
    }
    for key, minimum in (("n_preview", sizes.n_preview), ("n_final", sizes.n_final)):
        if int(dataset_config.get(key, minimum)) < minimum:
            problems.append(
                Problem(
                    ErrorCode.CONFIG_VALUE,
                    f"{dataset_config[key]} {key.removeprefix('n_')} windows are too few for the {policy.profile!r} "
                    f"profile",
                    path=f"dataset_config.{key}",
                    expected=f"at least {minimum}",
                )
            )
    out["dataset"] = create("dataset", CapabilityKind.DATASET, preset.dataset, dataset_config, "dataset_config")
    out["metric_preview"] = create(
        "metric", CapabilityKind.METRIC, preset.metric, {**preset.metric_config, "split": "preview"}, "metric_config"
    )
    out["metric_final"] = create(
        "metric", CapabilityKind.METRIC, preset.metric, {**preset.metric_config, "split": "final"}, "metric_config"
    )
    if request.subject is None:
        out["edit"] = create("edit", CapabilityKind.EDIT, preset.edit, preset.edit_config, "edit_config")
    steps = preset.guards
    if steps is None:
        steps = [GuardStep(guard=name, config={"tier": request.tier}) for name in DEFAULT_GUARDS]
        missing = sorted({name for name in DEFAULT_GUARDS if name not in registry.names(CapabilityKind.GUARD)})
        if missing:
            problems.append(
                Problem(
                    ErrorCode.PLUGIN_UNKNOWN,
                    f"the default guard chain needs guard(s) {', '.join(map(repr, missing))}, which no installed "
                    "plugin provides",
                    path="guards",
                    hint="install guardchain-guards, or certify without guards: --no-guards (or guards: [] in a "
                    "--preset)",
                )
            )
            steps = []
    for index, step in enumerate(steps):
        guard = create("guard", CapabilityKind.GUARD, step.guard, step.config, f"guards[{index}].config")
        if guard is not None:
            out["guards"].append(guard)
    if problems:
        raise GuardchainError(problems)
    return out


def _resolve(registry: Registry, ref: str, path: str, problems: list[Problem]) -> str | None:
    name, hook_problems = registry.resolve_adapter(ref, {"is_local_dir": Path(ref).is_dir()})
    if name is not None:
        return name
    problems.extend(hook_problems)
    looks_like_path = ref.startswith((".", "/", "~")) or Path(ref).suffix in {".gguf", ".safetensors"}
    if looks_like_path and not Path(ref).expanduser().exists():
        problems.append(Problem(ErrorCode.MODEL_NOT_FOUND, f"no model at {ref!r}", path=path))
    else:
        problems.append(
            Problem(
                ErrorCode.ADAPTER_UNRESOLVED,
                f"no adapter claims {ref!r}",
                path=path,
                expected="a named model, a local model directory or .gguf file, or a hub id (network opt-in)",
            )
        )
    return None


def _evaluate(
    created: dict[str, Any], handle: Any, windows: Any, context: RunContext
) -> dict[str, MetricResult] | None:
    """Both splits' metric results, or ``None`` when the model's outputs are not finite (``GC-MODEL-NONFINITE``)."""
    try:
        return {
            "preview": created["metric_preview"].instance.compute(handle, windows, context),
            "final": created["metric_final"].instance.compute(handle, windows, context),
        }
    except GuardchainError as exc:
        if exc.problems and exc.problems[0].code == ErrorCode.MODEL_NONFINITE:
            return None
        raise


def _check_compatible(adapter: Any, baseline: Any, subject: Any, request: CertifyRequest) -> None:
    problems = []
    base_cfg = baseline.provenance.get("config", {})
    subj_cfg = subject.provenance.get("config", {})
    for key in ("model_type", "architectures", "vocab_size"):
        if base_cfg.get(key) != subj_cfg.get(key):
            problems.append(f"{key}: {base_cfg.get(key)!r} vs {subj_cfg.get(key)!r}")
    if baseline.provenance.get("tokenizer_sha256") != subject.provenance.get("tokenizer_sha256"):
        problems.append("the tokenizers differ")
    base_shapes = {w.name: w.shape for w in adapter.describe(baseline).weights}
    subj_shapes = {w.name: w.shape for w in adapter.describe(subject).weights}
    if base_shapes != subj_shapes:
        problems.append("the weight matrices differ in names or shapes")
    if problems:
        raise GuardchainError.single(
            ErrorCode.PAIRING_MISMATCH,
            f"the subject {request.subject!r} cannot be compared with the baseline {request.baseline!r}: "
            + "; ".join(problems),
            hint="compare mode needs the same architecture and tokenizer",
        )


def _gates(policy: Policy, primary: PrimaryMetric | None, reports: list[GuardReport]) -> list[Gate]:
    """Every gate, each with its measured value and threshold. Without a primary metric (non-finite subject)
    only ``subject_finite`` (failed) and the guards' gates remain."""
    t = policy.thresholds
    gates = [
        Gate(
            name="subject_finite",
            comparison="true",
            measured=primary is not None,
            threshold=None,
            passed=primary is not None,
            detail="the subject's log-probabilities are finite on every window (else GC-MODEL-NONFINITE)",
        )
    ]
    if primary is not None:
        preview, final = primary.preview, primary.final
        drift = preview.ratio / final.ratio
        measured = expected_gate_measurements(primary)
        gates += [
            Gate(
                name="primary_ratio_ci_upper",
                comparison="le",
                measured=final.ci_high,
                threshold=t.ratio_ci_upper_max,
                passed=final.ci_high is not None and final.ci_high <= t.ratio_ci_upper_max,
                detail="upper end of the BCa CI of ppl_subject / ppl_baseline on the final windows",
            ),
            Gate(
                name="preview_final_drift",
                comparison="within",
                measured=drift,
                threshold=[t.drift_min, t.drift_max],
                passed=t.drift_min <= drift <= t.drift_max,
                detail="ratio on preview windows / ratio on final windows",
            ),
            Gate(
                name="pairing",
                comparison="true",
                measured=measured["pairing"],
                threshold=None,
                passed=bool(measured["pairing"]),
                detail="same window ids and weights for both models; preview and final disjoint",
            ),
            Gate(
                name="catastrophe",
                comparison="le",
                measured=final.ratio,
                threshold=t.catastrophe_ratio,
                passed=final.ratio <= t.catastrophe_ratio,
                detail="final ratio; above it the edit is rolled back",
            ),
        ]
    for index, report in enumerate(reports):
        if report.mode == GuardMode.GATE:
            gates.append(
                Gate(
                    name=f"guard:{index}:{report.guard}",
                    comparison="not_fail",
                    measured=str(report.status),
                    threshold=None,
                    passed=report.status != GuardStatus.FAIL,
                    detail="; ".join(f.code for f in report.findings if f.severity == GuardStatus.FAIL),
                )
            )
    return gates


def _split(baseline: MetricResult, subject: MetricResult, cmp: PairedComparison) -> SplitEvaluation:
    return SplitEvaluation(
        unit_ids=list(cmp.unit_ids),
        baseline=Arm(ppl=baseline.value, per_unit=list(baseline.per_unit), unit_weights=list(cmp.weights)),
        subject=Arm(ppl=subject.value, per_unit=list(subject.per_unit), unit_weights=list(cmp.weights)),
        deltas=list(cmp.deltas),
        ratio=cmp.estimate,
        ci_low=cmp.ci_low,
        ci_high=cmp.ci_high,
        n_windows=cmp.n_units,
        n_tokens=cmp.total_weight,
    )


def _primary_metric(
    baseline: dict[str, MetricResult],
    preview: PairedComparison,
    final: PairedComparison,
    subject: dict[str, MetricResult],
    settings: BootstrapSettings,
    policy: Policy,
) -> PrimaryMetric:
    import math

    half = None
    needed = None
    if final.ci_low is not None and final.ci_high is not None and final.ci_low > 0:
        half = (math.log(final.ci_high) - math.log(final.ci_low)) / 2
        target = policy.sizes.target_half_width
        needed = max(final.n_units, math.ceil(final.n_units * (half / target) ** 2)) if half > 0 else final.n_units
    return PrimaryMetric(
        kind=baseline["final"].metric,
        mode=str(baseline["final"].details.get("mode", "")),
        preview=_split(baseline["preview"], subject["preview"], preview),
        final=_split(baseline["final"], subject["final"], final),
        bootstrap=settings,
        ci_half_width_log=half,
        n_final_for_target=needed,
    )


def _provenance(
    request: CertifyRequest,
    registry: Registry,
    created: dict[str, Any],
    handle: Any,
    subject_handle: Any,
    windows: Any,
    fingerprint: str,
    baseline_digest: str,
    subject_digest: str,
    policy: Policy,
    seed: int,
) -> Provenance:
    from importlib.metadata import PackageNotFoundError, version

    def side(ref: str, h: Any, digest: str) -> dict[str, Any]:
        prov = dict(h.provenance)
        return {
            "ref": ref,
            "adapter": created["adapter"].spec.name,
            "weights_sha256": digest,
            "tokenizer_sha256": prov.get("tokenizer_sha256"),
            "dtype": h.dtype,
            "device": h.device,
            "model_class": prov.get("model_class"),
            "n_parameters": prov.get("n_parameters"),
        }

    libraries = {}
    for name in ("guardchain-core", "torch", "transformers", "tokenizers", "safetensors", "numpy", "scipy", "pydantic"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            continue
    request_json = request.model_dump(mode="json", exclude={"out"})
    import hashlib
    import json

    config_digest = hashlib.sha256(json.dumps(request_json, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return Provenance(
        seeds={"python": seed, "numpy": seed, "torch": seed, "windows": seed, "bootstrap": seed},
        baseline=side(request.baseline, handle, baseline_digest),
        subject=side(request.subject or f"{request.baseline} + {request.preset.edit}", subject_handle, subject_digest),
        dataset={
            "name": created["dataset"].spec.name,
            "config": created["dataset"].config.model_dump(mode="json"),
            "dataset_sha256": fingerprint,
            "tokenizer_sha256": getattr(windows, "tokenizer_sha256", None),
            "windows_digest": windows.digest() if hasattr(windows, "digest") else None,
        },
        plugins=[
            {"name": p.name, "distribution": p.distribution, "version": p.version, "status": str(p.status)}
            for p in registry.plugins
        ],
        config_digest=config_digest,
        policy_digest=policy.digest(),
        libraries=libraries,
        device=f"{handle.device} ({platform.machine()}, {platform.system()})",
    )


def _seed(seed: int) -> None:
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)


def _seed_torch(seed: int) -> None:
    torch = sys.modules.get("torch")  # the kernel never imports torch; seed it when an adapter already has
    if torch is not None:
        torch.manual_seed(seed)


def _staging_dir(out: Path, run_id: str) -> Path:
    return out.parent / f".{out.name}.tmp-{run_id[:8]}"


def write_certificate(certificate: Certificate, out: Path) -> None:
    """Write ``certificate.json`` and ``certificate.md`` into ``out`` so that it holds both or neither.

    Both files are written into a sibling staging directory, which then replaces ``out`` by rename.
    """
    staging = _staging_dir(out, certificate.run_id)
    try:
        staging.mkdir(parents=True, exist_ok=True)
        write_json_atomic(staging / "certificate.json", certificate.model_dump(mode="json"))
        (staging / "certificate.md").write_text(render_markdown(certificate), encoding="utf-8")
        previous = None
        if out.exists():
            previous = out.parent / f".{out.name}.old-{certificate.run_id[:8]}"
            os.replace(out, previous)
        os.replace(staging, out)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GuardchainError.single(
            ErrorCode.OUTPUT_WRITE, f"cannot write the certificate to {str(out)!r}: {exc}"
        ) from exc
