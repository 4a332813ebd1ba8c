"""``guardchain certify``: a baseline, an edit under the guard chain, paired evaluations, gates, a certificate.

The whole pipeline is :meth:`Certification.run`, a short sequence of calls::

    load the baseline (and, in compare mode, the subject checkpoint's weights)
    cut the evaluation windows
    evaluate the baseline on the preview and final windows
    guards: prepare on the baseline
    apply the edit under the guards                   (kernel: apply_guarded_edit — the one guarded-edit path)
    evaluate the subject on the same windows (and without the guards' corrections, when there were any)
    paired statistics -> gates (from the published policy) -> roll the edit back if a rollback gate failed
    certificate

Everything is prepared before any model loads (:func:`prepare`, through the kernel's chain runner): every
capability created and every config validated, the output folder checked, the signing key read. A problem there
is a coded error and nothing is written. Once a run starts, the folder's previous certificate is retired, so a
run that fails never leaves an older certificate behind (it writes ``failure.json`` instead).

Compare mode (``--subject``) is the same pipeline: its "edit" puts the subject checkpoint's weights into the one
model in memory, and nothing is rolled back.

Two things let many certifications share work (a sweep, :mod:`guardchain.certify.sweep`):

* a :class:`BaselineSlot` keeps the loaded baseline between certifications of one process: the next
  certification against the same baseline (same adapter, config, reference and seed) takes it instead of
  loading it again, and each certification hands it back restored bit for bit (the edit's rollback, verified
  against the digest taken before the edit);
* a :class:`~guardchain.certify.cache.BaselineCache` holds the baseline's per-window results, so the baseline is
  evaluated once for every certification with the same weights, windows, metric and libraries; the certificate
  records the entry (``baseline_cache``). The random generators are re-seeded right after the baseline
  evaluation, so whatever follows draws the same numbers whether the evaluation ran or was read.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from guardchain.certify.baseline import BaselineSlot, LoadedBaseline
from guardchain.certify.cache import BaselineCache, cache_key
from guardchain.certify.certificate import (
    Arm,
    BaselineCacheRecord,
    Certificate,
    GuardOverhead,
    PrimaryMetric,
    Provenance,
    SplitEvaluation,
    seal,
)
from guardchain.certify.gates import derive_gates, rollback_required
from guardchain.certify.markdown import render_markdown
from guardchain.certify.outdir import OwnedDir, check_out_dir
from guardchain.certify.policy import Policy
from guardchain.certify.request import CertifyRequest, build_chain
from guardchain.certify.signing import SigningKey
from guardchain.certify.statistics import BootstrapSettings, PairedComparison, paired_comparison
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError, Problem
from guardchain.core.guarded_edit import GuardedEdit, Participant, apply_guarded_edit, plan_edit
from guardchain.core.handles import ModelHandle
from guardchain.core.logs import get_logger
from guardchain.core.registry import Registry
from guardchain.core.results import EditPlan, EditReport, MetricResult
from guardchain.core.runner import ChainRunner, PreparedChain, plugin_rows, seed_everything

Progress = Callable[[str], None]
SPLITS = ("preview", "final")
StepProgress = Callable[[str, int, int], None]

#: Libraries whose versions can change a certificate's numbers.
NUMERIC_LIBRARIES: tuple[str, ...] = ("guardchain-core", "guardchain-certify", "torch", "transformers", "tokenizers")
NUMERIC_LIBRARIES += ("safetensors", "numpy", "pydantic")
#: Libraries whose versions can change a baseline evaluation (with the adapter's and the metric's distributions).
EVALUATION_LIBRARIES = ("guardchain-core", "torch", "transformers", "tokenizers", "numpy")

_log = get_logger("guardchain.certify")


def certify(
    request: CertifyRequest,
    registry: Registry,
    *,
    progress: Progress | None = None,
    step_progress: StepProgress | None = None,
    signing_key: SigningKey | None = None,
    cache: BaselineCache | None = None,
    slot: BaselineSlot | None = None,
) -> Certificate:
    """Prepare, claim the output folder, run, and write ``certificate.json`` and ``certificate.md`` into it.

    :param progress: told the name of each stage as it starts.
    :param step_progress: told ``(task, done, total)`` by capabilities inside a stage.
    :param signing_key: sign the certificate with this (already checked) key.
    :param cache: read the baseline's evaluation from (and store it into) this cache; ``None``: evaluate it.
    :param slot: take the baseline from (and hand it back to) this slot instead of loading it.
    :raises GuardchainError: bad input (coded; nothing written), a folder guardchain does not own or another run
        holds, or a failure while running (``failure.json`` then records it).
    """
    certification = prepare(request, registry)
    with OwnedDir.claim(request.out) as out:
        out.retire_previous()
        try:
            certificate = certification.run(out, progress, step_progress, signing_key, cache=cache, slot=slot)
        except BaseException as exc:
            out.record_failure(exc)
            raise
        out.write_text("certificate.md", render_markdown(certificate))
        out.write_json("certificate.json", certificate.model_dump(mode="json"))
    return certificate


def prepare(request: CertifyRequest, registry: Registry) -> Certification:
    """Validate the request and create every capability, without loading a model.

    :raises GuardchainError: every problem found, with the preset's paths.
    """
    check_out_dir(request.out)
    built = build_chain(request, registry)
    problems: list[Problem] = []
    if request.subject is not None:
        problems += _subject_resolves(registry, request)
    try:
        prepared = ChainRunner(registry).prepare(built.chain, edit_supplied=request.subject is not None)
    except GuardchainError as exc:
        raise GuardchainError(problems + built.rename(exc.problems)) from exc
    if problems:
        raise GuardchainError(problems)
    return Certification(request=request, registry=registry, policy=built.policy, prepared=prepared)


@dataclass
class Certification:
    """One prepared certification (see the module docstring)."""

    request: CertifyRequest
    registry: Registry
    policy: Policy
    prepared: PreparedChain
    timing: dict[str, float] = field(default_factory=dict)

    def run(
        self,
        out: OwnedDir,
        progress: Progress | None = None,
        step_progress: StepProgress | None = None,
        signing_key: SigningKey | None = None,
        *,
        cache: BaselineCache | None = None,
        slot: BaselineSlot | None = None,
    ) -> Certificate:
        """The pipeline (see the module docstring); returns the sealed (and signed) certificate.

        :param cache: where the baseline's evaluation is read from and stored (``None``: always evaluated).
        :param slot: where the loaded baseline is taken from and handed back to, restored (``None``: loaded here
            and dropped afterwards).
        """
        if slot is None:
            return self._run(out, progress, step_progress, signing_key, cache, None)
        try:
            return self._run(out, progress, step_progress, signing_key, cache, slot)
        except BaseException:
            slot.take("")  # a failed run leaves the model in an unknown state: never reuse it
            raise

    def _run(
        self,
        out: OwnedDir,
        progress: Progress | None,
        step_progress: StepProgress | None,
        signing_key: SigningKey | None,
        cache: BaselineCache | None,
        slot: BaselineSlot | None,
    ) -> Certificate:
        say = progress or (lambda message: None)
        request, seed = self.request, self.request.preset.seed
        context = RunContext(
            run_id=uuid.uuid4().hex,
            seed=seed,
            out_dir=out.path,
            registry=self.registry,
            progress=step_progress,
            on_artifact=lambda name: _ignore(out.reserve(name)),
        )
        clock = _Clock(self.timing)
        seed_everything(seed)
        loaded = self._baseline(context, say, slot)
        adapter, handle = context.adapter, context.handle = loaded.adapter, loaded.handle
        seed_everything(seed)
        change, subject_provenance = self._change(adapter, handle, context, say)
        plan = plan_edit(context, change)  # the edit's settings checked against the model before any evaluation
        clock.lap("load_s")

        say("cutting evaluation windows")
        windows = context.data = self.prepared.dataset.instance.load(context)  # type: ignore[union-attr]
        baseline_eval, cache_record = None, None
        if self.policy.primary_metric:
            say("evaluating the baseline")
            baseline_eval, cache_record = self._baseline_evaluation(handle, context, cache)
        seed_everything(seed)  # what follows draws the same numbers whether the evaluation ran or was read
        if self.policy.primary_metric and baseline_eval is None:
            raise GuardchainError.single(
                ErrorCode.MODEL_NONFINITE,
                f"the baseline {request.baseline!r} itself gives non-finite log-probabilities: nothing to certify "
                "against",
            )
        clock.lap("baseline_eval_s")

        guards = self._guards()
        say("guards: prepare")
        prepare_seconds = [clock.time(partial(g.instance.prepare, handle, context)) for g in guards]
        clock.lap("guards_prepare_s")
        say(f"applying {change.label} under {len(guards)} guard(s)")
        edited = apply_guarded_edit(context, change, guards, keep_rollback=request.subject is None, plan=plan)
        clock.lap("edit_s")

        subject_eval = None
        if baseline_eval is not None:
            say("evaluating the subject on the same windows")
            subject_eval = self._evaluate(handle, context)
        subject_digest = adapter.weights_digest(handle)
        clock.lap("subject_eval_s")
        uncorrected_eval = None
        if edited.corrected and baseline_eval is not None:
            say("evaluating the subject without the guards' corrections")
            with edited.without_corrections():
                uncorrected_eval = self._evaluate(handle, context)
            clock.lap("uncorrected_eval_s")

        primary = _primary_metric(baseline_eval, subject_eval, self.policy, seed) if baseline_eval else None
        reports = [r.model_dump(mode="json") for r in edited.guard_reports]
        gates = derive_gates(self.policy, primary, reports)
        clock.lap("statistics_s")
        if request.subject is None and rollback_required(gates):
            say("rolling the edit back")
            edited.rollback()
            clock.lap("rollback_s")
        if slot is None:
            edited.release()
        guard_seconds = _guard_seconds(guards, prepare_seconds, edited)
        self.timing.update(guard_seconds)
        self.timing["total_s"] = round(clock.total(), 4)
        certificate = Certificate(
            run_id=context.run_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            verdict="PASS" if all(g.passed for g in gates) else "FAIL",
            rolled_back=edited.rolled_back,
            mode=request.mode,  # type: ignore[arg-type]
            request=request.model_dump(mode="json", exclude={"out"}),
            policy=self.policy,
            primary_metric=primary,
            gates=gates,
            edit=self._edit_record(edited),
            guards=reports,
            guard_overhead=(
                _overhead(self.timing, guard_seconds, edited, uncorrected_eval, subject_eval is not None)
                if guards
                else None
            ),
            provenance=self._provenance(handle, windows, edited.digest_before, subject_digest, subject_provenance),
            timing=dict(self.timing),
            baseline_cache=cache_record,
            signed_by=signing_key.public_hex if signing_key is not None else None,
        )
        certificate = seal(certificate)
        if signing_key is not None:
            from guardchain.certify.certificate import Signature

            signature = Signature(public_key=signing_key.public_hex, value=signing_key.sign(certificate.digest))
            certificate = certificate.model_copy(update={"signature": signature})
        if slot is not None:
            self._hand_back(slot, loaded, edited, say)
        return certificate

    # -- the baseline: loaded once per process, evaluated once per cache -----------------------------------------

    def baseline_key(self) -> str:
        """What a loaded baseline may be reused for: SHA-256 of the adapter (qualified name and validated config),
        the baseline reference and the seed (an adapter may draw from it while loading, e.g. a new head)."""
        adapter = self.prepared.adapter
        assert adapter is not None
        return cache_key(
            {
                "adapter": adapter.spec.qualified_name,
                "config": adapter.config.model_dump(mode="json"),
                "ref": self.request.baseline,
                "seed": self.request.preset.seed,
            }
        )

    def _baseline(self, context: RunContext, say: Progress, slot: BaselineSlot | None) -> LoadedBaseline:
        """The baseline from the slot when it holds this certification's, else loaded."""
        key = self.baseline_key()
        if slot is not None:
            held = slot.take(key)
            if held is not None:
                say(f"baseline {self.request.baseline} already loaded")
                return held
            slot.loads += 1
        adapter = self.prepared.adapter.instance  # type: ignore[union-attr]
        say(f"loading baseline {self.request.baseline}")
        context.adapter = adapter
        return LoadedBaseline(key, adapter, adapter.load(self.request.baseline, context))

    def _hand_back(self, slot: BaselineSlot, loaded: LoadedBaseline, edited: GuardedEdit, say: Progress) -> None:
        """Restore the baseline (bit for bit, verified by digest) and keep it in the slot for the next run. A
        compare-mode run replaced every weight without rollback data, so its model is dropped instead."""
        if self.request.subject is not None:
            edited.release()
            return
        if not edited.rolled_back:
            say("restoring the baseline for the next certification")
            try:
                edited.rollback()
            except GuardchainError as exc:  # a capability changed a weight it did not declare: never reuse
                _log.warning("certify.baseline_not_restored", problem=exc.problems[0].message)
                edited.release()
                return
        edited.release()
        slot.keep(loaded)

    def _baseline_evaluation(
        self, handle: ModelHandle, context: RunContext, cache: BaselineCache | None
    ) -> tuple[dict[str, MetricResult] | None, BaselineCacheRecord | None]:
        """Both splits' baseline results, from the cache when it holds them (and stored there when not)."""
        if cache is None:
            return self._evaluate(handle, context), None
        inputs = self.cache_inputs(handle, context)
        key = cache_key(inputs)
        with cache.claim(key):  # of several processes wanting this baseline, one evaluates, the others read
            cached = cache.get(key)
            if cached is not None:
                try:
                    results = {split: MetricResult.model_validate(cached[split]) for split in ("preview", "final")}
                except (KeyError, ValueError):
                    results = None  # an entry another version wrote: evaluate again and replace it
                if results is not None:
                    return results, BaselineCacheRecord(key=key, hit=True, inputs=inputs)
            evaluation = self._evaluate(handle, context)
            if evaluation is not None:
                cache.put(key, {split: result.model_dump(mode="json") for split, result in evaluation.items()})
        return evaluation, BaselineCacheRecord(key=key, hit=False, inputs=inputs)

    def cache_inputs(self, handle: ModelHandle, context: RunContext) -> dict[str, Any]:
        """What decides the baseline's per-window results: the key's inputs (see :mod:`guardchain.certify.cache`)."""
        prepared = self.prepared
        adapter, dataset = prepared.adapter, prepared.dataset
        assert adapter is not None and dataset is not None
        windows = context.data
        digest = handle.provenance.get("weights_sha256")
        if not isinstance(digest, str):
            digest = context.adapter.weights_digest(handle)
        if hasattr(windows, "digest"):
            data: dict[str, Any] = {"windows_digest": windows.digest()}
        else:  # a dataset whose result has no digest: its content fingerprint with everything that shaped it
            data = {
                "dataset": dataset.spec.qualified_name,
                "config": dataset.config.model_dump(mode="json"),
                "dataset_sha256": dataset.instance.fingerprint(),
            }
        metrics = [c for c in prepared.steps if c.spec.kind == "metric"]
        libraries = dict(_libraries(EVALUATION_LIBRARIES))
        for spec in (adapter.spec, metrics[0].spec):
            if spec.distribution:
                libraries[spec.distribution] = spec.version or ""
        return {
            "format": 1,
            "weights_sha256": digest,
            "data": data,
            "adapter": {
                "name": adapter.spec.qualified_name,
                "config": adapter.config.model_dump(mode="json"),
                "device": str(handle.device),
                "dtype": str(handle.dtype),
            },
            "metric": {
                "name": metrics[0].spec.qualified_name,
                "config": {split: c.config.model_dump(mode="json") for split, c in zip(SPLITS, metrics, strict=True)},
            },
            "seed": self.request.preset.seed,
            "libraries": dict(sorted(libraries.items())),
        }

    # -- the steps --------------------------------------------------------------------------------------------

    def _guards(self) -> list[Participant]:
        steps = self.prepared.chain.config.steps
        return [
            Participant.of(created, f"guards[{index}]")
            for index, (step, created) in enumerate(zip(steps, self.prepared.steps, strict=True))
            if step.guard is not None
        ]

    def _change(
        self, adapter: Any, handle: ModelHandle, context: RunContext, say: Progress
    ) -> tuple[Participant, dict[str, Any] | None]:
        """The edit to apply: the preset's, or (compare mode) the subject checkpoint's weights."""
        if self.request.subject is None:
            created = next(c for c in self.prepared.steps if c.spec.kind == "edit")
            return Participant.of(created, "edit_config"), None
        say(f"loading subject {self.request.subject}")
        subject = adapter.load(self.request.subject, context)
        _check_compatible(adapter, handle, subject, self.request)
        change = SubjectWeights(adapter, subject)
        label = f"the subject checkpoint {self.request.subject!r}"
        return Participant(change, "subject", label, path="subject"), dict(subject.provenance) | {
            "dtype": subject.dtype,
            "device": subject.device,
        }

    def _evaluate(self, handle: ModelHandle, context: RunContext) -> dict[str, MetricResult] | None:
        """Both splits' primary-metric results, or ``None`` when the outputs are not finite."""
        metrics = [c for c in self.prepared.steps if c.spec.kind == "metric"]
        try:
            return {
                split: created.instance.compute(handle, context.data, context)
                for split, created in zip(SPLITS, metrics, strict=True)
            }
        except GuardchainError as exc:
            if exc.code == ErrorCode.MODEL_NONFINITE:
                return None
            raise

    def _edit_record(self, edited: GuardedEdit) -> dict[str, Any]:
        if self.request.subject is not None:
            return {
                "name": "subject",
                "plan": edited.plan.model_dump(mode="json"),
                "report": edited.report.model_dump(mode="json"),
            }
        created = next(c for c in self.prepared.steps if c.spec.kind == "edit")
        return {
            "name": created.spec.name,
            "distribution": created.spec.distribution,
            "config": created.config.model_dump(mode="json"),
            "plan": edited.plan.model_dump(mode="json"),
            "report": edited.report.model_dump(mode="json"),
        }

    def _provenance(
        self,
        handle: ModelHandle,
        windows: Any,
        baseline_digest: str,
        subject_digest: str,
        subject_provenance: dict[str, Any] | None,
    ) -> Provenance:
        request, prepared, seed = self.request, self.prepared, self.request.preset.seed
        adapter_name = prepared.adapter.spec.name  # type: ignore[union-attr]

        def side(ref: str, provenance: dict[str, Any], digest: str) -> dict[str, Any]:
            return {
                "ref": ref,
                "adapter": adapter_name,
                "weights_sha256": digest,
                "tokenizer_sha256": provenance.get("tokenizer_sha256"),
                "dtype": provenance.get("dtype", handle.dtype),
                "device": provenance.get("device", handle.device),
                "model_class": provenance.get("model_class"),
                "n_parameters": provenance.get("n_parameters"),
            }

        base = dict(handle.provenance) | {"dtype": handle.dtype, "device": handle.device}
        dataset = prepared.dataset
        request_json = json.dumps(
            request.model_dump(mode="json", exclude={"out"}), sort_keys=True, separators=(",", ":")
        )
        return Provenance(
            seeds={"python": seed, "numpy": seed, "torch": seed, "windows": seed, "bootstrap": seed},
            baseline=side(request.baseline, base, baseline_digest),
            subject=side(
                request.subject or f"{request.baseline} + {request.preset.edit}",
                subject_provenance or base,
                subject_digest,
            ),
            dataset={
                "name": dataset.spec.name,  # type: ignore[union-attr]
                "config": dataset.config.model_dump(mode="json"),  # type: ignore[union-attr]
                "dataset_sha256": dataset.instance.fingerprint(),  # type: ignore[union-attr]
                "tokenizer_sha256": getattr(windows, "tokenizer_sha256", None),
                "windows_digest": windows.digest() if hasattr(windows, "digest") else None,
            },
            plugins=plugin_rows(self.registry),
            config_digest=hashlib.sha256(request_json.encode()).hexdigest(),
            policy_digest=self.policy.digest(),
            libraries=_libraries(),
            device=f"{handle.device} ({platform.machine()}, {platform.system()})",
        )


