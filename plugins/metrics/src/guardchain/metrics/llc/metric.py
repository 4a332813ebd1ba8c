"""``llc``: the local learning coefficient of the chain's model as a chain step.

Data: the chain's :class:`~guardchain.core.windows.TokenWindows` (the ``split`` windows, optionally the first
``max_windows``), cut into batches of ``batch_size`` windows (default 8), right-padded. Loss: the causal language-
model loss, mean next-token cross-entropy in nats/token over a batch's scored positions
(:func:`~guardchain.metrics.llc.data.causal_lm_loss`), computed from the handle's ``torch.nn.Module`` through
``functional_call`` (so it works for any adapter whose ``handle.model`` returns logits). ``n`` (default
``nβ = n/ln n``) is the number of windows; L0 is computed over every batch.

Result: ``value`` = mean λ̂ over the healthy chains, ``uncertainty`` = its standard error (std across chains with
``ddof = 1``, over √chains), ``unit_ids`` = ``chain0 … chainC−1``, ``per_unit`` = per-chain λ̂ (NaN for a diverged
chain), ``details`` = the estimate's summary (settings, L0 and its batches, nβ and its source, diagnostics).
Artifacts: ``llc/traces.json`` (every loss trace) and ``llc/traces.png`` (the trace plot, when matplotlib is
installed; otherwise ``details.plot_skipped`` says why); the n-th ``llc`` step of a chain writes ``llc-n/...``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.core.results import MetricResult
from guardchain.core.windows import TokenWindows, pad_token_id
from guardchain.metrics.batching import padded_batches
from guardchain.metrics.checks import require_adapter_method, require_data
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc.config import LlcConfig, SamplerSettings
from guardchain.metrics.llc.estimator import LlcResult, LlcSampler
from guardchain.metrics.llc.plot import matplotlib_available

DEFAULT_WINDOWS_PER_BATCH = 8


def _unpack_windows(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return batch, batch


class LocalLearningCoefficient:
    """The ``llc`` metric (module docstring)."""

    name = "llc"

    def __init__(self, config: LlcConfig) -> None:
        self.config = config

    def compute(self, handle: ModelHandle, data: Any, context: RunContext) -> MetricResult:
        """λ̂ of ``handle.model`` at its current weights on the chain's windows.

        :raises GuardchainError: ``GC-METRIC-DATA-TYPE``, ``GC-METRIC-EMPTY``, ``GC-METRIC-NO-ADAPTER`` (sites
            without an adapter), and the ``GC-METRIC-LLC-*`` codes.
        """
        windows = require_data(data, TokenWindows, metric=self.name, produced_by="text, jsonl, kjv_excerpt, ...")
        cfg = self.config
        if cfg.split != "all":
            windows = windows.select(cfg.split)
        tokens = windows.tokens[: cfg.max_windows] if cfg.max_windows else windows.tokens
        if not tokens:
            raise GuardchainError.single(MetricErrorCode.EMPTY, f"the data has no {cfg.split!r} windows")
        model = handle.model
        if not isinstance(model, torch.nn.Module):
            raise GuardchainError.single(
                MetricErrorCode.LLC_MODEL, f"llc needs handle.model to be a torch.nn.Module, got {type(model).__name__}"
            )
        batch_size = cfg.batch_size or DEFAULT_WINDOWS_PER_BATCH
        batches = [b.as_dict() for b in padded_batches(tokens, batch_size, pad_token_id(handle.tokenizer))]
        settings_fields = set(SamplerSettings.model_fields)
        values = {k: v for k, v in cfg.model_dump().items() if k in settings_fields}
        values["params"] = tuple(cfg.params) + self._site_modules(handle, context)
        values["seed"] = cfg.seed if cfg.seed is not None else context.seed
        values["batch_size"] = batch_size
        sampler = LlcSampler(model, batches, loss="causal_lm", unpack=_unpack_windows, **values)
        result = sampler.estimate()
        details = result.summary()
        details.update(
            {
                "loss": "causal_lm: mean next-token cross-entropy over scored positions, nats/token",
                "n_windows": len(tokens),
                "split": cfg.split,
                "windows_digest": windows.digest(),
                "seq_len": windows.seq_len,
                "sites": list(cfg.sites),
                "params": list(values["params"]),
                "per_unit": "λ̂ per chain (NaN: diverged)",
                "uncertainty": "standard error over healthy chains: std(ddof=1)/sqrt(chains)",
            }
        )
        details.update(self._write_artifacts(result, context))
        uncertainty = result.llc_sem if math.isfinite(result.llc_sem) else None
        return MetricResult(
            metric=self.name,
            value=result.llc_mean,
            uncertainty=uncertainty,
            units="learning coefficient (dimensionless)",
            unit_ids=tuple(f"chain{c}" for c in range(len(result.llc_per_chain))),
            per_unit=tuple(float(x) for x in result.llc_per_chain),
            details=details,
        )

    def _site_modules(self, handle: ModelHandle, context: RunContext) -> tuple[str, ...]:
        if not self.config.sites:
            return ()
        resolve = require_adapter_method(context, "resolve_sites", metric=self.name)
        found: list[str] = []
        for site in self.config.sites:
            try:
                refs = resolve(handle, site)
            except GuardchainError as exc:
                raise GuardchainError.single(
                    MetricErrorCode.LLC_PARAMS, f"site {site!r} cannot be resolved: {exc.problems[0].message}"
                ) from exc
            found.extend(ref.module_path for ref in refs if ref.module_path not in found)
        return tuple(found)

    def _write_artifacts(self, result: LlcResult, context: RunContext) -> dict[str, Any]:
        # Earlier llc steps of the chain are in context.results: the n-th llc step writes under llc-n/. Repeated
        # calls outside a chain (same context, no recorded results) overwrite llc/ with identical content.
        earlier = sum(1 for r in context.results.values() if isinstance(r, dict) and r.get("metric") == self.name)
        stem = "llc" if earlier == 0 else f"llc-{earlier + 1}"
        written: dict[str, Any] = {}
        if self.config.save_traces:
            path = context.artifact_path(f"{stem}/traces.json")
            path.write_text(json.dumps(result.traces_payload()), encoding="utf-8")
            written["traces"] = f"{stem}/traces.json"
        if self.config.plot:
            if matplotlib_available():
                result.plot(context.artifact_path(f"{stem}/traces.png"))
                written["plot"] = f"{stem}/traces.png"
            else:
                written["plot"] = None
                written["plot_skipped"] = "matplotlib is not installed (pip install 'guardchain-metrics[plot]')"
        return written
