"""Diagnostic (d)'s control: the same architecture with its blocks frozen at initialisation, trained for the same
budget by the caller's training function (embeddings and head train; the blocks stay random).

A trainable network whose accuracy does not beat this control by ``frozen_margin_pp`` gains nothing from training
its deep blocks (faeval, Y. Hao: ``protocol/protocol.py``'s frozen-baseline comparator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error

BlocksSpec = str | Callable[[torch.nn.Module], Iterable[torch.nn.Module]]


@dataclass(frozen=True)
class FrozenBaseline:
    """What :func:`frozen_blocks_baseline` measured.

    :ivar accuracy: the evaluation's accuracy of the frozen-blocks network (a fraction); pass it as
        ``frozen_baseline_acc``.
    :ivar seed: the seed the network was built and trained under.
    :ivar frozen_parameters: scalar parameters kept at their initial values (the blocks').
    :ivar trained_parameters: scalar parameters left to the training function.
    """

    accuracy: float
    seed: int
    frozen_parameters: int
    trained_parameters: int


def _block_parameters(model: torch.nn.Module, blocks: BlocksSpec) -> list[torch.nn.Parameter]:
    try:
        modules = [model.get_submodule(blocks)] if isinstance(blocks, str) else list(blocks(model))
    except AttributeError as exc:
        raise diag_error(
            DiagnosticsErrorCode.FROZEN, f"the model has no submodule {blocks!r} holding its blocks", cause=exc
        ) from exc
    found: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            found.setdefault(id(parameter), parameter)
    return list(found.values())


def frozen_blocks_baseline(
    make_model: Callable[[], torch.nn.Module],
    train: Callable[[torch.nn.Module], Any],
    evaluate: Callable[[torch.nn.Module], float],
    *,
    seed: int,
    blocks: BlocksSpec = "blocks",
) -> FrozenBaseline:
    """Build the network under ``seed``, freeze its blocks, train it with ``train``, evaluate it.

    ``torch.manual_seed(seed)`` is set before ``make_model()`` inside a forked RNG (the caller's global RNG state is
    untouched), so with the seed that built the trained network the frozen blocks hold exactly its initial
    weights. ``train(model)`` must be the trained network's own procedure and budget; it should optimise only
    parameters with ``requires_grad`` (the blocks' are off), and the blocks are checked bit for bit afterwards.

    :param blocks: the attribute path of the module holding the blocks (default ``"blocks"``), or a function
        returning the block modules.
    :raises GuardchainError: ``GC-DIAG-FROZEN`` when no block parameter or nothing else is found, a frozen
        parameter changed during training, or ``evaluate`` returned something that is not a fraction.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
        frozen = _block_parameters(model, blocks)
        if not frozen:
            raise diag_error(DiagnosticsErrorCode.FROZEN, f"the blocks ({blocks!r}) hold no parameter to freeze")
        frozen_ids = {id(p) for p in frozen}
        for parameter in frozen:
            parameter.requires_grad_(False)
        initial = [p.detach().clone() for p in frozen]
        trained = [p for p in model.parameters() if id(p) not in frozen_ids and p.requires_grad]
        if not trained:
            raise diag_error(DiagnosticsErrorCode.FROZEN, "with the blocks frozen, no parameter is left to train")
        train(model)
        moved = sum(1 for p, p0 in zip(frozen, initial, strict=True) if not torch.equal(p.detach(), p0))
        if moved:
            raise diag_error(
                DiagnosticsErrorCode.FROZEN,
                f"the training function changed {moved} frozen block parameter(s)",
                hint="optimise only parameters with requires_grad (e.g. [p for p in model.parameters() "
                "if p.requires_grad]) and no weight decay on frozen ones",
            )
        accuracy = evaluate(model)
    if not isinstance(accuracy, int | float) or not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
        raise diag_error(DiagnosticsErrorCode.FROZEN, f"evaluate() must return an accuracy in [0, 1], got {accuracy!r}")
    return FrozenBaseline(
        accuracy=float(accuracy),
        seed=seed,
        frozen_parameters=sum(p.numel() for p in frozen),
        trained_parameters=sum(p.numel() for p in trained),
    )
