"""Capability kinds and the explicit protocol check.

``isinstance(obj, SomeProtocol)`` with ``runtime_checkable`` only checks that attribute names exist. The check
here reads the required methods from the protocol class itself (one source of truth), then verifies that each
is present, callable, and accepts the kernel's positional call (``inspect.Signature.bind``).
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

from guardchain.core import protocols
from guardchain.core.errors import ErrorCode, Problem
from guardchain.core.kinds import CapabilityKind

__all__ = ["PROTOCOLS", "CapabilityKind", "required_methods", "validate_capability"]


PROTOCOLS: dict[CapabilityKind, type] = {
    CapabilityKind.ADAPTER: protocols.Adapter,
    CapabilityKind.EDIT: protocols.Edit,
    CapabilityKind.GUARD: protocols.Guard,
    CapabilityKind.METRIC: protocols.Metric,
    CapabilityKind.INTERVENTION: protocols.Intervention,
    CapabilityKind.DATASET: protocols.Dataset,
}


@cache
def required_methods(kind: CapabilityKind) -> dict[str, tuple[str, ...]]:
    """Method name -> positional parameter names (without ``self``) the kernel passes, read from the protocol."""
    proto = PROTOCOLS[kind]
    methods: dict[str, tuple[str, ...]] = {}
    for name, member in vars(proto).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        params = list(inspect.signature(member).parameters)[1:]
        methods[name] = tuple(params)
    return methods


def validate_capability(kind: CapabilityKind, obj: Any, *, label: str) -> list[Problem]:
    """Check ``obj`` (a capability class or instance) against the protocol of ``kind``.

    :param kind: the kind it is registered as.
    :param obj: a class (checked as if instantiated) or an instance.
    :param label: how to name it in messages (``"guard 'spectral'"``).
    :returns: one :class:`Problem` (code ``GC-CAPABILITY-INVALID``) per violation; empty when it conforms.
    """
    problems: list[Problem] = []
    is_class = inspect.isclass(obj)
    for method, params in required_methods(kind).items():
        expected = f"{method}({', '.join(params)})"
        if is_class:
            try:
                raw = inspect.getattr_static(obj, method)
            except AttributeError:
                raw = None
        else:
            raw = getattr(obj, method, None)
        if raw is None:
            problems.append(
                Problem(ErrorCode.CAPABILITY_INVALID, f"{label} has no method {method!r}", expected=expected)
            )
            continue
        if is_class and isinstance(raw, staticmethod | classmethod):
            func: Any = raw.__func__
            bound_self = isinstance(raw, classmethod)
        elif is_class:
            func = raw
            bound_self = True
        else:
            func = raw
            bound_self = False
        if not callable(func):
            problems.append(
                Problem(ErrorCode.CAPABILITY_INVALID, f"{label}.{method} is not callable", expected=expected)
            )
            continue
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            continue  # builtins without introspectable signatures: nothing more to check
        args = [object()] * (len(params) + (1 if bound_self else 0))
        try:
            signature.bind(*args)
        except TypeError as exc:
            problems.append(
                Problem(
                    ErrorCode.CAPABILITY_INVALID,
                    f"{label}.{method}{signature} cannot be called as {expected}: {exc}",
                    expected=expected,
                )
            )
    return problems
