"""Unit addressing inside a site's activation: positions (shared, slice or per row), heads, head x position.

A site's activation is a tensor ``(batch B, positions T, hidden D)``. :class:`Units` selects from it:

* ``positions``: ``None`` (every position), an ``int``, a ``slice``, a list of ints shared by every row, or one
  list per row (``B`` lists of equal length ``P``). Negative positions count from the end, Python style.
* ``heads``: split ``D`` into ``n_heads`` blocks of ``d_head = D / n_heads`` (the usual multi-head layout, as in
  GPT-2's and Llama's attention projections) and keep the listed blocks.

The selected tensor always keeps every axis: ``(B, P, D)`` without heads, ``(B, P, h, d_head)`` with ``h`` heads
(``P = T`` when every position is selected). Positions are never folded into features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch

from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.config import SLICE_PATTERN, PositionsValue

PositionSpec: TypeAlias = int | slice | Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | None


@dataclass(frozen=True)
class Units:
    """Where an intervention acts inside each activation of its site.

    :ivar positions: token positions (see the module docstring); ``None`` = every position.
    :ivar heads: head indices (``None`` = no head split); negative counts from the end.
    :ivar n_heads: heads the hidden size is split into; ``None`` = the model config's (set when binding).
    :ivar source_positions: positions read from the source run (sourced interventions); ``None`` = ``positions``.
    """

    positions: PositionSpec = None
    heads: Sequence[int] | None = None
    n_heads: int | None = None
    source_positions: PositionSpec = None

    @classmethod
    def from_config(cls, config: Any) -> Units:
        """Units from a config model carrying :class:`~guardchain.interventions.config.UnitFields` (and, for
        sourced interventions, ``source_positions``)."""
        return cls(
            positions=_from_value(config.positions),
            heads=None if config.heads is None else tuple(config.heads),
            n_heads=config.n_heads,
            source_positions=_from_value(getattr(config, "source_positions", None)),
        )

    def to_config(self) -> dict[str, Any]:
        """JSON-ready unit fields (slices as ``"a:b:c"`` strings, tensors as lists)."""
        return {
            "positions": _to_value(self.positions),
            "heads": None if self.heads is None else [int(h) for h in self.heads],
            "n_heads": self.n_heads,
            "source_positions": _to_value(self.source_positions),
        }


def _from_value(value: PositionsValue) -> PositionSpec:
    if isinstance(value, str):
        match = SLICE_PATTERN.match(value)
        if match is None:
            raise intervention_error(InterventionErrorCode.UNITS, f"{value!r} is not a slice 'a:b[:c]'")
        start, stop, step = (None if g is None else int(g) for g in match.groups())
        return slice(start, stop, step)
    return value


def _to_value(spec: PositionSpec) -> PositionsValue:
    if spec is None:
        return None
    if isinstance(spec, slice):
        parts = ["" if v is None else str(v) for v in (spec.start, spec.stop, spec.step)]
        return ":".join(parts) if spec.step is not None else ":".join(parts[:2])
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, torch.Tensor):
        listed = spec.tolist()
        return listed if isinstance(listed, list) else [int(listed)]
    rows: list[Any] = list(spec)
    if rows and not isinstance(rows[0], int):
        return [[int(p) for p in row] for row in rows]
    return [int(p) for p in rows]


@dataclass(frozen=True)
class PositionSelection:
    """Resolved positions of one activation.

    :ivar index: ``None`` for every position, a ``LongTensor (P,)`` shared by every row, or ``(B, P)`` per row;
        all non-negative and inside ``[0, length)``.
    :ivar count: ``P`` (``length`` when every position is selected).
    """

    index: torch.Tensor | None
    count: int

    @property
    def per_row(self) -> bool:
        return self.index is not None and self.index.dim() == 2


def _units_error(message: str, **details: Any) -> Exception:
    return intervention_error(InterventionErrorCode.UNITS, message, details=details)


def _checked(values: list[int], length: int, what: str) -> list[int]:
    out = []
    for p in values:
        if not -length <= p < length:
            raise _units_error(
                f"{what}: position {p} is out of range for a sequence of {length} positions "
                f"(valid: 0..{length - 1} or -{length}..-1)",
                position=p,
                length=length,
            )
        out.append(p % length)
    if len(set(out)) != len(out):
        raise _units_error(f"{what}: positions {values} select the same position twice", positions=values)
    return out


def resolve_positions(
    spec: PositionSpec, batch: int, length: int, device: torch.device, *, what: str = "positions"
) -> PositionSelection:
    """Resolve ``spec`` against an activation of ``batch`` rows and ``length`` positions.

    :raises GuardchainError: ``GC-INTERVENTION-UNITS`` for out-of-range or repeated positions, an empty selection,
        or per-row lists whose number differs from ``batch`` or whose lengths differ.
    """
    if spec is None:
        return PositionSelection(None, length)
    if isinstance(spec, slice):
        chosen = list(range(length))[spec]
        if not chosen:
            raise _units_error(f"{what}: the slice {spec} selects no position of {length}", length=length)
        return PositionSelection(torch.tensor(chosen, dtype=torch.long, device=device), len(chosen))
    if isinstance(spec, int):
        spec = [spec]
    if isinstance(spec, torch.Tensor):
        spec = spec.tolist()
        if isinstance(spec, int):
            spec = [spec]
    rows: list[Any] = list(spec)
    if not rows:
        raise _units_error(f"{what}: an empty position list selects nothing (use None for every position)")
    if isinstance(rows[0], int):
        chosen = _checked([int(p) for p in rows], length, what)
        return PositionSelection(torch.tensor(chosen, dtype=torch.long, device=device), len(chosen))
    per_row = [list(row) for row in rows]
    if len(per_row) != batch:
        raise _units_error(
            f"{what}: {len(per_row)} per-row position lists for a batch of {batch} rows",
            rows=len(per_row),
            batch=batch,
        )
    widths = {len(row) for row in per_row}
    if len(widths) != 1 or 0 in widths:
        raise _units_error(f"{what}: per-row position lists must be non-empty and of equal length, got {widths}")
    resolved = [_checked([int(p) for p in row], length, f"{what} row {i}") for i, row in enumerate(per_row)]
    return PositionSelection(torch.tensor(resolved, dtype=torch.long, device=device), widths.pop())


def resolve_heads(heads: Sequence[int] | None, n_heads: int | None, hidden: int) -> tuple[torch.Tensor, int] | None:
    """``(head index LongTensor (h,), n_heads)`` or ``None`` when no head is selected.

    :raises GuardchainError: ``GC-INTERVENTION-UNITS`` if ``n_heads`` is unknown or does not divide ``hidden``, or
        a head is out of range or repeated.
    """
    if heads is None:
        return None
    if n_heads is None:
        raise _units_error("heads were selected but the number of heads is unknown: set n_heads")
    if hidden % n_heads:
        raise _units_error(
            f"a hidden size of {hidden} cannot be split into {n_heads} heads", hidden=hidden, n_heads=n_heads
        )
    chosen = []
    for h in heads:
        if not -n_heads <= h < n_heads:
            raise _units_error(f"head {h} is out of range for {n_heads} heads", head=h, n_heads=n_heads)
        chosen.append(h % n_heads)
    if len(set(chosen)) != len(chosen):
        raise _units_error(f"heads {list(heads)} select the same head twice")
    return torch.tensor(chosen, dtype=torch.long), n_heads


def _index(
    batch: int, selection: PositionSelection, heads: torch.Tensor | None, device: torch.device
) -> tuple[Any, ...]:
    """Advanced-index tuple into ``(B, T, D)`` (no heads) or ``(B, T, H, d_head)`` (heads)."""
    index = selection.index
    rows = torch.arange(batch, device=device)
    if heads is None:
        if index is None:
            return ()
        return (slice(None), index) if index.dim() == 1 else (rows[:, None], index)
    heads = heads.to(device)
    if index is None:
        return (slice(None), slice(None), heads)
    if index.dim() == 1:
        return (slice(None), index[:, None], heads[None, :])
    return (rows[:, None, None], index[:, :, None], heads[None, None, :])


def _split_heads(activation: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, T, n_heads, D / n_heads)`` (a view when the activation is contiguous)."""
    return activation.reshape(*activation.shape[:-1], n_heads, activation.shape[-1] // n_heads)


def gather(
    activation: torch.Tensor, selection: PositionSelection, heads: tuple[torch.Tensor, int] | None
) -> torch.Tensor:
    """The selected units: ``(B, P, D)`` or ``(B, P, h, d_head)``."""
    batch = activation.shape[0]
    if heads is None:
        index = _index(batch, selection, None, activation.device)
        picked: torch.Tensor = activation[index] if index else activation
        return picked
    head_index, n_heads = heads
    split = _split_heads(activation, n_heads)
    picked = split[_index(batch, selection, head_index, activation.device)]
    return picked


def scatter(
    activation: torch.Tensor,
    selection: PositionSelection,
    heads: tuple[torch.Tensor, int] | None,
    values: torch.Tensor,
) -> torch.Tensor:
    """A new activation equal to ``activation`` except on the selected units, which hold ``values`` (out of
    place, differentiable)."""
    batch = activation.shape[0]
    values = values.to(activation.dtype)
    if heads is None:
        index = _index(batch, selection, None, activation.device)
        if not index:
            return values.expand_as(activation)
        return activation.index_put(_broadcast(index, batch, activation.device), values)
    head_index, n_heads = heads
    split = _split_heads(activation, n_heads)
    if selection.index is None:
        shape = (*split.shape[:2], head_index.numel(), split.shape[-1])
        return split.index_copy(2, head_index.to(activation.device), values.expand(shape)).flatten(-2)
    index = _index(batch, selection, head_index, activation.device)
    return split.index_put(_broadcast(index, batch, activation.device), values).flatten(-2)


def _broadcast(index: tuple[Any, ...], batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """``index_put`` takes tensors only: a leading full slice (the batch axis) becomes a broadcastable arange."""
    if not isinstance(index[0], slice):
        return tuple(index)
    rows = torch.arange(batch, device=device).view([batch] + [1] * (len(index) - 1))
    return (rows, *index[1:])
