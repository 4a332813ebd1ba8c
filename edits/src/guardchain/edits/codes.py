"""The stable error codes of guardchain-edits (documented in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`.
"""

from __future__ import annotations

from enum import StrEnum


class EditErrorCode(StrEnum):
    """Codes of expected failures while planning or applying an edit."""

    SCOPE_UNKNOWN = "GC-EDIT-SCOPE-UNKNOWN"
    GROUP_SIZE = "GC-EDIT-GROUP-SIZE"
    PLAN = "GC-EDIT-PLAN"


DESCRIPTIONS: dict[EditErrorCode, str] = {
    EditErrorCode.SCOPE_UNKNOWN: "An entry of an explicit `scope` list matches no weight matrix of the model "
    "(neither a parameter name nor a module-path prefix); the message lists the weight matrices that exist.",
    EditErrorCode.GROUP_SIZE: "`group_size` does not divide the input dimension of a targeted weight matrix; the "
    "message names the matrix and its input dimension.",
    EditErrorCode.PLAN: "`apply` was given a plan it cannot carry out: made by another edit, or naming a parameter "
    "that does not exist in the model or is not a 2-D matrix.",
}
