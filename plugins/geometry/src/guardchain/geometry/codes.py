"""The stable error codes of guardchain-geometry (listed in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`. A non-finite activation is the kernel's ``GC-MODEL-NONFINITE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from guardchain.core.errors import GuardchainError, Problem


class GeometryErrorCode(StrEnum):
    """Codes of expected failures while collecting or computing representation geometry."""

    DATA_TYPE = "GC-GEOM-DATA-TYPE"
    NO_ADAPTER = "GC-GEOM-NO-ADAPTER"
    SITE = "GC-GEOM-SITE"
    SITE_SILENT = "GC-GEOM-SITE-SILENT"
    ACTIVATION = "GC-GEOM-ACTIVATION"
    EMPTY = "GC-GEOM-EMPTY"
    SAMPLE_SIZE = "GC-GEOM-SAMPLE-SIZE"
    NO_ROUTER = "GC-GEOM-NO-ROUTER"
    MODEL = "GC-GEOM-MODEL"
    DATA = "GC-GEOM-DATA"
    SETTINGS = "GC-GEOM-SETTINGS"
    MERGE = "GC-GEOM-MERGE"
    BASELINE = "GC-GEOM-BASELINE"
    PLOT = "GC-GEOM-PLOT"


DESCRIPTIONS: dict[GeometryErrorCode, str] = {
    GeometryErrorCode.DATA_TYPE: "The chain's data is not `TokenWindows` (the `geometry` step runs the model on "
    "token windows: a text dataset such as `kjv_excerpt`, `text` or `jsonl` without `label_field`).",
    GeometryErrorCode.NO_ADAPTER: "The run context has no adapter, or the adapter has no `resolve_sites`: chain "
    "steps reach sites only through the adapter.",
    GeometryErrorCode.SITE: "A site cannot be resolved: the adapter does not know it (its own code is in "
    "`details.cause_code`), or, in the Python API without an adapter, no module of the model has that path and "
    "no block list was found for `blocks[...]` sites.",
    GeometryErrorCode.SITE_SILENT: "A hooked site or router module never ran during a forward pass, so nothing "
    "was collected there (a module the model does not call on these inputs).",
    GeometryErrorCode.ACTIVATION: "The activation at a site is not a floating-point tensor whose rows are the "
    "batch's tokens (shape `(batch, positions, hidden)` or `(batch*positions, hidden)`), or a site's hidden size "
    "changed between batches.",
    GeometryErrorCode.EMPTY: "The data gave no batch or no unmasked token (empty split, `max_windows: 0`, every "
    "attention mask zero).",
    GeometryErrorCode.SAMPLE_SIZE: "`sample_size` is larger than the number of tokens seen: the seeded reservoir "
    "sample could not be filled. Lower `sample_size` or give more tokens.",
    GeometryErrorCode.NO_ROUTER: "Router statistics were asked for (`router: true`) but the model emits no router "
    "logits: its config has no `num_local_experts` / `num_experts`, or no router module was found (declared by "
    "the model for `router_logits`, or named by `router_modules`).",
    GeometryErrorCode.MODEL: "The model is not a `torch.nn.Module` with parameters.",
    GeometryErrorCode.DATA: "A batch of the data loader cannot be used: not a mapping with `input_ids`, a tensor, "
    "or a tuple/list of tensors; an attention mask whose shape differs from `input_ids`; or the model cannot be "
    "called on it (the message carries the model's exception).",
    GeometryErrorCode.SETTINGS: "The Python API got an invalid setting (the message lists each one; a chain "
    "file's step config gets the kernel's `GC-CONFIG-*` codes instead).",
    GeometryErrorCode.MERGE: "Two accumulators cannot be merged: different sites, hidden sizes, sample sizes or "
    "devices.",
    GeometryErrorCode.BASELINE: "Drift cannot be computed: the named baseline `geometry` step does not exist, was "
    "computed on other sites, windows, seed or sample size, or its sample artifact is missing (`save_samples: "
    "false`); or two Python-API results are not comparable for the same reasons.",
    GeometryErrorCode.PLOT: "A plot was requested from the Python API but matplotlib is not installed (install the "
    "`plot` extra: `pip install guardchain-geometry[plot]`).",
}


def geometry_error(
    code: GeometryErrorCode,
    message: str,
    *,
    path: str = "",
    expected: str = "",
    hint: str = "",
    details: Mapping[str, Any] | None = None,
    cause: BaseException | None = None,
) -> GuardchainError:
    """A :class:`GuardchainError` with one problem of this member's ``code``."""
    problem = Problem(code, message, path=path, expected=expected, hint=hint, details=dict(details or {}))
    return GuardchainError(problem, cause=cause)
