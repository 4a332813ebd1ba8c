"""The base class of every torch intervention: a function of the selected base (and source) units.

An intervention sees only the units its binding selected (see :mod:`guardchain.interventions.units`): ``base`` is
``(B, P, D)`` or ``(B, P, h, d_head)``, ``source`` (sourced interventions only) has the same shape or a batch of 1.
It returns the new values of those units, or ``base`` itself to leave the activation untouched (read-only
interventions such as ``collect``). Interventions are ``nn.Module`` s, so trainable ones expose ``parameters()``
and move with ``.to(device)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel

from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.table import name_of


class Intervention(torch.nn.Module):
    """Base class. Subclasses implement :meth:`forward`; :attr:`plugin_name` (the registered name) is set from the
    class's row of :mod:`guardchain.interventions.table` when the class is created (a class of another package sets
    it itself)."""

    #: the registered plugin name, stored in saved configs instead of a Python type
    plugin_name: ClassVar[str]
    #: whether :meth:`forward` needs a source run's activation
    needs_source: ClassVar[bool] = False
    #: whether it has parameters to train (saved as safetensors)
    trainable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = name_of(f"{cls.__module__}:{cls.__qualname__}")
        if name is not None:
            cls.plugin_name = name

    def intervene(self, base: torch.Tensor, source: torch.Tensor | None, *, site: str) -> torch.Tensor:
        """Called by the hook of a binding at ``site``; returns the new values of the selected units."""
        out: torch.Tensor = self(base, source)
        return out

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The new values of the selected units (see the module docstring for shapes)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """JSON-ready constructor parameters (the registered config without its unit fields)."""
        return {}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Tensors saved as safetensors (trained weights); empty for static interventions."""
        return {}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back tensors produced by :meth:`tensors` (same names and shapes)."""
        if tensors:
            raise intervention_error(
                InterventionErrorCode.LOAD, f"{self.plugin_name} has no tensors to load, got {sorted(tensors)}"
            )

    @classmethod
    def tensor_shapes(cls, config: BaseModel, dim: int | None) -> dict[str, tuple[int, ...]]:
        """The names and shapes of the tensors :meth:`tensors` returns for an intervention built from ``config``
        and ``dim``, computed without building it (a loader checks a file against them before allocating);
        empty for static interventions."""
        return {}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Intervention:
        """Build from a validated registered config; ``dim`` is the selected hidden size (trainable ones need it),
        ``seed`` the seed to use when the config sets none."""
        raise NotImplementedError


def check_vector(vector: torch.Tensor, base: torch.Tensor, what: str) -> None:
    """Raise ``GC-INTERVENTION-SHAPE`` unless ``vector`` has the length of ``base``'s last axis."""
    if vector.shape[-1] != base.shape[-1]:
        raise intervention_error(
            InterventionErrorCode.SHAPE,
            f"{what} has length {vector.shape[-1]} but the selected units have hidden size {base.shape[-1]} "
            f"(selection shape {tuple(base.shape)})",
            details={"vector": vector.shape[-1], "selection": list(base.shape)},
        )


def check_source(base: torch.Tensor, source: torch.Tensor | None, what: str) -> torch.Tensor:
    """The source, checked against the base selection: same unit shape and a batch of 1 or ``B``.

    :raises GuardchainError: ``GC-INTERVENTION-SOURCE`` without a source, ``GC-INTERVENTION-SHAPE`` on mismatch.
    """
    if source is None:
        raise intervention_error(InterventionErrorCode.SOURCE, f"{what} needs a source run and none was given")
    if source.shape[1:] != base.shape[1:] or source.shape[0] not in (1, base.shape[0]):
        raise intervention_error(
            InterventionErrorCode.SHAPE,
            f"{what}: the source selection has shape {tuple(source.shape)} but the base selection "
            f"{tuple(base.shape)}; the unit shapes must agree and the source batch must be 1 or {base.shape[0]}",
            details={"source": list(source.shape), "base": list(base.shape)},
        )
    return source.to(base.dtype)