class SubjectWeights:
    """Compare mode's change: the subject checkpoint's weights copied into the model in memory (an Edit).

    The plan targets every parameter; the report gives per-parameter differences from the baseline. The subject's
    own model is dropped once its weights are copied, so one model stays in memory.
    """

    def __init__(self, adapter: Any, subject: ModelHandle) -> None:
        self._adapter = adapter
        self._subject: ModelHandle | None = subject

    def plan(self, handle: ModelHandle, structure: Any) -> EditPlan:
        """Every parameter is a target: a second checkpoint may differ anywhere."""
        named = getattr(handle.model, "named_parameters", None)
        names = [name for name, _ in named()] if callable(named) else [w.name for w in structure.weights]
        ref = self._subject.ref if self._subject is not None else ""
        return EditPlan(edit="subject", targets=tuple(names), details={"ref": ref})

    def apply(self, handle: ModelHandle, plan: EditPlan) -> EditReport:
        """Copy the subject's weights into ``handle`` and drop the subject."""
        assert self._subject is not None
        weights = self._adapter.snapshot(self._subject, None)
        self._subject = None
        self._adapter.restore(handle, weights)
        return EditReport(edit="subject", modules_changed=plan.targets, parameters_changed=0)


def _subject_resolves(registry: Registry, request: CertifyRequest) -> list[Problem]:
    """Up front: the subject must be claimed by the baseline's adapter (same architecture family)."""
    ref = str(request.subject)
    base, _ = registry.resolve_adapter(request.baseline, {"is_local_dir": Path(request.baseline).is_dir()})
    name, problems = registry.resolve_adapter(ref, {"is_local_dir": Path(ref).is_dir()})
    if any(p.details.get("refused") for p in problems):
        return problems  # the adapter's plugin said why (network disabled, not found, broken config.json)
    if name is None:
        looks_like_path = ref.startswith((".", "/", "~")) or Path(ref).suffix in {".gguf", ".safetensors"}
        if looks_like_path and not Path(ref).expanduser().exists():
            return [*problems, Problem(ErrorCode.MODEL_NOT_FOUND, f"no model at {ref!r}", path="subject")]
        return [
            *problems,
            Problem(
                ErrorCode.ADAPTER_UNRESOLVED,
                f"no adapter claims {ref!r}",
                path="subject",
                expected="a named model, a local model directory or .gguf file, or a hub id (network opt-in)",
            ),
        ]
    if request.preset.adapter is None and base is not None and name != base:
        return [
            Problem(
                ErrorCode.PAIRING_MISMATCH,
                f"the subject {ref!r} needs adapter {name!r} but the baseline {request.baseline!r} needs {base!r}: "
                "another architecture cannot be compared",
                path="subject",
                hint="compare mode needs the same architecture and tokenizer",
            )
        ]
    return []


