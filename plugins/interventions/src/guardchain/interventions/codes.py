"""The stable error codes of guardchain-interventions (listed in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from guardchain.core.errors import GuardchainError, Problem


class InterventionErrorCode(StrEnum):
    """Codes of expected failures while addressing, running, saving or loading an intervention."""

    SITE = "GC-INTERVENTION-SITE"
    SHAPE = "GC-INTERVENTION-SHAPE"
    UNITS = "GC-INTERVENTION-UNITS"
    SOURCE = "GC-INTERVENTION-SOURCE"
    GENERATION = "GC-INTERVENTION-GENERATION"
    CONFIG_VERSION = "GC-INTERVENTION-CONFIG-VERSION"
    LOAD = "GC-INTERVENTION-LOAD"
    MODEL_MISMATCH = "GC-INTERVENTION-MODEL-MISMATCH"


DESCRIPTIONS: dict[InterventionErrorCode, str] = {
    InterventionErrorCode.SITE: "A site cannot be used: no adapter is available to resolve it (neither "
    "`context.adapter` nor the handle's adapter in `context.registry`), the adapter rejected it, or the activation "
    "found there is not a `(batch, positions, hidden)` tensor.",
    InterventionErrorCode.SHAPE: "Shapes disagree: a vector's length is not the selected hidden size, a source "
    "batch is neither 1 nor the base batch, source and base select different numbers of units, or a trainable "
    "intervention was built for another hidden size.",
    InterventionErrorCode.UNITS: "A unit location is invalid for the activation it addresses: a position or head "
    "out of range, a per-row position list whose length is not the batch size or whose rows differ in length, an "
    "empty selection, or a hidden size that the number of heads does not divide.",
    InterventionErrorCode.SOURCE: "An intervention that patches values from a source run (interchange, rotated, "
    "low_rank_rotated, boundless) was run without a source, or a binding names a source index that was not given.",
    InterventionErrorCode.GENERATION: "A generation policy that cannot be honoured: `every_step` with an "
    "intervention that needs a source, an unknown policy, or a forward pass that covers only part of the "
    "addressed prompt positions (chunked prefill).",
    InterventionErrorCode.CONFIG_VERSION: "A saved intervention directory has a format version this release cannot "
    "read.",
    InterventionErrorCode.LOAD: "A saved intervention directory is incomplete, inconsistent or tampered with: "
    "missing files, a truncated or corrupt weights file, a field of the wrong type, an intervention name that is "
    "not registered, a tensor that is missing, has another shape than its config implies (checked before "
    "anything is allocated) or holds NaN/inf (unless allowed), a binding index out of range, a module path that "
    "the model lacks or that does not match the recorded site, or an invalid stored config.",
    InterventionErrorCode.MODEL_MISMATCH: "Saved interventions were loaded onto a model whose fingerprint "
    "(class, model type, hidden size, layer count, parameter names and shapes) differs from the one they were "
    "saved from.",
}


def intervention_error(
    code: InterventionErrorCode,
    message: str,
    *,
    path: str = "",
    expected: str = "",
    hint: str = "",
    details: Mapping[str, Any] | None = None,
) -> GuardchainError:
    """A :class:`GuardchainError` with one problem of this member's ``code``."""
    return GuardchainError(Problem(code, message, path=path, expected=expected, hint=hint, details=dict(details or {})))
