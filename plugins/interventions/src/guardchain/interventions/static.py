"""Static interventions: ``collect``, ``zero``, ``add``, ``scale``, ``replace``, ``noise`` and ``interchange``.

Formulas on the selected units (``b`` base, ``s`` source, ``v`` a constant vector; pyvene's Vanilla, Addition,
Zero and Noise interventions follow the same definitions, Wu et al. 2024, *pyvene*, NAACL demo):

=============  =========================================
collect        out = b (recorded, detached, cloned)
zero           out = 0
add            out = b + scale * v
scale          out = factor * b
replace        out = value (constant or vector)
noise          out = b + std * eps, eps ~ N(0, 1), seeded
interchange    out = s (source run, selected source units)
=============  =========================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from pydantic import BaseModel

from guardchain.interventions.base import Intervention, check_source, check_vector
from guardchain.interventions.config import AddConfig, NoiseConfig, ReplaceConfig, ScaleConfig


class Collect(Intervention):
    """Records the selected units of every forward pass, per site, with their true shape.

    ``records[site]`` is a list with one tensor per forward pass: ``(B, P, D)`` (``P = T`` when every position is
    selected) or ``(B, P, h, d_head)``; detached clones, on ``device`` if given (else where they were computed).
    """

    def __init__(self, device: str | torch.device | None = None) -> None:
        super().__init__()
        self.device = None if device is None else torch.device(device)
        self.records: dict[str, list[torch.Tensor]] = {}

    def intervene(self, base: torch.Tensor, source: torch.Tensor | None, *, site: str) -> torch.Tensor:
        kept = base.detach()
        kept = kept.clone() if self.device is None else kept.to(self.device, copy=True)
        self.records.setdefault(site, []).append(kept)
        return base

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return base

    def last(self, site: str) -> torch.Tensor:
        """The most recent record of ``site``."""
        return self.records[site][-1]

    def clear(self) -> None:
        """Forget every record."""
        self.records.clear()

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Collect:
        return cls()


class Zero(Intervention):
    """out = 0 on the selected units (zero ablation)."""

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return torch.zeros_like(base)

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Zero:
        return cls()


class Add(Intervention):
    """out = b + scale * v: activation steering with a constant vector ``v`` of the selected hidden size."""

    vector: torch.Tensor

    def __init__(self, vector: torch.Tensor | Sequence[float], scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("vector", torch.as_tensor(vector, dtype=torch.float32).detach().clone().reshape(-1))
        self.scale = float(scale)

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        check_vector(self.vector, base, "add: the vector")
        return base + self.scale * self.vector.to(base.dtype)

    def params(self) -> dict[str, Any]:
        return {"vector": [float(x) for x in self.vector.tolist()], "scale": self.scale}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Add:
        c = cast(AddConfig, config)
        return cls(c.vector, c.scale)


class Scale(Intervention):
    """out = factor * b."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return base * self.factor

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Scale:
        return cls(cast(ScaleConfig, config).factor)


class Replace(Intervention):
    """out = value: a constant, or a vector of the selected hidden size broadcast over the units."""

    value: torch.Tensor

    def __init__(self, value: float | torch.Tensor | Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("value", torch.as_tensor(value, dtype=torch.float32).detach().clone())
        if self.value.dim() > 1:
            raise ValueError("replace: value must be a scalar or a vector")

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        if self.value.dim() == 1:
            check_vector(self.value, base, "replace: the value")
        return self.value.to(base.dtype).expand_as(base).clone()

    def params(self) -> dict[str, Any]:
        listed = self.value.tolist()
        return {"value": [float(x) for x in listed] if isinstance(listed, list) else float(listed)}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Replace:
        return cls(cast(ReplaceConfig, config).value)


class Noise(Intervention):
    """out = b + std * eps with eps ~ N(0, 1) drawn from a generator seeded with ``seed``.

    The generator is created per device on first use and advances with every call: the same seed and the same
    sequence of calls give the same noise. :meth:`reset` starts the sequence again.
    """

    def __init__(self, std: float, seed: int = 0) -> None:
        super().__init__()
        self.std = float(std)
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def reset(self) -> None:
        """Forget the generators: the next call draws the seed's first noise again."""
        self._generators.clear()

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        generator = self._generators.get(base.device)
        if generator is None:
            generator = torch.Generator(device=base.device).manual_seed(self.seed)
            self._generators[base.device] = generator
        eps = torch.randn(base.shape, generator=generator, device=base.device, dtype=torch.float32)
        return base + (self.std * eps).to(base.dtype)

    def params(self) -> dict[str, Any]:
        return {"std": self.std, "seed": self.seed}

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Noise:
        c = cast(NoiseConfig, config)
        return cls(c.std, seed if c.seed is None else c.seed)


class Interchange(Intervention):
    """out = s: the source run's selected units replace the base's (interchange intervention, Geiger et al. 2021,
    *Causal Abstractions of Neural Networks*)."""

    needs_source = True

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return check_source(base, source, "interchange").expand_as(base).clone()

    @classmethod
    def from_config(cls, config: BaseModel, *, dim: int | None, seed: int) -> Interchange:
        return cls()
