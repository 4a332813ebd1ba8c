"""guardchain's interventions: read and change activations at adapter sites while a model runs.

Capabilities (kind ``intervention``, registered by :mod:`guardchain.interventions.plugin`): ``collect``,
``zero``, ``add``, ``scale``, ``replace``, ``noise``, ``interchange`` (static) and ``rotated``,
``low_rank_rotated``, ``boundless`` (trainable, DAS). The Python API — :class:`IntervenedModel`, :class:`Units`,
the intervention classes, :func:`train_alignment` / :func:`eval_alignment` and :func:`save_interventions` /
:func:`load_interventions` — is importable from here; importing this package imports neither torch nor pydantic
until one of those names is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Intervention": "guardchain.interventions.base",
    "Collect": "guardchain.interventions.static",
    "Zero": "guardchain.interventions.static",
    "Add": "guardchain.interventions.static",
    "Scale": "guardchain.interventions.static",
    "Replace": "guardchain.interventions.static",
    "Noise": "guardchain.interventions.static",
    "Interchange": "guardchain.interventions.static",
    "RotatedSpace": "guardchain.interventions.trainable",
    "LowRankRotatedSpace": "guardchain.interventions.trainable",
    "BoundlessRotatedSpace": "guardchain.interventions.trainable",
    "Units": "guardchain.interventions.units",
    "Binding": "guardchain.interventions.model",
    "IntervenedModel": "guardchain.interventions.model",
    "Attachment": "guardchain.interventions.model",
    "AlignmentBatch": "guardchain.interventions.training",
    "AlignmentReport": "guardchain.interventions.training",
    "train_alignment": "guardchain.interventions.training",
    "eval_alignment": "guardchain.interventions.training",
    "save_interventions": "guardchain.interventions.serialize",
    "load_interventions": "guardchain.interventions.serialize",
    "probe_hidden_sizes": "guardchain.interventions.sites",
    "InterventionErrorCode": "guardchain.interventions.codes",
}

__all__ = [
    "Add",
    "AlignmentBatch",
    "AlignmentReport",
    "Attachment",
    "Binding",
    "BoundlessRotatedSpace",
    "Collect",
    "Interchange",
    "IntervenedModel",
    "Intervention",
    "InterventionErrorCode",
    "LowRankRotatedSpace",
    "Noise",
    "Replace",
    "RotatedSpace",
    "Scale",
    "Units",
    "Zero",
    "__version__",
    "eval_alignment",
    "load_interventions",
    "probe_hidden_sizes",
    "save_interventions",
    "train_alignment",
]

if TYPE_CHECKING:
    from guardchain.interventions.base import Intervention
    from guardchain.interventions.codes import InterventionErrorCode
    from guardchain.interventions.model import Attachment, Binding, IntervenedModel
    from guardchain.interventions.serialize import load_interventions, save_interventions
    from guardchain.interventions.sites import probe_hidden_sizes
    from guardchain.interventions.static import Add, Collect, Interchange, Noise, Replace, Scale, Zero
    from guardchain.interventions.trainable import BoundlessRotatedSpace, LowRankRotatedSpace, RotatedSpace
    from guardchain.interventions.training import AlignmentBatch, AlignmentReport, eval_alignment, train_alignment
    from guardchain.interventions.units import Units


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guardchain.interventions' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
