"""Result types: invariants they enforce at construction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus, MetricResult


def test_metric_result_per_unit_arrays_are_aligned():
    MetricResult(metric="m", value=1.0, unit_ids=("a", "b"), per_unit=(1.0, 2.0), unit_weights=(3, 4))
    with pytest.raises(ValidationError, match="per_unit has 1 values for 2 unit_ids"):
        MetricResult(metric="m", value=1.0, unit_ids=("a", "b"), per_unit=(1.0,))
    with pytest.raises(ValidationError, match="unit_weights"):
        MetricResult(metric="m", value=1.0, unit_ids=("a",), per_unit=(1.0,), unit_weights=(1.0, 2.0))
    with pytest.raises(ValidationError, match="unique"):
        MetricResult(metric="m", value=1.0, unit_ids=("a", "a"), per_unit=(1.0, 2.0))
    with pytest.raises(ValidationError, match="non-negative"):
        MetricResult(metric="m", value=1.0, uncertainty=-0.1)


def test_results_are_frozen_and_forbid_unknown_fields():
    result = MetricResult(metric="m", value=1.0)
    with pytest.raises(ValidationError):
        result.value = 2.0
    with pytest.raises(ValidationError):
        MetricResult(metric="m", value=1.0, surprise=True)


def fail_finding(severity=GuardStatus.FAIL):
    return Finding(code="X-FAIL", severity=severity, message="bad", target="w")


def test_a_gate_report_cannot_be_milder_than_its_findings():
    with pytest.raises(ValidationError, match="milder"):
        GuardReport(guard="g", mode=GuardMode.GATE, status=GuardStatus.PASS, findings=(fail_finding(),))
    GuardReport(guard="g", mode=GuardMode.GATE, status=GuardStatus.FAIL, findings=(fail_finding(),))


def test_a_monitor_report_never_fails():
    with pytest.raises(ValidationError, match="monitor mode"):
        GuardReport(guard="g", mode=GuardMode.MONITOR, status=GuardStatus.FAIL)
    GuardReport(guard="g", mode=GuardMode.MONITOR, status=GuardStatus.WARN, findings=(fail_finding(),))


def test_status_severity_orders_pass_warn_fail():
    assert [s.severity for s in (GuardStatus.PASS, GuardStatus.WARN, GuardStatus.FAIL)] == [0, 1, 2]
