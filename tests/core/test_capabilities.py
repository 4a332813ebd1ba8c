"""The explicit protocol check (a runtime_checkable isinstance would accept all of these)."""

from __future__ import annotations

import pytest

from guardchain.core.capabilities import PROTOCOLS, required_methods, validate_capability
from guardchain.core.errors import ErrorCode
from guardchain.core.kinds import CapabilityKind


class Metric:
    def compute(self, handle, data, context):
        return None


def test_required_methods_come_from_the_protocols():
    assert required_methods(CapabilityKind.GUARD) == {
        "prepare": ("baseline", "context"),
        "after_edit": ("subject", "context"),
        "finalize": ("context",),
    }
    assert set(required_methods(CapabilityKind.ADAPTER)) == {
        "load",
        "describe",
        "token_logprobs",
        "resolve_sites",
        "snapshot",
        "restore",
        "weights_digest",
    }
    assert set(PROTOCOLS) == set(CapabilityKind)


@pytest.mark.parametrize("target", [Metric, Metric()])
def test_a_conforming_class_or_instance_passes(target):
    assert validate_capability(CapabilityKind.METRIC, target, label="m") == []


def test_keyword_only_extras_with_defaults_are_fine():
    class Flexible:
        def compute(self, handle, data, context, *, extra=1):
            return None

    class Variadic:
        def compute(self, *args, **kwargs):
            return None

    for cls in (Flexible, Variadic):
        assert validate_capability(CapabilityKind.METRIC, cls, label="m") == []


def test_static_and_class_methods_are_understood():
    class Static:
        @staticmethod
        def compute(handle, data, context):
            return None

    class Klass:
        @classmethod
        def compute(cls, handle, data, context):
            return None

    assert validate_capability(CapabilityKind.METRIC, Static, label="m") == []
    assert validate_capability(CapabilityKind.METRIC, Klass, label="m") == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "has no method 'compute'"),
        ({"compute": 3}, "is not callable"),
        ({"compute": lambda self, handle: None}, "cannot be called as compute(handle, data, context)"),
        ({"compute": lambda self, handle, data, context, required: None}, "missing a required argument"),
    ],
)
def test_violations_are_named(body, needle):
    cls = type("Bad", (), body)
    problems = validate_capability(CapabilityKind.METRIC, cls, label="metric 'bad'")
    assert len(problems) == 1
    assert problems[0].code == ErrorCode.CAPABILITY_INVALID
    assert needle in problems[0].message
    assert problems[0].expected == "compute(handle, data, context)"


def test_an_instance_attribute_that_is_not_callable():
    metric = Metric()
    metric.compute = "nope"
    assert "not callable" in validate_capability(CapabilityKind.METRIC, metric, label="m")[0].message
