"""``geometry`` as a chain step: representation geometry of the chain's model on its token windows.

Data: the chain's :class:`~guardchain.core.windows.TokenWindows` (the ``split`` windows, optionally the first
``max_windows``), right-padded into batches of ``batch_size`` windows with mask 0 on padding. Sites are resolved
only through ``context.adapter.resolve_sites``. The sample's seed is ``seed`` or the chain's.

Result (for pairing, the units are the **sites**):

- ``unit_ids`` = the resolved site strings (``blocks[0].input`` …), ``per_unit`` = the ``per_unit`` statistic per
  site (``d_pr`` by default), ``value`` = their mean, ``units`` = what the statistic measures;
- ``details``: settings, token and window provenance, the per-site metric rows, the novelty and router rows, the
  artifact names and, when an earlier ``geometry`` step of the chain is comparable, ``drift`` (its rows and
  summary, :mod:`guardchain.geometry.drift`).

Artifacts under ``geometry/`` (the n-th geometry step of a chain: ``geometry-n/``): the files of
:mod:`guardchain.geometry.results`, ``drift.json`` / ``drift.csv`` when drift was computed, and ``spectra.png`` /
``d_pr.png`` (when matplotlib is installed; otherwise ``details.plot_skipped`` says why).

**Drift design.** A chain ``model → geometry → edit → geometry`` measures the same model object before and after
the edit, on the same windows: the second step finds the first in ``context.results`` (``baseline: auto`` takes
the latest earlier geometry step with the same ``signature`` — resolved sites, windows digest, sample seed and
size, token budget — or ``baseline: <step id>`` names one) and reads its ``samples.npz`` from the run directory, so
no activation is held in memory between steps. The sampled tokens are identical by construction (keys depend only
on the seed and token count), which is what makes CKA between baseline and subject activations meaningful.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle, SiteRef
from guardchain.core.results import MetricResult
from guardchain.core.windows import TokenWindows, pad_token_id, right_padded
from guardchain.geometry.analysis import require_module, routers_for, summarize, unique_sites
from guardchain.geometry.codes import GeometryErrorCode, geometry_error
from guardchain.geometry.collect import Collector
from guardchain.geometry.config import SAMPLE_STATS, GeometryConfig
from guardchain.geometry.drift import DriftResult, compare
from guardchain.geometry.plot import matplotlib_available, save_plots
from guardchain.geometry.results import GeometryResult, jsonable

#: what the per-unit statistic measures, for ``MetricResult.units``
UNITS: dict[str, str] = {
    "d_pr": "effective dimensions (participation ratio)",
    "d_entropy": "effective dimensions (entropy)",
    "stable_rank": "effective dimensions (stable rank)",
    "k90": "eigen-directions",
    "k95": "eigen-directions",
    "sv_effective_rank": "effective dimensions (sample)",
    "sv_stable_rank": "effective dimensions (sample)",
    "sv_participation_ratio": "effective dimensions (sample)",
}


class Geometry:
    """The ``geometry`` metric (module docstring)."""

    name = "geometry"

    def __init__(self, config: GeometryConfig) -> None:
        self.config = config

    def compute(self, handle: ModelHandle, data: Any, context: RunContext) -> MetricResult:
        """Geometry of ``handle.model`` on the configured windows of ``data``; drift against an earlier step.

        :raises GuardchainError: ``GC-GEOM-DATA-TYPE``, ``GC-GEOM-NO-ADAPTER``, ``GC-GEOM-SITE``,
            ``GC-GEOM-EMPTY``, ``GC-GEOM-SAMPLE-SIZE``, ``GC-GEOM-NO-ROUTER``, ``GC-GEOM-MODEL``,
            ``GC-GEOM-ACTIVATION``, ``GC-GEOM-SITE-SILENT``, ``GC-GEOM-BASELINE``, ``GC-MODEL-NONFINITE``.
        """
        cfg = self.config
        if not isinstance(data, TokenWindows):
            raise geometry_error(
                GeometryErrorCode.DATA_TYPE,
                f"metric 'geometry' needs TokenWindows, got {type(data).__name__}",
                expected="TokenWindows",
                hint="use a text dataset: kjv_excerpt, text, jsonl (no label_field), pydoc, ...",
            )
        windows = data if cfg.split == "all" else data.select(cfg.split)
        tokens = windows.tokens[: cfg.max_windows] if cfg.max_windows else windows.tokens
        available = sum(max(0, len(t) - cfg.skip_positions) for t in tokens)
        if available == 0:
            raise geometry_error(
                GeometryErrorCode.EMPTY,
                f"the data has no token in its {cfg.split!r} windows"
                + (f" after skipping the first {cfg.skip_positions} of each" if cfg.skip_positions else ""),
            )
        budget = min(available, cfg.max_tokens) if cfg.max_tokens else available
        if cfg.sample_size > available:
            raise geometry_error(
                GeometryErrorCode.SAMPLE_SIZE,
                f"sample_size {cfg.sample_size} is larger than the {available} tokens of the {len(tokens)} windows",
                hint=f"lower sample_size to at most {available}, or use more windows",
            )
        model = require_module(handle.model)
        refs = unique_sites(self._resolve(handle, context))
        routers = routers_for(model, cfg)
        seed = cfg.seed if cfg.seed is not None else context.seed
        started = time.perf_counter()
        collector = Collector(
            model, refs, routers, sample_size=cfg.sample_size, seed=seed, skip_positions=cfg.skip_positions
        )
        task = f"{self.name}: {cfg.split} windows"
        n_batches = math.ceil(len(tokens) / cfg.batch_size)
        state = collector.collect(
            window_batches(tokens, cfg.batch_size, pad_token_id(handle.tokenizer)),
            max_tokens=cfg.max_tokens,
            progress=lambda done, _tokens: context.report_progress(task, done, n_batches),
        )
        signature = {
            "sites": [r.site for r in refs],
            "windows_digest": windows.digest(),
            "split": cfg.split,
            "max_windows": cfg.max_windows,
            "max_tokens": cfg.max_tokens,
            "skip_positions": cfg.skip_positions,
            "sample_seed": seed,
            "sample_size": cfg.sample_size,
        }
        metadata = {
            "run_name": context.run_id,
            "tokenizer": windows.tokenizer_sha256,
            "dataset": windows.source or windows.dataset_sha256,
            "model_ref": handle.ref,
            "signature": signature,
            "tokens_budget": budget,
            "runtime_sec": time.perf_counter() - started,
        }
        result = summarize(
            state,
            cfg.model_copy(update={"seed": seed}),
            model=model,
            model_label=handle.ref,
            metadata=metadata,
        )
        stem = self._stem(context)
        drift, baseline_step = self._drift(result, signature, context)
        artifacts = self._write(result, drift, stem, context)
        values = result.site_values(cfg.per_unit)
        finite = [v for v in values if math.isfinite(v)]
        details: dict[str, Any] = {
            "sites": result.sites,
            "per_unit": f"{cfg.per_unit} per site",
            "stat": cfg.per_unit,
            "value": f"mean of {cfg.per_unit} over the sites",
            "families": list(cfg.families),
            "diagnostics": list(cfg.diagnostics),
            "split": cfg.split,
            "n_windows": len(tokens),
            "windows_digest": windows.digest(),
            "seq_len": windows.seq_len,
            "dataset_sha256": windows.dataset_sha256,
            "tokenizer_sha256": windows.tokenizer_sha256,
            "tokens_observed": state.tokens,
            "batches": state.batches,
            "sample": {"size": cfg.sample_size, "seed": seed, "tokens": len(result.sample_tokens)},
            "novelty_k": cfg.novelty_k,
            "router_modules": list(state.routers),
            "signature": signature,
            "metrics": result.metrics,
            "novelty": result.novelty,
            "router": result.router,
            "artifact_dir": stem,
            "artifacts": artifacts,
            "baseline_step": baseline_step,
            "drift": None if drift is None else {"summary": drift.summary(), "rows": drift.rows},
        }
        if cfg.plot and not matplotlib_available():
            details["plot_skipped"] = "matplotlib is not installed (pip install 'guardchain-geometry[plot]')"
        return MetricResult(
            metric=self.name,
            value=float(np.mean(finite)) if finite else math.nan,
            uncertainty=None,
            units=UNITS.get(cfg.per_unit, "fraction" if cfg.per_unit in SAMPLE_STATS else cfg.per_unit),
            unit_ids=tuple(result.sites),
            per_unit=tuple(values),
            details=jsonable(details),
        )

    def _resolve(self, handle: ModelHandle, context: RunContext) -> list[SiteRef]:
        resolve = getattr(context.adapter, "resolve_sites", None)
        if context.adapter is None or not callable(resolve):
            who = "the run context has no adapter" if context.adapter is None else "the adapter has no resolve_sites()"
            raise geometry_error(
                GeometryErrorCode.NO_ADAPTER, f"metric 'geometry' resolves sites through the adapter, but {who}"
            )
        refs: list[SiteRef] = []
        for site in self.config.sites:
            try:
                found = list(resolve(handle, site))
            except GuardchainError as exc:
                raise geometry_error(
                    GeometryErrorCode.SITE,
                    f"site {site!r} cannot be resolved: {exc.problems[0].message}",
                    hint=exc.problems[0].hint,
                    details={"cause_code": str(exc.code)},
                    cause=exc,
                ) from exc
            except Exception as exc:
                raise geometry_error(
                    GeometryErrorCode.SITE, f"site {site!r} cannot be resolved: {type(exc).__name__}: {exc}", cause=exc
                ) from exc
            if not found:
                raise geometry_error(GeometryErrorCode.SITE, f"the adapter resolved site {site!r} to no site")
            refs.extend(found)
        return refs

    def _earlier(self, context: RunContext) -> list[tuple[str, dict[str, Any]]]:
        return [
            (step_id, r)
            for step_id, r in context.results.items()
            if isinstance(r, dict) and r.get("metric") == self.name and isinstance(r.get("details"), dict)
        ]

    def _stem(self, context: RunContext) -> str:
        # The n-th geometry step of a chain writes under geometry-n/; repeated calls outside a chain (no recorded
        # results) overwrite geometry/ with identical content.
        earlier = len(self._earlier(context))
        return self.name if earlier == 0 else f"{self.name}-{earlier + 1}"

    def _drift(
        self, result: GeometryResult, signature: dict[str, Any], context: RunContext
    ) -> tuple[DriftResult | None, str | None]:
        wanted = self.config.baseline
        if wanted == "none":
            return None, None
        earlier = self._earlier(context)
        if wanted == "auto":
            matching = [(i, r) for i, r in earlier if r["details"].get("signature") == jsonable(signature)]
            if not matching:
                return None, None
            step_id, record = matching[-1]
        else:
            found = [(i, r) for i, r in earlier if i == wanted]
            if not found:
                names = ", ".join(i for i, _ in earlier) or "none"
                raise geometry_error(
                    GeometryErrorCode.BASELINE,
                    f"baseline {wanted!r} is not an earlier geometry step of this chain (earlier geometry steps: "
                    f"{names})",
                )
            step_id, record = found[0]
            theirs = record["details"].get("signature")
            if theirs != jsonable(signature):
                raise geometry_error(
                    GeometryErrorCode.BASELINE,
                    f"baseline step {step_id!r} was computed on other sites, windows or sample settings "
                    f"({theirs} vs {jsonable(signature)})",
                )
        details = record["details"]
        if "samples" not in details.get("artifacts", {}):
            if wanted == "auto":
                return None, None
            raise geometry_error(
                GeometryErrorCode.BASELINE, f"baseline step {step_id!r} kept no samples.npz (save_samples: false)"
            )
        baseline = GeometryResult.load(context.out_dir / str(details["artifact_dir"]))
        return compare(baseline, result, stat=self.config.per_unit), step_id

    def _write(
        self, result: GeometryResult, drift: DriftResult | None, stem: str, context: RunContext
    ) -> dict[str, str]:
        def path_for(name: str) -> Any:
            return context.artifact_path(f"{stem}/{name}")

        written = result.write(path_for, samples=self.config.save_samples)
        if drift is not None:
            written.update(drift.write(path_for))
        if self.config.plot and matplotlib_available():
            written.update(save_plots(result, path_for, drift))
        return {kind: f"{stem}/{name}" for kind, name in written.items()}


def window_batches(tokens: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    """Right-padded ``{"input_ids", "attention_mask"}`` int64 batches of consecutive windows."""
    for start in range(0, len(tokens), batch_size):
        ids, mask = right_padded(tokens[start : start + batch_size], pad_id)
        yield {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype("int64"))}
