"""What every guard's config shares: the ``mode``, the ``tier``, and one optional override per knob of the guard's
tier preset (pydantic only, no torch).

A threshold knob is declared once, as a field of its preset in :mod:`guardchain.guards.tiers` (type, bounds,
description); :func:`overrides_from` derives the config's override field from it, so adding a knob is one edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from guardchain.guards.tiers import GuardName, Tier, preset

Mode = Literal["monitor", "gate"]

C = TypeVar("C", bound="GuardConfig")


class GuardConfig(BaseModel):
    """Base of the four guards' configs.

    The fields named like a field of the guard's tier preset are overrides: ``None`` (the default) takes the tier's
    value; a per-family override (``kappa: {attn: 6.0}``) replaces only the families it names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(
        default="gate",
        description="'gate': may correct the subject and may fail the chain; 'monitor': reports only (warn, never "
        "fail, never corrects).",
    )
    tier: Tier = Field(default="balanced", description="Which row of the tier table supplies the thresholds.")

    #: the guard whose preset the overrides come from (set by :func:`overrides_from`)
    guard_name: ClassVar[GuardName | None] = None
    #: that preset's model (set by :func:`overrides_from`)
    preset_model: ClassVar[type[BaseModel] | None] = None

    def overrides(self) -> dict[str, Any]:
        """The preset fields set explicitly (not ``None``)."""
        model = type(self).preset_model
        names = model.model_fields if model is not None else {}
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def thresholds(self) -> BaseModel:
        """The tier's preset with this config's overrides applied (:func:`guardchain.guards.tiers.preset`)."""
        if self.guard_name is None:
            raise TypeError(f"{type(self).__name__} is not derived from a tier preset (see overrides_from)")
        return preset(self.guard_name, self.tier, self.overrides())


def overrides_from(guard: GuardName, preset_model: type[BaseModel]) -> Callable[[type[C]], type[C]]:
    """Class decorator: the config class extended by one optional override field per field of ``preset_model``,
    with the preset field's type, bounds and description (default ``None``: the tier's value).

    The result is a subclass with the same name, module and docstring (what ``guardchain config schema`` shows).
    """

    def derive(cls: type[C]) -> type[C]:
        fields: dict[str, Any] = {}
        for name, info in preset_model.model_fields.items():
            if name in cls.model_fields:
                raise TypeError(f"{cls.__name__}.{name} is a knob of {preset_model.__name__}: declare it there only")
            value_type: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            description = f"{info.description} Default (null): the tier's value."
            fields[name] = (value_type | None, Field(default=None, description=description))
        derived: type[C] = create_model(
            cls.__name__, __base__=cls, __module__=cls.__module__, __doc__=cls.__doc__, **fields
        )
        derived.__qualname__ = cls.__qualname__
        derived.guard_name = guard
        derived.preset_model = preset_model
        return derived

    return derive