def _check_compatible(adapter: Any, baseline: ModelHandle, subject: ModelHandle, request: CertifyRequest) -> None:
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
    if baseline.dtype != subject.dtype:
        problems.append(f"dtype: {baseline.dtype} vs {subject.dtype}")
    if problems:
        raise GuardchainError.single(
            ErrorCode.PAIRING_MISMATCH,
            f"the subject {request.subject!r} cannot be compared with the baseline {request.baseline!r}: "
            + "; ".join(problems),
            hint="compare mode needs the same architecture and tokenizer",
            path="subject",
        )


class _Clock:
    """Wall-time laps into a timing dict (seconds, rounded to 0.1 ms)."""

    def __init__(self, timing: dict[str, float]) -> None:
        self.timing = timing
        self.started = self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timing[name] = round(self.timing.get(name, 0.0) + now - self.last, 4)
        self.last = now

    def time(self, call: Callable[[], Any]) -> float:
        began = time.perf_counter()
        call()
        return time.perf_counter() - began

    def total(self) -> float:
        return time.perf_counter() - self.started


def _guard_seconds(guards: list[Participant], prepare: list[float], edited: GuardedEdit) -> dict[str, float]:
    """``guard:<position>:<name>_s`` = prepare + after_edit + finalize, seconds."""
    return {
        f"guard:{index}:{guard.name}_s": round(prepare[index] + edited.guard_seconds[index], 4)
        for index, guard in enumerate(guards)
    }


