"""``metric_gate``: any registered metric as a gate, in a certification or in any chain file.

A metric gate is a guard: ``prepare`` computes the metric on the baseline, ``after_edit`` on the edited subject
(after the guards before it have corrected it), and ``finalize`` compares the two
(:mod:`guardchain.certify.comparison`) and fails when a bound does not hold — so a failing gate rolls the edit
back exactly like a failing guard, through the runner's one guarded-edit path. In a chain file::

    steps:
      - guard: metric_gate
        config: {metric: llc, metric_config: {chains: 4, draws: 200}, compare: z, max: 3.0}
      - edit: quant_rtn

In a certification preset, ``gates: [...]`` entries are the same configs; ``certify`` appends one
``metric_gate`` per entry after the guard chain and records each as ``metric:<position>:<label>:<bound>`` gates.

The metric reads the run's data (``context.data``) unless the gate names its own ``dataset`` (an accuracy gate
on labelled texts while the certification scores token windows). A subject whose outputs are not finite
(``GC-MODEL-NONFINITE``) fails the gate. The report records both sides' per-unit values, so ``verify`` recomputes
the comparison (:func:`verify_report`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guardchain.certify.comparison import CompareKind, GateComparison, compare, summarize
from guardchain.certify.statistics import MAX_RESAMPLES, BootstrapSettings
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.core.kinds import CapabilityKind
from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus, MetricResult

NAME = "metric_gate"


class MetricGateConfig(BaseModel):
    """A metric, how baseline and subject are compared, and the bounds (see :mod:`guardchain.certify.comparison`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["gate", "monitor"] = Field(
        default="gate", description="'gate': a violated bound fails (and rolls the edit back); 'monitor': warns."
    )
    label: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="Names the gate in the certificate (metric:<position>:<label>:<bound>); default: the metric.",
    )
    metric: str = Field(min_length=1, description="Registered metric (bare or distribution:name).")
    metric_config: dict[str, Any] = Field(default_factory=dict, description="The metric's own configuration.")
    dataset: str | None = Field(
        default=None, description="A dataset of its own (registered name); default: the run's data."
    )
    dataset_config: dict[str, Any] = Field(default_factory=dict, description="That dataset's configuration.")
    compare: CompareKind = Field(
        description="ratio (per-unit log values, e.g. NLL), difference (per-unit values), z (value and standard "
        "error, e.g. llc), verdict (the metric's own pass/fail)."
    )
    max: float | None = Field(default=None, description="Bound on the interval's upper end (on z for 'z').")
    min: float | None = Field(default=None, description="Bound on the interval's lower end (on z for 'z').")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Confidence of the BCa interval.")
    n_resamples: int = Field(default=2000, ge=100, le=MAX_RESAMPLES, description="Bootstrap resamples.")
    seed: int | None = Field(default=None, ge=0, description="Bootstrap seed; default: the run's seed.")

    @model_validator(mode="after")
    def _bounds_fit_the_comparison(self) -> MetricGateConfig:
        has_bound = self.max is not None or self.min is not None
        if self.compare == "verdict" and has_bound:
            raise ValueError("a verdict comparison takes no max or min")
        if self.compare != "verdict" and not has_bound:
            raise ValueError(f"a {self.compare} comparison needs max, min, or both")
        for name in ("max", "min"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    @property
    def name(self) -> str:
        """The gate's label: ``label``, else the metric's bare name."""
        return self.label or self.metric.rpartition(":")[2]

    def bootstrap(self, run_seed: int) -> BootstrapSettings:
        """The bootstrap settings of the paired interval."""
        seed = self.seed if self.seed is not None else run_seed
        return BootstrapSettings(confidence=self.confidence, n_resamples=self.n_resamples, seed=seed)


class MetricGate:
    """The ``metric_gate`` guard (see the module docstring)."""

    def __init__(self, config: MetricGateConfig | None = None) -> None:
        if config is None:
            raise GuardchainError.single(ErrorCode.CONFIG_MISSING, "metric_gate needs a config (metric, compare, max)")
        self.config = config
        self.mode = GuardMode(config.mode)
        self._metric: Any = None
        self._data: Any = None
        self._baseline: dict[str, Any] | None = None
        self._subject: dict[str, Any] | None = None
        self._seed = 0

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Create the metric (and the gate's own dataset), and compute the metric on the baseline."""
        registry = context.registry
        if registry is None:
            raise GuardchainError.single(ErrorCode.STEP_ORDER, "metric_gate needs the run's registry in its context")
        config = self.config
        self._metric = registry.create(
            CapabilityKind.METRIC, config.metric, config.metric_config, path="config.metric_config"
        ).instance
        self._data = context.data
        if config.dataset is not None:
            dataset = registry.create(CapabilityKind.DATASET, config.dataset, config.dataset_config, path="config")
            self._data = dataset.instance.load(context)
        self._seed = context.seed
        result = self._compute(baseline, context, "baseline")
        if result is None:
            raise GuardchainError.single(
                ErrorCode.MODEL_NONFINITE, f"the baseline itself gives non-finite values for {config.metric!r}"
            )
        self._baseline = summarize(result)
        self._subject = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Compute the metric on the subject (``None`` when its outputs are not finite)."""
        if self._baseline is None:
            raise GuardchainError.single(ErrorCode.STEP_ORDER, "metric_gate.after_edit called before prepare")
        result = self._compute(subject, context, "subject")
        self._subject = summarize(result) if result is not None else None

    def finalize(self, context: RunContext) -> GuardReport:
        """Compare and report (status ``fail`` in gate mode, ``warn`` in monitor mode, when a bound fails)."""
        if self._baseline is None:
            raise GuardchainError.single(ErrorCode.STEP_ORDER, "metric_gate.finalize called before after_edit")
        return build_report(self.config, self._baseline, self._subject, self._seed)

    def _compute(self, handle: ModelHandle, context: RunContext, side: str) -> MetricResult | None:
        try:
            result = self._metric.compute(
                handle, self._data, _side_context(context, f"gates/{self.config.name}/{side}")
            )
        except GuardchainError as exc:
            if exc.code == ErrorCode.MODEL_NONFINITE:
                return None
            raise
        if not isinstance(result, MetricResult):
            raise GuardchainError.single(
                ErrorCode.CAPABILITY_RESULT,
                f"metric {self.config.metric!r} returned {type(result).__name__}, not a MetricResult",
            )
        return result


def _side_context(context: RunContext, prefix: str) -> RunContext:
    """The run's context with artifacts under ``prefix/`` (baseline and subject would overwrite each other's)."""
    parent = context

    def reserve(name: str) -> None:
        parent.artifacts[f"{prefix}/{name}"] = f"{prefix}/{name}"
        if parent.on_artifact is not None:
            parent.on_artifact(f"{prefix}/{name}")

    return replace(context, out_dir=context.out_dir / prefix, artifacts={}, on_artifact=reserve)


def build_report(
    config: MetricGateConfig, baseline: Mapping[str, Any], subject: Mapping[str, Any] | None, run_seed: int
) -> GuardReport:
    """The gate's report from the two recorded sides (``subject`` ``None``: its outputs were not finite).

    Pure: ``verify`` rebuilds the report from the recorded sides and compares it with the one in the certificate.
    """
    settings = config.bootstrap(run_seed)
    failing = GuardStatus.FAIL if config.mode == "gate" else GuardStatus.WARN
    findings: list[Finding] = []
    result: GateComparison | None = None
    if subject is None:
        findings.append(
            Finding(
                code="GATE-NONFINITE",
                severity=failing,
                message=f"the subject's {config.metric} is not finite (GC-MODEL-NONFINITE)",
                target=config.name,
            )
        )
    else:
        result = compare(config.compare, baseline, subject, upper=config.max, lower=config.min, settings=settings)
        for bound in result.bounds:
            if not bound.passed:
                sign = {"max": "≤", "min": "≥", "verdict": "passes"}[bound.side]
                findings.append(
                    Finding(
                        code=f"GATE-{bound.side.upper()}",
                        severity=failing,
                        message=f"{config.name}: {bound.measured} is not {sign} {bound.threshold}"
                        if bound.side != "verdict"
                        else f"{config.name}: the subject's verdict is not passing",
                        target=config.name,
                    )
                )
    measurements = {}
    if result is not None:
        for key in ("estimate", "ci_low", "ci_high"):
            value = getattr(result, key)
            if value is not None and math.isfinite(value):
                measurements[key] = float(value)
    details = {
        "label": config.name,
        "metric": config.metric,
        "compare": config.compare,
        "max": config.max,
        "min": config.min,
        "bootstrap": settings.model_dump(mode="json"),
        "baseline": dict(baseline),
        "subject": dict(subject) if subject is not None else None,
        "estimate": _json(result.estimate if result else None),
        "interval": [_json(result.ci_low), _json(result.ci_high)] if result else None,
        "bounds": [
            {"side": b.side, "measured": _json(b.measured), "threshold": b.threshold, "passed": b.passed}
            for b in (result.bounds if result else ())
        ],
    }
    status = GuardStatus.PASS if not findings else failing
    return GuardReport(
        guard=NAME,
        mode=GuardMode(config.mode),
        status=status,
        measurements=measurements,
        findings=tuple(findings),
        details=details,
    )


def _json(value: float | bool | None) -> float | bool | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def verify_report(report: Mapping[str, Any], config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Re-derive a metric gate's report from its recorded sides and its config (the guard verifier contract).

    The recorded sides are the evidence; everything else in the report (interval, bounds, status, findings,
    measurements) is recomputed from them and must match.
    """
    try:
        gate = MetricGateConfig.model_validate(dict(config))
    except ValidationError as exc:
        return [("config", f"is not a valid metric_gate config: {exc.errors()[0]['msg']}")]
    details = report.get("details") or {}
    baseline, subject = details.get("baseline"), details.get("subject")
    if not isinstance(baseline, Mapping) or not (subject is None or isinstance(subject, Mapping)):
        return [("details", "does not hold the recorded baseline and subject")]
    seed = (details.get("bootstrap") or {}).get("seed")
    if not isinstance(seed, int) or (gate.seed is not None and seed != gate.seed):
        return [("details.bootstrap.seed", "is not the gate's seed")]
    try:
        expected = build_report(gate, baseline, subject, seed).model_dump(mode="json")
    except GuardchainError as exc:
        return [("details", f"the recorded sides cannot be compared: {exc.problems[0].message}")]
    out = []
    for key in ("guard", "mode", "status", "measurements", "findings", "actions", "details"):
        if expected.get(key) != report.get(key):
            out.append((key, f"differs from what the recorded values give ({_short(expected.get(key))})"))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
