"""``ppl``: token-weighted perplexity over token windows, with per-window NLL for paired comparison.

For window ``i`` with scored positions ``S_i`` (the finite entries of the adapter's ``token_logprobs``; NaN
marks positions where nothing is predicted: the first token of a causal LM, padding, special tokens):

    l_i = −(1/|S_i|) Σ_{t∈S_i} log p(x_t | context)     per-window mean NLL, nats/token  (``per_unit``)
    w_i = |S_i|                                          tokens scored                    (``unit_weights``)
    L̄   = Σ_i w_i l_i / Σ_i w_i                          token-weighted mean NLL
    ppl = exp(L̄)                                         (``value``)

so ``exp`` of the weighted mean of per-window NLL *differences* between two models on the same windows is exactly
the ratio of their perplexities (:mod:`guardchain.core.statistics`). For a masked LM the adapter scores each
position with that token masked, and the same formula gives the *pseudo*-perplexity (Salazar et al., 2020);
``details["mode"]`` says which (``"causal"`` or ``"pseudo"``).

Uncertainty: windows are treated as independent clusters of tokens, and L̄ as a ratio estimator with
sandwich (cluster-robust) variance ``Var(L̄) ≈ n/(n−1) · Σ_i (w_i/W)² (l_i − L̄)²`` with ``W = Σ_i w_i`` and
``n`` windows; by the delta method (``d exp(x)/dx = exp(x)``) ``SE(ppl) = ppl · sqrt(Var(L̄))``. ``None`` for a
single window.

A scored position whose log-probability is ±inf is an error (``GC-MODEL-NONFINITE``): dropping it would make a
broken model look better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.core.results import MetricResult
from guardchain.core.windows import TokenWindows, pad_token_id
from guardchain.metrics.batching import padded_batches
from guardchain.metrics.checks import require_adapter_method, require_data
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.config import PplConfig

Mode = Literal["causal", "pseudo"]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: ``handle.provenance["objective"]`` (or ``["head"]``) values an adapter may record, and the mode each means.
OBJECTIVES: dict[str, Mode] = {
    "causal": "causal",
    "causal_lm": "causal",
    "clm": "causal",
    "masked": "pseudo",
    "masked_lm": "pseudo",
    "mlm": "pseudo",
}


@dataclass(frozen=True)
class WindowScores:
    """Per-window sums from the adapter's log-probabilities.

    :ivar nll_sum: ``−Σ_{t∈S_i} log p``, nats, shape ``(n,)``.
    :ivar n_scored: ``|S_i|``, shape ``(n,)``.
    :ivar first_scored: whether position 0 was scored, shape ``(n,)`` (never for a causal LM).
    """

    nll_sum: Floats
    n_scored: Ints
    first_scored: npt.NDArray[np.bool_]


def _as_float64(values: Any) -> Floats:
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def score_windows(
    token_logprobs: Any,
    handle: ModelHandle,
    windows: TokenWindows,
    batch_size: int,
    padding: int,
    progress: Callable[[int, int], None] | None = None,
) -> WindowScores:
    """Call ``token_logprobs(handle, batch)`` on right-padded batches and reduce each window to sums.

    :param token_logprobs: the adapter's bound method; returns ``(B, T)`` log-probabilities, NaN where unscored.
    :param handle: the model.
    :param windows: the windows to score.
    :param batch_size: windows per call.
    :param padding: the id written on padded positions (masked out whatever the adapter returns there).
    :param progress: called with ``(windows scored, windows in all)`` after each batch.
    :raises GuardchainError: ``GC-METRIC-ADAPTER-OUTPUT`` (wrong shape), ``GC-MODEL-NONFINITE``.
    """
    nll_sum = np.zeros(len(windows), dtype=np.float64)
    n_scored = np.zeros(len(windows), dtype=np.int64)
    first_scored = np.zeros(len(windows), dtype=np.bool_)
    for batch in padded_batches(windows.tokens, batch_size, padding):
        with torch.no_grad():
            logprobs = _as_float64(token_logprobs(handle, batch.as_dict()))
        expected = tuple(batch.input_ids.shape)
        if logprobs.shape != expected:
            raise GuardchainError.single(
                MetricErrorCode.ADAPTER_OUTPUT,
                f"token_logprobs returned shape {logprobs.shape} for a batch of shape {expected}",
                expected=f"shape {expected}",
            )
        scored = (batch.attention_mask.numpy() == 1) & ~np.isnan(logprobs)
        infinite = scored & np.isinf(logprobs)
        if infinite.any():
            row = int(np.argwhere(infinite)[0, 0])
            raise GuardchainError.single(
                ErrorCode.MODEL_NONFINITE,
                f"window {windows.ids[batch.start + row]!r} has a token with log-probability "
                f"{float(logprobs[infinite][0])}: perplexity would be infinite",
            )
        rows = slice(batch.start, batch.start + expected[0])
        nll_sum[rows] = -np.where(scored, logprobs, 0.0).sum(axis=1)
        n_scored[rows] = scored.sum(axis=1)
        first_scored[rows] = scored[:, 0]
        if progress is not None:
            progress(batch.start + expected[0], len(windows))
    return WindowScores(nll_sum, n_scored, first_scored)


def weighted_perplexity(nll: Floats, weights: Floats) -> tuple[float, float, float | None]:
    """Token-weighted perplexity and its delta-method standard error (module docstring).

    :param nll: per-window mean NLL ``l_i``, nats/token, shape ``(n,)``.
    :param weights: tokens scored per window ``w_i``, shape ``(n,)``, positive.
    :returns: ``(ppl, L̄, SE(ppl))``; the SE is ``None`` when ``n < 2``.
    """
    total = float(weights.sum())
    mean = float(np.dot(weights, nll) / total)
    ppl = math.exp(mean)
    n = int(nll.shape[0])
    if n < 2:
        return ppl, mean, None
    share = weights / total
    variance = n / (n - 1) * float(np.sum(share**2 * (nll - mean) ** 2))
    return ppl, mean, ppl * math.sqrt(variance)


def objective_mode(handle: ModelHandle, scores: WindowScores) -> tuple[Mode, str]:
    """Causal perplexity or masked-LM pseudo-perplexity, and how that was decided.

    The adapter's ``handle.provenance["objective"]``, else ``["head"]`` (``causal_lm`` / ``masked_lm``, as the
    Hugging Face adapters record it), decides when it is one of :data:`OBJECTIVES`; otherwise a causal LM is
    recognised by never scoring position 0.

    :returns: ``(mode, "provenance" | "detected")``.
    """
    for key in ("objective", "head"):
        recorded = handle.provenance.get(key)
        if isinstance(recorded, str) and recorded.lower() in OBJECTIVES:
            return OBJECTIVES[recorded.lower()], "provenance"
    return ("pseudo" if bool(scores.first_scored.any()) else "causal"), "detected"


class Perplexity:
    """The ``ppl`` metric (see the module docstring for the formulas)."""

    name = "ppl"

    def __init__(self, config: PplConfig) -> None:
        self.config = config

    def compute(self, handle: ModelHandle, data: Any, context: RunContext) -> MetricResult:
        """Perplexity of ``handle`` on the configured split of ``data``.

        :param handle: the model; its adapter is ``context.adapter``.
        :param data: :class:`~guardchain.core.windows.TokenWindows`.
        :param context: the run context.
        :raises GuardchainError: ``GC-METRIC-DATA-TYPE``, ``GC-METRIC-NO-ADAPTER``, ``GC-METRIC-EMPTY``,
            ``GC-METRIC-TOKENIZER-MISMATCH``, ``GC-METRIC-ADAPTER-OUTPUT``, ``GC-MODEL-NONFINITE``,
            ``GC-METRIC-NO-SCORED-TOKENS``.
        """
        all_windows = require_data(
            data, TokenWindows, metric=self.name, produced_by="text, jsonl (no label_field), pydoc, kjv_excerpt, ..."
        )
        token_logprobs = require_adapter_method(context, "token_logprobs", metric=self.name)
        split = self.config.split
        windows = all_windows if split == "all" else all_windows.select(split)
        if not len(windows):
            raise GuardchainError.single(
                MetricErrorCode.EMPTY, f"the data has no {split!r} windows ({len(all_windows)} windows in all)"
            )
        model_tokenizer = handle.provenance.get("tokenizer_sha256")
        checked = isinstance(model_tokenizer, str) and bool(model_tokenizer)
        if checked and model_tokenizer != windows.tokenizer_sha256:
            raise GuardchainError.single(
                MetricErrorCode.TOKENIZER_MISMATCH,
                f"the windows were tokenized by tokenizer {windows.tokenizer_sha256[:12]}…, the model's is "
                f"{str(model_tokenizer)[:12]}…",
                hint="load the data with the model being measured",
            )

        task = f"{self.name}: {split} windows"
        scores = score_windows(
            token_logprobs,
            handle,
            windows,
            self.config.batch_size,
            pad_token_id(handle.tokenizer),
            progress=lambda done, total: context.report_progress(task, done, total),
        )
        empty = np.flatnonzero(scores.n_scored == 0)
        if empty.size:
            raise GuardchainError.single(
                MetricErrorCode.NO_SCORED_TOKENS,
                f"{empty.size} window(s) have no scored token (all log-probabilities NaN), e.g. "
                f"{windows.ids[int(empty[0])]!r}",
            )
        weights = scores.n_scored.astype(np.float64)
        nll = scores.nll_sum / weights
        ppl, mean_nll, stderr = weighted_perplexity(nll, weights)
        mode, mode_source = objective_mode(handle, scores)
        return MetricResult(
            metric=self.name,
            value=ppl,
            uncertainty=stderr,
            units="perplexity",
            unit_ids=windows.ids,
            per_unit=tuple(float(x) for x in nll),
            unit_weights=tuple(float(w) for w in weights),
            details={
                "split": split,
                "n_windows": len(windows),
                "n_tokens": int(scores.n_scored.sum()),
                "windows_digest": windows.digest(),
                "mode": mode,
                "mode_source": mode_source,
                "mean_nll": mean_nll,
                "per_unit": "mean NLL per window, nats/token",
                "unit_weights": "tokens scored per window",
                "uncertainty": "delta method: ppl * sqrt(n/(n-1) * sum((w_i/W)^2 (l_i - mean)^2))",
                "seq_len": windows.seq_len,
                "dataset_sha256": windows.dataset_sha256,
                "tokenizer_sha256": windows.tokenizer_sha256,
                "tokenizer_checked": checked,
            },
        )
