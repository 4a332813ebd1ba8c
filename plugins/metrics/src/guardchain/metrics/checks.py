"""Preconditions shared by the metrics: the data type, the adapter method, the tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.metrics.codes import MetricErrorCode

T = TypeVar("T")


def require_data(data: Any, expected: type[T], *, metric: str, produced_by: str) -> T:
    """``data`` if it is an ``expected`` instance.

    :param data: what the chain's dataset loaded.
    :param expected: the type the metric consumes.
    :param metric: the metric's registered name (for the message).
    :param produced_by: which datasets produce ``expected`` (for the hint).
    :raises GuardchainError: ``GC-METRIC-DATA-TYPE`` otherwise.
    """
    if not isinstance(data, expected):
        raise GuardchainError.single(
            MetricErrorCode.DATA_TYPE,
            f"metric {metric!r} needs {expected.__name__}, got {type(data).__name__}",
            expected=expected.__name__,
            hint=f"use a dataset that produces {expected.__name__}: {produced_by}",
        )
    return data


def require_adapter_method(context: RunContext, method: str, *, metric: str) -> Callable[..., Any]:
    """The bound method ``context.adapter.<method>``.

    :raises GuardchainError: ``GC-METRIC-NO-ADAPTER`` when there is no adapter or it lacks the method.
    """
    adapter = context.adapter
    found = getattr(adapter, method, None)
    if adapter is None or not callable(found):
        who = "the run context has no adapter" if adapter is None else f"{type(adapter).__name__} has no {method}()"
        raise GuardchainError.single(
            MetricErrorCode.NO_ADAPTER,
            f"metric {metric!r} calls the adapter's {method}(handle, batch), but {who}",
        )
    return cast("Callable[..., Any]", found)


def require_tokenizer(handle: ModelHandle, *, metric: str) -> Any:
    """The handle's tokenizer.

    :raises GuardchainError: ``GC-METRIC-NO-TOKENIZER`` when it has none.
    """
    if handle.tokenizer is None:
        raise GuardchainError.single(
            MetricErrorCode.NO_TOKENIZER, f"metric {metric!r} needs the model's tokenizer; {handle.ref!r} has none"
        )
    return handle.tokenizer
