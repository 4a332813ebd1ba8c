"""Configuration models of the registered interventions (pydantic only: referenced by string from the plugin).

Every model forbids unknown keys and carries the unit fields of :class:`UnitFields` (``positions``, ``heads``,
``n_heads``); interventions that patch values from a source run add :class:`SourceFields`. The same models
validate the ``config`` of a saved intervention (:mod:`guardchain.interventions.serialize`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: ``"a:b"``, ``"a:b:c"``, ``":b"``, ``"a:"`` with Python slice semantics (negative counts from the end).
SLICE_PATTERN = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?$")

#: A position selection as written in a chain file: all (null), a list, a slice string, or one list per batch row.
PositionsValue = list[int] | list[list[int]] | str | None

GenerationPolicy = Literal["prompt", "every_step"]


def _check_positions(value: PositionsValue, field: str) -> PositionsValue:
    if isinstance(value, str):
        match = SLICE_PATTERN.match(value)
        if match is None:
            raise ValueError(f"{field} as a string must be a slice 'a:b' or 'a:b:c', got {value!r}")
        if match.group(3) is not None and int(match.group(3)) == 0:
            raise ValueError(f"{field}: a slice step cannot be zero")
    elif isinstance(value, list):
        if not value:
            raise ValueError(f"{field} must not be empty (use null for every position)")
        if isinstance(value[0], list) and any(not row for row in value):
            raise ValueError(f"{field}: every per-row position list needs at least one position")
    return value


class UnitFields(BaseModel):
    """Where, inside a site's ``(batch, positions, hidden)`` activation, an intervention acts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: PositionsValue = Field(
        default=None,
        description="Token positions: null = every position; a list of integers (negative counts from the end of "
        "the sequence, or of the prompt during generation) shared by every row; a slice string 'a:b[:c]'; or one "
        "list per batch row (all rows the same length).",
    )
    heads: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Attention heads: the hidden size is split into n_heads blocks of d_head and only these blocks "
        "are selected; null = no head split.",
    )
    n_heads: int | None = Field(
        default=None,
        ge=1,
        description="Number of heads used to split the hidden size when heads are selected; null = the model "
        "config's num_attention_heads / n_head.",
    )

    @field_validator("positions")
    @classmethod
    def _positions(cls, value: PositionsValue) -> PositionsValue:
        return _check_positions(value, "positions")


class SourceFields(BaseModel):
    """Where a sourced intervention (interchange, DAS) gets its source run when attached by a chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_input_ids: list[list[int]] | None = Field(
        default=None,
        description="Token ids of the source run, one list per source row (all the same length); 1 row is "
        "broadcast to every base row.",
    )
    source_text: list[str] | None = Field(
        default=None,
        description="Texts of the source run, tokenized with the handle's tokenizer without special tokens; they "
        "must tokenize to the same length.",
    )
    source_positions: PositionsValue = Field(
        default=None,
        description="Positions read from the source run (same forms as positions); null = the base positions.",
    )

    @field_validator("source_positions")
    @classmethod
    def _source_positions(cls, value: PositionsValue) -> PositionsValue:
        return _check_positions(value, "source_positions")

    @field_validator("source_input_ids")
    @classmethod
    def _ids(cls, value: list[list[int]] | None) -> list[list[int]] | None:
        if value is not None:
            if not value or not value[0]:
                raise ValueError("source_input_ids needs at least one non-empty row")
            if len({len(row) for row in value}) != 1:
                raise ValueError("every row of source_input_ids must have the same length")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SourceFields:
        if self.source_input_ids is not None and self.source_text is not None:
            raise ValueError("give source_input_ids or source_text, not both")
        return self


class CollectConfig(UnitFields):
    """``collect``: record the selected activations of every forward pass."""

    artifact: str | None = Field(
        default=None,
        description="If set, a safetensors file name in the run directory written when the intervention is "
        "detached, one tensor per site and call ('<site>/<call>').",
    )


class ZeroConfig(UnitFields):
    """``zero``: out = 0 on the selected units."""


class AddConfig(UnitFields):
    """``add``: out = b + scale * v (activation steering)."""

    vector: list[float] = Field(min_length=1, description="The steering vector v (length = the selected hidden size).")
    scale: float = Field(default=1.0, description="The factor applied to v.")


class ScaleConfig(UnitFields):
    """``scale``: out = factor * b."""

    factor: float = Field(description="The multiplier.")


class ReplaceConfig(UnitFields):
    """``replace``: out = value (a constant or a vector broadcast over the selected units)."""

    value: float | list[float] = Field(description="A constant, or a vector of the selected hidden size.")


class NoiseConfig(UnitFields):
    """``noise``: out = b + std * eps with eps ~ N(0, 1) from a seeded generator."""

    std: float = Field(ge=0, description="Standard deviation of the Gaussian noise, in activation units.")
    seed: int | None = Field(default=None, description="Seed of the noise generator; null = the run's seed.")


class InterchangeConfig(UnitFields, SourceFields):
    """``interchange``: out = s (the source run's activation) on the selected units."""


class _TrainableFields(UnitFields, SourceFields):
    seed: int | None = Field(default=None, description="Seed of the initial parameters; null = the run's seed.")
    load_from: str | None = Field(
        default=None,
        description="A directory written by save_interventions; its trained weights replace the initial ones.",
    )
    index: int = Field(
        default=0, ge=0, description="Which saved intervention of load_from to use (order of the saved list)."
    )
    allow_nonfinite: bool = Field(
        default=False, description="Accept saved weights that hold NaN or infinite values (refused by default)."
    )


class RotatedConfig(_TrainableFields):
    """``rotated`` (DAS): interchange the first k coordinates in an orthogonally rotated basis."""

    interchange_dim: int = Field(ge=1, description="k, the number of rotated coordinates taken from the source.")


class LowRankRotatedConfig(_TrainableFields):
    """``low_rank_rotated``: out = b + (s W - b W) W^T with W a d x r matrix of orthonormal columns."""

    rank: int = Field(ge=1, description="r, the number of orthonormal columns of W.")


class BoundlessConfig(_TrainableFields):
    """``boundless``: a sigmoid mask with learnable boundary and temperature over the rotated coordinates."""

    init_boundary: float = Field(
        default=0.5, gt=0, lt=1, description="Initial boundary beta in (0, 1): the masked fraction of coordinates."
    )
    init_temperature: float = Field(
        default=1.0, gt=0, description="Initial temperature tau, in rotated coordinates (smaller = sharper mask)."
    )
    learn_temperature: bool = Field(default=True, description="Whether tau is trained with the boundary.")
