"""Trainable interventions: distributed alignment search (DAS) in full, low-rank and boundless form.

With ``b`` the base and ``s`` the source units (row vectors of size ``d``, the selected hidden size):

* ``rotated`` — Geiger et al. 2024, *Finding Alignments Between Interpretable Causal Variables and Distributed
  Neural Representations* (DAS): an orthogonal ``R`` (d x d); the first ``k`` rotated coordinates of ``b R`` are
  replaced by those of ``s R`` and the result is rotated back:
  ``out = b + ((s - b) R[:, :k]) R[:, :k]^T``.
* ``low_rank_rotated`` — the same with only the ``r`` columns that are interchanged: ``W`` (d x r) with orthonormal
  columns, ``out = b + (s W - b W) W^T`` (pyvene's LowRankRotatedSpaceIntervention).
* ``boundless`` — Wu et al. 2023, *Interpretability at Scale: Identifying Causal Mechanisms in Alpaca* (Boundless
  DAS): a soft mask over the rotated coordinates ``m_j = sigmoid((beta d - j - 1/2) / tau)`` (``j = 0..d-1``) with a
  learnable boundary ``beta`` in (0, 1) and temperature ``tau`` > 0: ``out = b + (((s - b) R) * m) R^T``. The
  mask is ~1 on the first ``beta d`` coordinates and ~0 after them; a small ``tau`` makes it a step. (pyvene
  multiplies a second sigmoid for the lower edge at 0, which halves the first coordinate's weight; here the lower
  edge is left out.)

Orthogonality is kept by ``torch.nn.utils.parametrizations.orthogonal`` (matrix exponential map). Loading saved
weights re-creates ``R`` bit for bit and ``W`` to float rounding (torch completes ``W`` to a square basis).
Parameters are created under ``torch.random.fork_rng`` seeded with ``seed``, so the global RNG is untouched and the
start is reproducible.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from pydantic import BaseModel
from torch.nn.utils.parametrizations import orthogonal

from guardchain.interventions.base import Intervention, check_source
from guardchain.interventions.catalog import lookup
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.config import BoundlessConfig, LowRankRotatedConfig, RotatedConfig


def _orthogonal_linear(rows: int, dim: int, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # matrix_exp for every shape: torch's default for non-square matrices (Householder) keeps a sign diagonal
        # that an optimizer with weight decay would silently destroy.
        return orthogonal(torch.nn.Linear(dim, rows, bias=False), orthogonal_map="matrix_exp")


def _weight(module: torch.nn.Module) -> torch.Tensor:
    """The (parametrized) weight of ``module``."""
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError("expected a weight tensor")
    return weight


def _assign_weight(module: Any, value: torch.Tensor) -> None:
    """Assign an orthogonal matrix through the parametrization's right inverse (exact for square matrices)."""
    original: torch.Tensor = module.parametrizations.weight.original
    with torch.no_grad():
        module.weight = value.to(original)


def _require_dim(dim: int | None, name: str) -> int:
    if dim is None:
        raise intervention_error(
            InterventionErrorCode.SHAPE, f"{name} needs the selected hidden size to build its parameters"
        )
    return dim


