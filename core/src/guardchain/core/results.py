"""The result types capabilities return. Each is a frozen pydantic model, so it serializes into run records and
certificates exactly as it was produced."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EditPlan(_Result):
    """What an edit intends to change, computed before anything changes.

    :ivar edit: registered name of the edit.
    :ivar targets: parameter names the edit will modify; the invariants guard treats every other parameter as
        out of scope.
    :ivar details: edit-specific settings as applied (bits, group size, ...).
    """

    edit: str
    targets: tuple[str, ...]
    details: dict[str, Any] = Field(default_factory=dict)


class ModuleEditStats(_Result):
    """Per-parameter error statistics of an applied edit, in the parameter's own units.

    :ivar max_abs_error: max |w' - w| over the parameter's elements.
    :ivar rms_error: sqrt(mean((w' - w)^2)).
    :ivar numel: number of elements in the parameter.
    """

    max_abs_error: float = Field(ge=0)
    rms_error: float = Field(ge=0)
    numel: int = Field(ge=0)


class EditReport(_Result):
    """What an edit changed.

    :ivar edit: registered name of the edit.
    :ivar modules_changed: parameter names that were modified.
    :ivar parameters_changed: total number of scalar parameters modified.
    :ivar per_module: error statistics per modified parameter.
    """

    edit: str
    modules_changed: tuple[str, ...]
    parameters_changed: int = Field(ge=0)
    per_module: dict[str, ModuleEditStats] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)


class GuardStatus(StrEnum):
    """A guard's verdict. Ordered by severity: pass < warn < fail."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 for pass, 1 for warn, 2 for fail."""
        return {"pass": 0, "warn": 1, "fail": 2}[self.value]


class GuardMode(StrEnum):
    """``monitor`` only reports; ``gate`` may correct the subject and may fail the chain."""

    MONITOR = "monitor"
    GATE = "gate"


class Finding(_Result):
    """One thing a guard noticed.

    :ivar code: a stable, guard-specific code (``SPECTRAL-CAP-EXCEEDED``); documented by the guard's plugin.
    :ivar severity: the status this finding alone would give.
    :ivar message: a sentence for humans.
    :ivar target: what it is about: a parameter name, a site, a module family.
    """

    code: str = Field(min_length=1)
    severity: GuardStatus
    message: str
    target: str = ""
    measurements: dict[str, float] = Field(default_factory=dict)


class GuardAction(_Result):
    """A correction a guard applied (or proposed, when ``applied`` is false) to the subject."""

    kind: str = Field(min_length=1)
    target: str
    applied: bool
    parameters: dict[str, float] = Field(default_factory=dict)
    reason: str = ""


class GuardReport(_Result):
    """What a guard concluded after an edit.

    :ivar guard: registered name of the guard.
    :ivar mode: the mode it ran in.
    :ivar status: pass / warn / fail; in ``monitor`` mode a guard reports ``warn`` where ``gate`` would fail.
    :ivar measurements: named scalar measurements (units in the guard's documentation).
    :ivar findings: everything notable, with stable codes.
    :ivar actions: corrections applied or proposed.
    """

    guard: str
    mode: GuardMode
    status: GuardStatus
    measurements: dict[str, float] = Field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    actions: tuple[GuardAction, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _status_covers_findings(self) -> GuardReport:
        worst = max((f.severity.severity for f in self.findings), default=0)
        if self.mode == GuardMode.MONITOR and self.status == GuardStatus.FAIL:
            raise ValueError("a guard in monitor mode reports warn, never fail")
        if self.mode == GuardMode.GATE and worst > self.status.severity:
            raise ValueError(f"status {self.status} is milder than its worst finding")
        return self


class MetricVerdict(_Result):
    """A metric's own judgement of the model it measured (the FA diagnostics' ``trustworthy`` or ``needs walk-back``).

    A certification may gate on it: the gate passes when ``passed`` is true for the subject.

    :ivar passed: true when the metric found nothing wrong.
    :ivar label: the verdict as the metric words it (``"trustworthy"``, ``"needs walk-back: <reasons>"``).
    :ivar reasons: each reason the verdict failed, in the metric's order; empty when it passed.
    """

    passed: bool
    label: str = Field(min_length=1)
    reasons: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _reasons_only_when_failed(self) -> MetricVerdict:
        if self.passed and self.reasons:
            raise ValueError("a passing verdict gives no reasons")
        return self


class MetricResult(_Result):
    """A metric's value, its uncertainty, and the per-unit values that pairing needs.

    :ivar metric: registered name of the metric.
    :ivar value: the aggregate value (units in ``units``).
    :ivar uncertainty: one standard error of ``value``, or ``None`` when not defined.
    :ivar units: what ``value`` is measured in (``"perplexity"``, ``"nats/token"``, ``"fraction"``).
    :ivar unit_ids: stable identifiers of the evaluation units (e.g. window ids), the pairing key.
    :ivar per_unit: the metric's value per unit, aligned with ``unit_ids``.
    :ivar unit_weights: weight per unit (e.g. token counts) for weighted aggregates, aligned with ``unit_ids``.
    :ivar verdict: the metric's own pass/fail judgement, when it makes one (``None`` for plain measurements).
    """

    metric: str
    value: float
    uncertainty: float | None = None
    units: str = ""
    unit_ids: tuple[str, ...] = ()
    per_unit: tuple[float, ...] = ()
    unit_weights: tuple[float, ...] = ()
    verdict: MetricVerdict | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _aligned(self) -> MetricResult:
        n = len(self.unit_ids)
        if len(self.per_unit) != n:
            raise ValueError(f"per_unit has {len(self.per_unit)} values for {n} unit_ids")
        if self.unit_weights and len(self.unit_weights) != n:
            raise ValueError(f"unit_weights has {len(self.unit_weights)} values for {n} unit_ids")
        if len(set(self.unit_ids)) != n:
            raise ValueError("unit_ids must be unique")
        if self.uncertainty is not None and not (self.uncertainty >= 0 or math.isnan(self.uncertainty)):
            raise ValueError("uncertainty must be non-negative")
        return self