def _overhead(
    timing: dict[str, float],
    guard_seconds: dict[str, float],
    edited: GuardedEdit,
    uncorrected_eval: dict[str, MetricResult] | None,
    measured: bool,
) -> GuardOverhead:
    """What the guards cost; ``measured``: the subject was evaluated (there is a primary metric)."""
    corrections = sum(1 for r in edited.guard_reports for a in r.actions if a.applied)
    uncorrected = None
    if uncorrected_eval is not None:
        final = uncorrected_eval["final"]
        uncorrected = Arm(ppl=final.value, per_unit=list(final.per_unit), unit_weights=list(final.unit_weights))
    total = timing["total_s"]
    return GuardOverhead(
        guard_time_s=guard_seconds,
        guard_share=round(sum(guard_seconds.values()) / total, 4) if total > 0 else 0.0,
        corrections_applied=corrections,
        uncorrected_final=uncorrected,
        uncorrected_nonfinite=bool(edited.corrected) and measured and uncorrected_eval is None,
    )


def _primary_metric(
    baseline: dict[str, MetricResult],
    subject: dict[str, MetricResult] | None,
    policy: Policy,
    seed: int,
) -> PrimaryMetric | None:
    """The paired comparison on both splits, with the achieved CI half-width and the final windows that would
    reach the profile's target (``n = n_now · (half_width / target)²``); ``None`` for a non-finite subject."""
    if subject is None:
        return None
    settings = BootstrapSettings(n_resamples=policy.sizes.n_resamples, seed=seed)
    preview = paired_comparison(baseline["preview"], subject["preview"], settings=settings)
    final = paired_comparison(baseline["final"], subject["final"], settings=settings)
    half, needed = half_width_and_target(final.ci_low, final.ci_high, final.n_units, policy.sizes.target_half_width)
    return PrimaryMetric(
        kind=baseline["final"].metric,
        mode=str(baseline["final"].details.get("mode", "")),
        preview=_split(baseline["preview"], subject["preview"], preview),
        final=_split(baseline["final"], subject["final"], final),
        bootstrap=settings,
        ci_half_width_log=half,
        n_final_for_target=needed,
    )


def half_width_and_target(
    ci_low: float | None, ci_high: float | None, n_units: int, target: float
) -> tuple[float | None, int | None]:
    """Half-width of the CI of log(ratio), and the final windows that would reach ``target`` (both ``None``
    without a positive interval)."""
    if ci_low is None or ci_high is None or not ci_low > 0 or not math.isfinite(ci_high):
        return None, None
    half = (math.log(ci_high) - math.log(ci_low)) / 2
    needed = max(n_units, math.ceil(n_units * (half / target) ** 2)) if half > 0 else n_units
    return half, needed


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


def _ignore(value: object) -> None:
    """Drop a value (a callback's result its caller does not take)."""


def _libraries(names: tuple[str, ...] = NUMERIC_LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