class _Trainable(Intervention):
    trainable = True
    needs_source = True

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError("dim must be positive")
        self.dim = int(dim)
        self.seed = int(seed)

    def _checked(self, base: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        if base.shape[-1] != self.dim:
            raise intervention_error(
                InterventionErrorCode.SHAPE,
                f"{self.plugin_name} was built for a hidden size of {self.dim} but the selected units have "
                f"{base.shape[-1]} (selection shape {tuple(base.shape)})",
            )
        return check_source(base, source, self.plugin_name)

    def _load_exact(self, tensors: dict[str, torch.Tensor]) -> None:
        config = lookup(self.plugin_name)[1].model_validate(self.params())
        expected = self.tensor_shapes(config, self.dim)
        if set(tensors) != set(expected):
            raise intervention_error(
                InterventionErrorCode.LOAD,
                f"{self.plugin_name} expects tensors {sorted(expected)}, got {sorted(tensors)}",
            )
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != shape:
                raise intervention_error(
                    InterventionErrorCode.LOAD,
                    f"{self.plugin_name}: tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {shape}",
                )


class RotatedSpace(_Trainable):
    """``rotated``: full DAS with an orthogonal ``d x d`` rotation; interchanges the first ``interchange_dim``
    rotated coordinates (formula in the module docstring)."""

    def __init__(self, dim: int, interchange_dim: int, seed: int = 0) -> None:
        super().__init__(dim, seed)
        if not 1 <= interchange_dim <= dim:
            raise intervention_error(
                InterventionErrorCode.SHAPE, f"rotated: interchange_dim {interchange_dim} is not in 1..{dim}"
            )
        self.interchange_dim = int(interchange_dim)
        self.rotate = _orthogonal_linear(dim, dim, seed)

    @property
    def rotation(self) -> torch.Tensor:
        """``R`` (d x d, orthogonal); rotated coordinates are ``x R``."""
        return _weight(self.rotate)

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        s = self._checked(base, source)
        basis = self.rotation[:, : self.interchange_dim].to(base.dtype)
        return base + ((s - base) @ basis) @ basis.T

    def params(self) -> dict[str, Any]:
        return {"interchange_dim": self.interchange_dim, "seed": self.seed}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"rotation": self.rotation.detach()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._load_exact(tensors)
        _assign_weight(self.rotate, tensors["rotation"])

    @classmethod
    def tensor_shapes(cls, config: BaseModel, dim: int | None) -> dict[str, tuple[int, ...]]:
        d = _require_dim(dim, cls.plugin_name)
        return {"rotation": (d, d)}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> RotatedSpace:
        c = cast(RotatedConfig, config)
        return cls(_require_dim(dim, cls.plugin_name), c.interchange_dim, seed if c.seed is None else c.seed)


class LowRankRotatedSpace(_Trainable):
    """``low_rank_rotated``: ``out = b + (s W - b W) W^T`` with ``W`` (d x rank) of orthonormal columns."""

    def __init__(self, dim: int, rank: int, seed: int = 0) -> None:
        super().__init__(dim, seed)
        if not 1 <= rank <= dim:
            raise intervention_error(InterventionErrorCode.SHAPE, f"low_rank_rotated: rank {rank} is not in 1..{dim}")
        self.rank = int(rank)
        self.project = _orthogonal_linear(rank, dim, seed)

    @property
    def basis(self) -> torch.Tensor:
        """``W`` (d x rank), orthonormal columns."""
        return _weight(self.project).T

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        s = self._checked(base, source)
        w = self.basis.to(base.dtype)
        return base + (s @ w - base @ w) @ w.T

    def params(self) -> dict[str, Any]:
        return {"rank": self.rank, "seed": self.seed}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"basis": self.basis.detach().contiguous()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._load_exact(tensors)
        _assign_weight(self.project, tensors["basis"].T.contiguous())

    @classmethod
    def tensor_shapes(cls, config: BaseModel, dim: int | None) -> dict[str, tuple[int, ...]]:
        return {"basis": (_require_dim(dim, cls.plugin_name), cast(LowRankRotatedConfig, config).rank)}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> LowRankRotatedSpace:
        c = cast(LowRankRotatedConfig, config)
        return cls(_require_dim(dim, cls.plugin_name), c.rank, seed if c.seed is None else c.seed)


class BoundlessRotatedSpace(_Trainable):
    """``boundless``: a learned soft boundary over the rotated coordinates (formula in the module docstring)."""

    def __init__(
        self,
        dim: int,
        init_boundary: float = 0.5,
        init_temperature: float = 1.0,
        learn_temperature: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(dim, seed)
        if not 0 < init_boundary < 1 or init_temperature <= 0:
            raise ValueError("boundless: init_boundary must be in (0, 1) and init_temperature positive")
        self.init_boundary = float(init_boundary)
        self.init_temperature = float(init_temperature)
        self.learn_temperature = bool(learn_temperature)
        self.rotate = _orthogonal_linear(dim, dim, seed)
        logit = math.log(init_boundary / (1 - init_boundary))
        self.boundary_logit = torch.nn.Parameter(torch.tensor(logit, dtype=torch.float32))
        self.log_temperature = torch.nn.Parameter(
            torch.tensor(math.log(init_temperature), dtype=torch.float32), requires_grad=learn_temperature
        )

    @property
    def rotation(self) -> torch.Tensor:
        """``R`` (d x d, orthogonal)."""
        return _weight(self.rotate)

    @property
    def boundary(self) -> torch.Tensor:
        """``beta`` in (0, 1): the fraction of rotated coordinates taken from the source."""
        return torch.sigmoid(self.boundary_logit)

    @property
    def temperature(self) -> torch.Tensor:
        """``tau`` > 0, in rotated coordinates."""
        return torch.exp(self.log_temperature)

    def set_temperature(self, value: float) -> None:
        """Set ``tau`` (e.g. to anneal it during training)."""
        with torch.no_grad():
            self.log_temperature.fill_(math.log(value))

    def mask(self) -> torch.Tensor:
        """``m`` (d,), ``m_j = sigmoid((beta d - j - 1/2) / tau)``."""
        j = torch.arange(self.dim, device=self.boundary_logit.device, dtype=torch.float32) + 0.5
        return torch.sigmoid((self.boundary * self.dim - j) / self.temperature)

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        s = self._checked(base, source)
        r = self.rotation.to(base.dtype)
        return base + (((s - base) @ r) * self.mask().to(base.dtype)) @ r.T

    def params(self) -> dict[str, Any]:
        return {
            "init_boundary": self.init_boundary,
            "init_temperature": self.init_temperature,
            "learn_temperature": self.learn_temperature,
            "seed": self.seed,
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "rotation": self.rotation.detach(),
            "boundary_logit": self.boundary_logit.detach().reshape(1),
            "log_temperature": self.log_temperature.detach().reshape(1),
        }

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._load_exact(tensors)
        _assign_weight(self.rotate, tensors["rotation"])
        with torch.no_grad():
            self.boundary_logit.copy_(tensors["boundary_logit"].reshape(()))
            self.log_temperature.copy_(tensors["log_temperature"].reshape(()))

    @classmethod
    def tensor_shapes(cls, config: BaseModel, dim: int | None) -> dict[str, tuple[int, ...]]:
        d = _require_dim(dim, cls.plugin_name)
        return {"rotation": (d, d), "boundary_logit": (1,), "log_temperature": (1,)}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> BoundlessRotatedSpace:
        c = cast(BoundlessConfig, config)
        return cls(
            _require_dim(dim, cls.plugin_name),
            c.init_boundary,
            c.init_temperature,
            c.learn_temperature,
            seed if c.seed is None else c.seed,
        )
