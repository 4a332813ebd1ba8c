"""The one table of this member's interventions: registered name, summary, docs, config model and class.

Everything that names an intervention is derived from :data:`TABLE`: the registration module
(:mod:`guardchain.interventions.plugin`) registers each row, the catalogue (:mod:`guardchain.interventions.catalog`)
turns a saved name back into its class and config model, the factory
(:class:`guardchain.interventions.registered.RegisteredIntervention`) finds the class of a validated config, and
each class's ``plugin_name`` is set from its row when the class is created (:class:`~guardchain.interventions.base.
Intervention`). Adding an intervention is one row here plus its class and config model. Imports nothing (the
registration module reads it without torch or pydantic).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where the config models live (``Entry.config`` names a class there).
CONFIG_MODULE = "guardchain.interventions.config"
#: The one factory of every registered intervention (it finds the class from the config's type).
FACTORY = "guardchain.interventions.registered:RegisteredIntervention"

_SOURCE = "The source run: source_input_ids or source_text (1 row broadcasts), source_positions. "


@dataclass(frozen=True)
class Entry:
    """One registered intervention.

    :ivar name: the registered name (also the name stored in saved directories).
    :ivar summary: one line for ``plugins list``.
    :ivar docs: the formula and its options.
    :ivar config: the config model's class name in :data:`CONFIG_MODULE`.
    :ivar implementation: ``"module:Class"`` of the :class:`~guardchain.interventions.base.Intervention` subclass.
    """

    name: str
    summary: str
    docs: str
    config: str
    implementation: str


_STATIC = "guardchain.interventions.static"
_TRAINABLE = "guardchain.interventions.trainable"

TABLE: tuple[Entry, ...] = (
    Entry(
        "collect",
        "Record activations at sites and positions with their true shape (batch x positions x hidden).",
        "out = b; each forward pass appends a detached clone per site; artifact writes them as safetensors.",
        "CollectConfig",
        f"{_STATIC}:Collect",
    ),
    Entry("zero", "Zero ablation of the selected units.", "out = 0.", "ZeroConfig", f"{_STATIC}:Zero"),
    Entry(
        "add",
        "Add a scaled steering vector to the selected units.",
        "out = b + scale * vector.",
        "AddConfig",
        f"{_STATIC}:Add",
    ),
    Entry("scale", "Multiply the selected units by a factor.", "out = factor * b.", "ScaleConfig", f"{_STATIC}:Scale"),
    Entry(
        "replace",
        "Replace the selected units by a constant or a vector.",
        "out = value (broadcast).",
        "ReplaceConfig",
        f"{_STATIC}:Replace",
    ),
    Entry(
        "noise",
        "Add seeded Gaussian noise to the selected units.",
        "out = b + std * eps, eps ~ N(0, 1) from a generator seeded with seed (default: the run's seed).",
        "NoiseConfig",
        f"{_STATIC}:Noise",
    ),
    Entry(
        "interchange",
        "Patch a source run's activations into the base run at chosen positions and heads.",
        "out = s (Geiger et al. 2021). " + _SOURCE,
        "InterchangeConfig",
        f"{_STATIC}:Interchange",
    ),
    Entry(
        "rotated",
        "DAS: interchange the first k coordinates of an orthogonally rotated basis (trainable).",
        "out = b + ((s - b) R[:, :k]) R[:, :k]^T (Geiger et al. 2024). load_from: a saved directory. " + _SOURCE,
        "RotatedConfig",
        f"{_TRAINABLE}:RotatedSpace",
    ),
    Entry(
        "low_rank_rotated",
        "Low-rank DAS: out = b + (sW - bW)W^T with W of orthonormal columns (trainable).",
        "W is d x rank with orthonormal columns. load_from: a saved directory. " + _SOURCE,
        "LowRankRotatedConfig",
        f"{_TRAINABLE}:LowRankRotatedSpace",
    ),
    Entry(
        "boundless",
        "Boundless DAS: sigmoid boundary mask with learnable boundary and temperature (trainable).",
        "m_j = sigmoid((beta d - j - 1/2) / tau); out = b + (((s - b) R) * m) R^T (Wu et al. 2023). " + _SOURCE,
        "BoundlessConfig",
        f"{_TRAINABLE}:BoundlessRotatedSpace",
    ),
)

BY_NAME: dict[str, Entry] = {entry.name: entry for entry in TABLE}


def name_of(implementation: str) -> str | None:
    """The registered name of the class ``"module:Class"``, or ``None`` when no row implements it."""
    for entry in TABLE:
        if entry.implementation == implementation:
            return entry.name
    return None


def entry_for_config(module: str, qualname: str) -> Entry | None:
    """The row whose config model is ``module.qualname``, or ``None``."""
    if module != CONFIG_MODULE:
        return None
    for entry in TABLE:
        if entry.config == qualname:
            return entry
    return None
