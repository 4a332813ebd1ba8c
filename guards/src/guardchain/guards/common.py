"""Plumbing every guard uses: the adapter, parameters by name, calibration windows and progress (the report's
pieces are in :mod:`guardchain.guards.reporting`, which imports no torch)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle, ModelStructure, WeightFamily
from guardchain.core.kinds import CapabilityKind
from guardchain.guards.codes import GuardErrorCode

#: tokens per synthetic calibration window when the context carries no data (kept short: tiny models have few
#: positions)
SYNTHETIC_TOKENS = 32


def resolve_adapter(handle: ModelHandle, context: RunContext) -> Any:
    """The adapter of ``handle``: ``context.adapter``, else a default-configured one created from the registry by the
    handle's adapter name.

    :raises GuardchainError: ``GC-GUARD-ADAPTER-MISSING`` when neither is available.
    """
    if context.adapter is not None:
        return context.adapter
    if context.registry is not None and handle.adapter:
        try:
            return context.registry.create(CapabilityKind.ADAPTER, handle.adapter, {}).instance
        except GuardchainError as exc:
            raise GuardchainError.single(
                GuardErrorCode.ADAPTER_MISSING,
                f"the run context has no adapter and adapter {handle.adapter!r} cannot be created: {exc}",
                cause=exc,
            ) from exc
    raise GuardchainError.single(
        GuardErrorCode.ADAPTER_MISSING,
        "the run context has no adapter and no registry to create the handle's adapter from",
        hint="set context.adapter (certify and the chain runner do)",
    )


def torch_model(handle: ModelHandle) -> torch.nn.Module:
    """``handle.model`` as a ``torch.nn.Module`` (the guards measure torch models)."""
    model = handle.model
    if not isinstance(model, torch.nn.Module):
        raise GuardchainError.single(
            GuardErrorCode.ADAPTER_MISSING, f"the guards need a torch.nn.Module, got {type(model).__name__}"
        )
    return model


def parameter(model: torch.nn.Module, name: str) -> torch.Tensor | None:
    """The parameter called ``name`` (any alias of a tied one), or ``None`` if there is none."""
    try:
        return model.get_parameter(name)
    except (AttributeError, TypeError):
        return None


def progress(context: RunContext) -> Callable[[str, int, int], None]:
    """``context.report_progress`` when the context has it, else a no-op."""
    report = getattr(context, "report_progress", None)
    if callable(report):
        return report  # type: ignore[no-any-return]
    return lambda task, done, total: None


def require(condition: bool, message: str) -> None:
    """Raise ``GC-GUARD-LIFECYCLE`` unless ``condition``."""
    if not condition:
        raise GuardchainError.single(GuardErrorCode.LIFECYCLE, message)


@dataclass(frozen=True)
class WindowRows:
    """Token rows a guard runs the model on.

    :ivar rows: token ids per row (content only, no padding).
    :ivar ids: a stable id per row (the window id, or ``synthetic:<i>``).
    :ivar source: ``"preview"`` (from ``context.data``'s preview split) or ``"synthetic"`` (seeded ids).
    """

    rows: tuple[tuple[int, ...], ...]
    ids: tuple[str, ...]
    source: str

    def digest(self) -> str:
        """SHA-256 over the ids and tokens (the memo key of a capture)."""
        h = hashlib.sha256()
        for window_id, row in zip(self.ids, self.rows, strict=True):
            h.update(f"{window_id}|{len(row)}|".encode())
            h.update(b"".join(t.to_bytes(4, "little") for t in row))
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-ready provenance: source, ids, tokens per row."""
        return {"source": self.source, "ids": list(self.ids), "tokens": [len(r) for r in self.rows]}


def preview_rows(
    context: RunContext, handle: ModelHandle, structure: ModelStructure, *, count: int, tokens: int, offset: int = 0
) -> WindowRows:
    """Up to ``count`` rows of at most ``tokens`` tokens: preview windows ``offset .. offset + count`` of
    ``context.data``, never its final split; when ``context.data`` is ``None``, seeded random token ids (seed =
    ``context.seed``, ``SYNTHETIC_TOKENS`` per row, ids below the vocabulary size).

    :raises GuardchainError: ``GC-GUARD-DATA`` if ``context.data`` is something else, or has no preview windows
        at ``offset``.
    """
    data = context.data
    if data is None:
        vocab = _vocab_size(handle, structure)
        generator = torch.Generator().manual_seed(int(context.seed) * 1_000_003 + offset)
        length = min(tokens, SYNTHETIC_TOKENS)
        rows = tuple(
            tuple(int(t) for t in torch.randint(0, vocab, (length,), generator=generator)) for _ in range(count)
        )
        return WindowRows(rows, tuple(f"synthetic:{offset + i}" for i in range(count)), "synthetic")
    splits = getattr(data, "splits", None)
    if splits is None or not hasattr(data, "tokens") or not hasattr(data, "ids"):
        raise GuardchainError.single(
            GuardErrorCode.DATA,
            f"context.data is a {type(data).__name__}; the guards need token windows with a preview split",
        )
    preview = [i for i, split in enumerate(splits) if split == "preview"]
    chosen = preview[offset : offset + count]
    if not chosen:
        raise GuardchainError.single(
            GuardErrorCode.DATA,
            f"context.data has {len(preview)} preview windows; at least {offset + 1} are needed",
        )
    rows = tuple(tuple(int(t) for t in data.tokens[i][:tokens]) for i in chosen)
    if any(len(row) < 2 for row in rows):
        raise GuardchainError.single(GuardErrorCode.DATA, "a preview window has fewer than 2 tokens")
    return WindowRows(rows, tuple(str(data.ids[i]) for i in chosen), "preview")


def available_preview(context: RunContext) -> int:
    """How many preview windows ``context.data`` has (a large number for synthetic rows)."""
    splits = getattr(context.data, "splits", None)
    if context.data is None or splits is None:
        return 1 << 20
    return sum(1 for split in splits if split == "preview")


def _vocab_size(handle: ModelHandle, structure: ModelStructure) -> int:
    """Rows of the input embedding (``get_input_embeddings`` of transformers models), else the tokenizer's length,
    else the smallest embedding matrix (ids below it are valid for every embedding)."""
    getter = getattr(handle.model, "get_input_embeddings", None)
    embedding = getter() if callable(getter) else None
    weight = getattr(embedding, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    if handle.tokenizer is not None:
        return len(handle.tokenizer)
    embeds = [w for w in structure.weights if w.family == WeightFamily.EMBED and len(w.shape) == 2]
    if not embeds:
        raise GuardchainError.single(
            GuardErrorCode.DATA, "context.data is None and the model has no embedding to draw synthetic token ids"
        )
    return min(w.shape[0] for w in embeds)


def classifier_only(adapter: object, handle: ModelHandle) -> bool:
    """A model with a sequence-classification head and no language-model head (an encoder classifier): it has
    class logits but no per-token log-probabilities."""
    model = getattr(handle, "model", None)
    config = getattr(model, "config", None)
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    classifier = any(str(a).endswith("ForSequenceClassification") for a in architectures)
    return classifier and callable(getattr(adapter, "class_logits", None))


def model_outputs(adapter: object, handle: ModelHandle, batch: dict[str, Any]) -> Any:
    """One forward pass through the adapter: per-token log-probabilities, or class logits for a classifier-only
    model (:func:`classifier_only`). Guards use it to drive hooked forwards and to check outputs are finite."""
    if classifier_only(adapter, handle):
        return adapter.class_logits(handle, batch)  # type: ignore[attr-defined]
    return adapter.token_logprobs(handle, batch)  # type: ignore[attr-defined]
