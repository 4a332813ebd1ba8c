"""The pieces of a guard's report: findings (monitor mode turns ``fail`` into ``warn``), the status as the worst
severity, and the :class:`~guardchain.core.results.GuardReport` itself.

No torch: the guards' decisions (``*_decide`` modules) build their reports from here, both inside the guard and
in ``guardchain verify``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from guardchain.core.results import Finding, GuardAction, GuardMode, GuardReport, GuardStatus


def finite_or_none(value: float) -> float | None:
    """``value`` if finite, else ``None`` (reports stay valid JSON and compare equal across runs)."""
    return float(value) if math.isfinite(value) else None


def status_of(findings: Iterable[Finding]) -> GuardStatus:
    """The worst severity among ``findings`` (``pass`` when there are none)."""
    worst = GuardStatus.PASS
    for found in findings:
        if found.severity.severity > worst.severity:
            worst = found.severity
    return worst


def finding(
    code: str, severity: GuardStatus, mode: GuardMode, message: str, target: str = "", **measurements: float
) -> Finding:
    """A finding; in ``monitor`` mode a ``fail`` becomes ``warn`` (monitor never fails). Non-finite measurements are
    dropped (reports stay valid JSON)."""
    if mode == GuardMode.MONITOR and severity == GuardStatus.FAIL:
        severity = GuardStatus.WARN
    return Finding(
        code=code,
        severity=severity,
        message=message,
        target=target,
        measurements={k: float(v) for k, v in measurements.items() if math.isfinite(float(v))},
    )


def build_report(
    guard: str,
    mode: GuardMode,
    findings: Sequence[Finding],
    *,
    actions: Sequence[GuardAction] = (),
    measurements: dict[str, float] | None = None,
    details: dict[str, Any] | None = None,
) -> GuardReport:
    """The :class:`GuardReport` whose status is the worst finding's severity (non-finite measurements dropped)."""
    return GuardReport(
        guard=guard,
        mode=mode,
        status=status_of(findings),
        measurements={k: float(v) for k, v in (measurements or {}).items() if math.isfinite(float(v))},
        findings=tuple(findings),
        actions=tuple(actions),
        details=details or {},
    )
