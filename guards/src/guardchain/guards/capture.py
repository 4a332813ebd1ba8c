"""One hooked forward pass per calibration window, reducing each site's activations to streaming sums.

For every site (adapter site strings resolved to :class:`~guardchain.core.handles.SiteRef`) the activation of one
window is a ``(positions, features)`` matrix ``A``; the capture keeps only

* the token count ``T``, the entry sum ``sum_tj A_tj`` and square sum ``sum_tj A_tj^2`` (per window in float32,
  accumulated in float64), and
* optionally the column sums ``A^T 1`` (``d``, float64) and the Gram matrix ``A^T A`` (``d x d``, float32),

so memory per site is ``O(d^2)`` (or ``O(1)``) whatever the number of tokens: 1.3 MB per site for SmolLM2's
``d = 576``, but 67 MB for ``d = 4096`` — restrict ``activation_sites`` on wide models.

Cost: one forward pass per window, stopped right after the last hooked module fires (the LM head and log-softmax
are skipped), plus ``O(T d^2)`` per site for the Gram. Rows are run one per forward so that stopping early never
skips part of a batch.

Captures are memoised per run (:mod:`guardchain.guards.runstate`) under a sketch of every parameter
(:func:`guardchain.guards.linalg.sketch`), the rows' digest and the site set, so ``rmt`` and ``variance`` share
the forward passes when the weights did not change between them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, ModelHandle, SiteRef
from guardchain.guards.codes import GuardErrorCode
from guardchain.guards.common import WindowRows, model_outputs, progress, torch_model
from guardchain.guards.linalg import sketch
from guardchain.guards.runstate import run_state


@dataclass
class SiteStats:
    """Streaming sums of one site's activations over the captured rows (see the module docstring).

    :ivar finite: ``False`` once any activation was NaN or infinite (the sums are then meaningless).
    """

    site: str
    module_path: str
    features: int = 0
    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    colsum: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    finite: bool = True

    @property
    def mean(self) -> float:
        """Mean over all entries."""
        return self.total / (self.count * self.features)

    @property
    def variance(self) -> float:
        """Population variance over all entries: ``E[a^2] - E[a]^2``."""
        n = self.count * self.features
        return max(self.total_sq / n - (self.total / n) ** 2, 0.0)

    def add(self, block: torch.Tensor, with_gram: bool) -> None:
        """Fold one ``(tokens, features)`` activation block into the sums."""
        if self.features == 0:
            self.features = int(block.shape[1])
        self.count += int(block.shape[0])
        if not self.finite:
            return
        x = block.to(torch.float32)
        col = x.sum(dim=0)  # one pass gives the column sums, their total and (with the square) the finiteness
        if with_gram:
            gram = x.T @ x
            square = torch.diagonal(gram).sum()
        else:
            gram = None
            square = torch.linalg.vector_norm(x) ** 2
        total, total_sq = float(col.sum()), float(square)
        if not (math.isfinite(total) and math.isfinite(total_sq)):
            self.finite = False  # NaN and inf propagate through both sums
            return
        self.total += total
        self.total_sq += total_sq
        if gram is not None:
            col64 = col.to(torch.float64).cpu()
            gram = gram.cpu()
            self.gram = gram if self.gram is None else self.gram + gram
            self.colsum = col64 if self.colsum is None else self.colsum + col64


class _Stop(Exception):
    """Raised by the last hook of a forward pass to skip the rest of the model."""


def model_sketch(model: torch.nn.Module) -> bytes:
    """Sketch of every parameter, in name order (the memo key of a capture)."""
    return b"".join(name.encode() + sketch(p) for name, p in sorted(model.named_parameters()))


def capture(
    adapter: Any,
    handle: ModelHandle,
    rows: WindowRows,
    sites: Sequence[SiteRef],
    *,
    with_gram: bool,
    context: RunContext,
    task: str,
) -> dict[str, SiteStats]:
    """Run each row through the model with hooks on ``sites``; return per-site :class:`SiteStats`, keyed by
    ``SiteRef.site``.

    :raises GuardchainError: ``GC-GUARD-SITE`` when a site's module is missing or its activation is not a floating
        tensor of shape ``(batch, positions, features)``.
    """
    model = torch_model(handle)
    names = frozenset(s.site for s in sites)
    state = run_state(context)
    key = (model_sketch(model), rows.digest())
    for cached_key, cached_sites, stats in state.captures:
        if (
            cached_key == key
            and names <= cached_sites
            and (not with_gram or all(stats[n].gram is not None or not stats[n].finite for n in names))
        ):
            return {n: stats[n] for n in names}
    result = _run(adapter, handle, model, rows, sites, with_gram, progress(context), task)
    state.captures.append((key, names, result))
    del state.captures[:-2]  # the baseline's and the latest subject's
    return result


def _run(
    adapter: Any,
    handle: ModelHandle,
    model: torch.nn.Module,
    rows: WindowRows,
    sites: Sequence[SiteRef],
    with_gram: bool,
    report: Callable[[str, int, int], None],
    task: str,
) -> dict[str, SiteStats]:
    modules = dict(model.named_modules())
    stats = {s.site: SiteStats(site=s.site, module_path=s.module_path) for s in sites}
    fired: set[str] = set()
    handles: list[Any] = []

    def take(ref: SiteRef, value: Any) -> None:
        if isinstance(value, tuple):
            value = value[int(ref.details.get("tuple_index", 0))]
        if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point or value.dim() < 2:
            raise GuardchainError.single(
                GuardErrorCode.SITE,
                f"site {ref.site!r} ({ref.module_path}) yields {type(value).__name__}, not a floating activation "
                "tensor of shape (batch, positions, features)",
            )
        block = value.detach().reshape(-1, value.shape[-1])
        stats[ref.site].add(block, with_gram)
        fired.add(ref.site)
        if len(fired) == len(stats):
            raise _Stop

    for ref in sites:
        module = modules.get(ref.module_path)
        if module is None:
            raise GuardchainError.single(GuardErrorCode.SITE, f"site {ref.site!r}: no module {ref.module_path!r}")
        if ref.hook == HookPoint.OUTPUT:
            handles.append(module.register_forward_hook(_output_hook(ref, take)))
        else:
            handles.append(module.register_forward_pre_hook(_input_hook(ref, take), with_kwargs=True))
    try:
        for index, row in enumerate(rows.rows):
            fired.clear()
            batch = {"input_ids": [list(row)], "attention_mask": [[1] * len(row)]}
            with contextlib.suppress(_Stop):
                model_outputs(adapter, handle, batch)
            missing = set(stats) - fired
            if missing:
                raise GuardchainError.single(
                    GuardErrorCode.SITE, f"sites never ran in the forward pass: {sorted(missing)}"
                )
            report(task, index + 1, len(rows.rows))
    finally:
        for hook in handles:
            hook.remove()
    return stats


def _output_hook(ref: SiteRef, take: Callable[[SiteRef, Any], None]) -> Callable[..., None]:
    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        take(ref, output)

    return hook


def _input_hook(ref: SiteRef, take: Callable[[SiteRef, Any], None]) -> Callable[..., None]:
    def hook(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
        name = ref.details.get("input_kwarg")
        take(ref, kwargs[name] if name is not None and name in kwargs else args[int(ref.details.get("input_arg", 0))])

    return hook
