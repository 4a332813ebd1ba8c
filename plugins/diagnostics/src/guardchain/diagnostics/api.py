"""The Python API: :func:`diagnose` for a plain ``torch.nn.Module`` and a list of batches, :func:`diagnose_handle`
for a model an adapter loaded (what the ``fa_diagnostics`` chain step runs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pydantic import ValidationError

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.diagnostics.batches import PreparedBatch, check_disjoint, plain_batch
from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error
from guardchain.diagnostics.config import DiagnosticThresholds, FaDiagnosticsConfig, GrowthStatistic
from guardchain.diagnostics.engine import Measurements, measure
from guardchain.diagnostics.lm_data import REDUCTIONS, lm_batches, resolve_loss
from guardchain.diagnostics.precision import dtype_names, measurement_mode
from guardchain.diagnostics.probes import PLAIN_CONTRACT, PlainProbe, SiteProbe
from guardchain.diagnostics.report import DiagnosticReport

ThresholdsLike = DiagnosticThresholds | Mapping[str, float] | None


def _thresholds(value: ThresholdsLike) -> DiagnosticThresholds:
    if isinstance(value, DiagnosticThresholds):
        return value
    try:
        return DiagnosticThresholds(**dict(value or {}))
    except (ValidationError, TypeError) as exc:
        raise diag_error(DiagnosticsErrorCode.SETTINGS, f"invalid thresholds: {exc}", cause=exc) from exc


def _module(model: Any) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise diag_error(DiagnosticsErrorCode.MODEL, f"the model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _device(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def assemble_report(
    measured: Measurements,
    *,
    method_name: str,
    notes: str,
    thresholds: DiagnosticThresholds,
    growth_statistic: GrowthStatistic,
    headline_acc: float | None,
    frozen_baseline_acc: float | None,
    seeds: Mapping[str, int],
    batches: Sequence[PreparedBatch],
    setup: Mapping[str, Any],
) -> DiagnosticReport:
    """A :class:`DiagnosticReport` from the measurements; the headline accuracy is the caller's, else the one
    measured on the diagnostic batches (``setup.headline_source`` says which)."""
    measured_acc = measured.accuracy
    headline = headline_acc if headline_acc is not None else measured_acc
    facts = {
        **setup,
        "n_batches": len(batches),
        "tokens_per_batch": measured.tokens,
        "scored_per_batch": measured.scored,
        "loss_per_batch": measured.losses,
        "drift_mode": measured.drift_mode,
        "compute_dtype": measured.compute_dtype,
        "measured_accuracy": measured_acc,
        "headline_source": "given" if headline_acc is not None else ("measured" if headline is not None else None),
    }
    return DiagnosticReport(
        method_name=method_name,
        residual_norms=tuple(measured.residual_norms),
        bp_grad_norms=tuple(measured.bp_grad_norms),
        per_layer_stability=tuple(measured.stability),
        headline_acc=headline,
        frozen_baseline_acc=frozen_baseline_acc,
        thresholds=thresholds,
        growth_statistic=growth_statistic,
        notes=notes,
        grad_token_median=tuple(measured.grad_token_median),
        seeds=dict(seeds),
        batch_ids=tuple(b.ids for b in batches),
        setup=facts,
    )


def diagnose(
    model: torch.nn.Module,
    batches: Sequence[Any],
    *,
    thresholds: ThresholdsLike = None,
    growth_statistic: GrowthStatistic = "per_block",
    headline_acc: float | None = None,
    frozen_baseline_acc: float | None = None,
    method_name: str = "",
    notes: str = "",
    loss_fn: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
    batch_ids: Sequence[Sequence[str]] | None = None,
    seed: int | None = None,
    require_disjoint: bool = True,
) -> DiagnosticReport:
    """The four diagnostics on a plain module.

    The model follows the contract ``model(x, return_hidden=True) -> (logits, [h_0, ..., h_L])`` (faeval's), each
    ``h_l`` ``[B, d]`` (one token per sample) or ``[B, T, d]``, part of the graph of the logits. ``batches`` are
    ``(x, y)`` or ``(x, y, mask)`` (see :func:`~.batches.plain_batch`), at least two, disjoint (no sample in two
    batches; checked unless ``require_disjoint=False``); the first one is ``B_1`` for (a) and (b).

    The loss is the mean cross-entropy over scored positions unless ``loss_fn(logits, y) -> scalar`` is given
    (its reduction then is the caller's, recorded as such). The model runs in eval mode, in float32 when its
    weights are half precision (restored after), with its parameters' ``requires_grad`` as they are (a hidden
    state must be connected to the loss).

    :param headline_acc: the accuracy (fraction) that (d) compares; ``None`` = the arg-max accuracy measured on
        the batches (when the loss is the default one).
    :param frozen_baseline_acc: the frozen-random-blocks accuracy (:func:`~.frozen.frozen_blocks_baseline`);
        ``None`` skips (d).
    :param batch_ids: ids of each batch's samples (default ``b<k>:<row>``).
    :param seed: the seed that drew the batches, recorded in the report.
    :raises GuardchainError: ``GC-DIAG-*`` codes (see the member's README).
    """
    module = _module(model)
    if len(batches) < 2:
        raise diag_error(
            DiagnosticsErrorCode.BATCHES, f"the drift check (c) needs at least two disjoint batches, got {len(batches)}"
        )
    if batch_ids is not None and len(batch_ids) != len(batches):
        raise diag_error(DiagnosticsErrorCode.BATCHES, f"{len(batch_ids)} batch_ids for {len(batches)} batches")
    limits = _thresholds(thresholds)
    device = _device(module)
    prepared = [plain_batch(b, k, device, None if batch_ids is None else batch_ids[k]) for k, b in enumerate(batches)]
    if loss_fn is None and any(p.targets is None for p in prepared):
        raise diag_error(
            DiagnosticsErrorCode.SETTINGS,
            "y holds floating-point values, but the default loss is the cross-entropy of int64 class labels",
            hint="pass integer labels, or loss_fn=lambda logits, y: <scalar loss>",
        )
    if require_disjoint:
        check_disjoint([p.inputs[0] for p in prepared if isinstance(p.inputs, tuple)])
    custom = None
    if loss_fn is not None:
        user_loss = loss_fn

        def custom(logits: torch.Tensor, batch: PreparedBatch) -> torch.Tensor:
            return user_loss(logits, batch.loss_target)

    model_dtypes = dtype_names(module)
    probe = PlainProbe(module)
    with measurement_mode(module, freeze_parameters=False):
        measured = measure(probe, prepared, custom)
    reduction = (
        f"caller's loss_fn {getattr(loss_fn, '__qualname__', type(loss_fn).__name__)}"
        if loss_fn is not None
        else "mean cross-entropy over scored positions (nats)"
    )
    return assemble_report(
        measured,
        method_name=method_name or type(module).__name__,
        notes=notes,
        thresholds=limits,
        growth_statistic=growth_statistic,
        headline_acc=headline_acc,
        frozen_baseline_acc=frozen_baseline_acc,
        seeds={} if seed is None else {"batches": seed},
        batches=prepared,
        setup={"contract": PLAIN_CONTRACT, "reduction": reduction, "model_dtypes": model_dtypes},
    )


def _site_probe(handle: ModelHandle, adapter: Any, model: torch.nn.Module) -> SiteProbe:
    resolve = getattr(adapter, "resolve_sites", None)
    if adapter is None or not callable(resolve):
        who = "there is no adapter" if adapter is None else f"{type(adapter).__name__} has no resolve_sites()"
        raise diag_error(DiagnosticsErrorCode.NO_ADAPTER, f"fa_diagnostics reads blocks through the adapter, but {who}")
    try:
        inputs = list(resolve(handle, "blocks[*].input"))
        outputs = list(resolve(handle, "blocks[-1].output"))
    except GuardchainError as exc:
        first = exc.problems[0]
        raise diag_error(
            DiagnosticsErrorCode.NO_BLOCKS,
            f"the adapter cannot address the blocks of {handle.ref!r}: {first.code} {first.message}",
            hint="the protocol needs a model whose residual stream the adapter resolves as blocks[*].input",
            cause=exc,
        ) from exc
    except Exception as exc:
        raise diag_error(
            DiagnosticsErrorCode.NO_BLOCKS,
            f"the adapter cannot address the blocks of {handle.ref!r}: {type(exc).__name__}: {exc}",
            cause=exc,
        ) from exc
    if not inputs or len(outputs) != 1:
        raise diag_error(DiagnosticsErrorCode.NO_BLOCKS, f"the adapter resolved no blocks for {handle.ref!r}")
    return SiteProbe(model, inputs, outputs[0])


def diagnose_handle(
    handle: ModelHandle,
    adapter: Any,
    data: Any,
    config: FaDiagnosticsConfig | None = None,
    *,
    seed: int = 0,
) -> DiagnosticReport:
    """The four diagnostics on ``handle.model`` with hidden states read through ``adapter.resolve_sites`` and
    batches drawn from ``data`` (``TokenWindows`` or ``LabeledTexts``; see :mod:`.lm_data`).

    :param config: the step's settings (thresholds, batches, loss, accuracies); defaults when ``None``.
    :param seed: the seed of the batch draw and of the masking (``config.seed`` wins when set).
    :raises GuardchainError: ``GC-DIAG-*`` codes (see the member's README).
    """
    cfg = config or FaDiagnosticsConfig()
    model = _module(handle.model)
    used_seed = cfg.seed if cfg.seed is not None else seed
    probe = _site_probe(handle, adapter, model)
    loss, loss_source = resolve_loss(cfg.loss, handle, data)
    batches, facts = lm_batches(handle, data, cfg, loss, used_seed, _device(model))
    model_dtypes = dtype_names(model)
    with measurement_mode(model, freeze_parameters=True):
        measured = measure(probe, batches)
    seeds = {"batches": used_seed, **({"masking": used_seed} if loss == "masked_lm" else {})}
    setup = {
        "model_ref": handle.ref,
        "adapter": handle.adapter,
        "loss": loss,
        "loss_source": loss_source,
        "reduction": REDUCTIONS[loss],
        "model_dtypes": model_dtypes,
        "batch_size": cfg.batch_size,
        "n_batches_requested": cfg.n_batches,
        "sites": {"h_0..h_L-1": "blocks[*].input", "h_L": "blocks[-1].output"},
        **facts,
    }
    return assemble_report(
        measured,
        method_name=cfg.method_name or handle.ref,
        notes=cfg.notes,
        thresholds=cfg.thresholds,
        growth_statistic=cfg.growth_statistic,
        headline_acc=cfg.headline_acc,
        frozen_baseline_acc=cfg.frozen_baseline_acc,
        seeds=seeds,
        batches=batches,
        setup=setup,
    )
