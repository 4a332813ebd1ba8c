"""The Python API: :func:`analyze` any module on any data loader, and :func:`summarize` a (merged) collection.

::

    from guardchain.geometry import analyze

    result = analyze(model, loader, sites=["blocks[*].input"], sample_size=512, seed=0)
    result.table("metrics")            # pandas DataFrame (a list of rows without pandas)
    result.save("runs/geometry", plot=True)

``loader`` is any iterable of batches: mappings passed as keyword arguments (``{"input_ids", "attention_mask"}``;
masked tokens are excluded), tensors of token ids, or tuples of positional arguments. Sites are resolved by
``adapter.resolve_sites(handle, site)`` when ``model`` is a :class:`~guardchain.core.handles.ModelHandle` and an
adapter is given, else by :mod:`guardchain.geometry.sites` on the bare module. For sharded or multi-process data,
run a :class:`~guardchain.geometry.collect.Collector` per shard (a different ``seed`` each, so their sample keys
differ), :meth:`~guardchain.geometry.collect.CollectionState.merge` the states and :func:`summarize` once.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.handles import ModelHandle, SiteRef
from guardchain.geometry import formulas
from guardchain.geometry.codes import GeometryErrorCode, geometry_error
from guardchain.geometry.collect import CollectionState, Collector, RouterRef
from guardchain.geometry.config import GeometrySettings
from guardchain.geometry.results import ARTIFACT_SCHEMA_VERSION, GeometryResult, Row
from guardchain.geometry.sites import expert_count, find_blocks, find_routers, resolve_module_sites

_CONFIG_FIELDS = (
    "model_type",
    "architectures",
    "hidden_size",
    "n_embd",
    "num_hidden_layers",
    "n_layer",
    "num_attention_heads",
    "n_head",
    "intermediate_size",
    "vocab_size",
    "num_local_experts",
    "num_experts",
    "num_experts_per_tok",
)


def settings_from(values: dict[str, Any]) -> GeometrySettings:
    """Validated :class:`GeometrySettings`.

    :raises GuardchainError: ``GC-GEOM-SETTINGS`` listing every invalid or unknown setting.
    """
    try:
        return GeometrySettings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise geometry_error(GeometryErrorCode.SETTINGS, f"invalid geometry settings: {problems}") from exc


def require_module(model: Any) -> torch.nn.Module:
    """``model`` as a module with parameters.

    :raises GuardchainError: ``GC-GEOM-MODEL`` otherwise.
    """
    if not isinstance(model, torch.nn.Module) or next(model.parameters(), None) is None:
        raise geometry_error(
            GeometryErrorCode.MODEL, f"geometry needs a torch.nn.Module with parameters, got {type(model).__name__}"
        )
    return model


def unique_sites(refs: Iterable[SiteRef]) -> list[SiteRef]:
    """``refs`` without repeated site strings, first occurrence kept."""
    seen: dict[str, SiteRef] = {}
    for ref in refs:
        seen.setdefault(ref.site, ref)
    return list(seen.values())


def routers_for(model: torch.nn.Module, settings: GeometrySettings) -> list[RouterRef]:
    """The routers to count under ``settings.router`` / ``router_modules``.

    :raises GuardchainError: ``GC-GEOM-NO-ROUTER`` when ``router`` is true and the model has none.
    """
    if settings.router is False:
        return []
    routers = find_routers(model, settings.router_modules)
    if not routers and settings.router is True:
        experts = expert_count(model)
        why = (
            "its config declares no experts (num_local_experts / num_experts)"
            if experts is None
            else "no router module was found"
            + (
                f" matching {settings.router_modules}"
                if settings.router_modules
                else " (none declared for router_logits)"
            )
        )
        raise geometry_error(
            GeometryErrorCode.NO_ROUTER,
            f"router statistics were asked for, but {type(model).__name__} emits no router logits: {why}",
            hint="set router: auto (skip them for dense models) or name the router modules in router_modules",
        )
    return routers


def _eigen(covariance: torch.Tensor, site: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clamped at 0) and the top-``k`` eigenvectors, computed on the covariance's device."""
    if not bool(torch.isfinite(covariance).all()):
        raise GuardchainError.single(
            ErrorCode.MODEL_NONFINITE, f"the activations at site {site!r} contain NaN or infinite values"
        )
    values, vectors = torch.linalg.eigh(covariance)
    top = vectors[:, -min(k, vectors.shape[1]) :].flip(1)
    return values.flip(0).clamp_min(0.0).to("cpu").numpy(), top.to("cpu").numpy()


def _eigenvalue_keys(refs: Sequence[SiteRef]) -> list[str]:
    blocks = [r.block for r in refs]
    if all(b is not None for b in blocks) and len(set(blocks)) == len(blocks):
        return [f"layer_{b:02d}" for b in blocks]
    return [f"site_{i:02d}" for i in range(len(refs))]


def _layers(refs: Sequence[SiteRef]) -> list[int]:
    return [r.block if r.block is not None else i for i, r in enumerate(refs)]


def summarize(
    state: CollectionState,
    settings: GeometrySettings,
    *,
    model: torch.nn.Module | None = None,
    model_label: str = "",
    metadata: dict[str, Any] | None = None,
) -> GeometryResult:
    """Compute every requested metric from a collection (moved to the host here, once).

    :param settings: which families, diagnostics, ``novelty_k``, sample settings.
    :param model: for the metadata (class, config summary, block count).
    :param model_label: ``model_label`` / ``model_key`` of the rows.
    :param metadata: extra metadata (merged last).
    :raises GuardchainError: ``GC-GEOM-EMPTY`` (no token), ``GC-GEOM-SAMPLE-SIZE``, ``GC-MODEL-NONFINITE``.
    """
    if state.tokens == 0 or any(s.covariance is None for s in state.sites):
        raise geometry_error(GeometryErrorCode.EMPTY, "no unmasked token was collected: the data gave no batch")
    reservoir = state.reservoir
    if reservoir is not None and reservoir.filled < reservoir.size:
        raise geometry_error(
            GeometryErrorCode.SAMPLE_SIZE,
            f"sample_size {reservoir.size} is larger than the {state.tokens} tokens seen",
            hint=f"lower sample_size to at most {state.tokens}, or give more tokens",
        )
    families = set(settings.families)
    refs = [s.ref for s in state.sites]
    layers = _layers(refs)
    keys = _eigenvalue_keys(refs)
    label = model_label or (type(model).__name__ if model is not None else "model")
    model_key = label.replace("/", "_").replace("\\", "_").replace(" ", "_").replace(":", "_").lower()
    order = torch.argsort(reservoir.tokens) if reservoir is not None else None
    result = GeometryResult(metrics=[])
    if reservoir is not None and order is not None:
        result.sample_tokens = reservoir.tokens[order].numpy().astype(np.int64)
    deepest = max(max(layers), 1)
    for i, site_state in enumerate(state.sites):
        ref = site_state.ref
        covariance = site_state.covariance
        assert covariance is not None
        values, vectors = _eigen(covariance.covariance(), ref.site, settings.novelty_k)
        result.eigenvalues[keys[i]] = values
        result.eigenvalue_sites[keys[i]] = ref.site
        result.vectors[ref.site] = np.ascontiguousarray(vectors)
        row: Row = {
            "model_key": model_key,
            "model_label": label,
            "layer": layers[i],
            "num_layers": len(refs),
            "layer_norm_depth": layers[i] / deepest,
            "tokens_observed": covariance.n,
            "hidden_dim": covariance.dim,
            "site": ref.site,
            "module_path": ref.module_path,
            "hook": ref.hook.value,
        }
        if "spectrum" in families:
            row.update(formulas.spectrum_metrics(values))
        if site_state.rows is not None and order is not None:
            rows = site_state.rows[order.to(site_state.rows.device)]
            result.samples[ref.site] = rows.to("cpu").numpy()
            if "sample" in families:
                row.update(formulas.sample_metrics(rows))
        result.metrics.append(row)
    if "novelty" in families:
        result.novelty = _novelty(result, refs, layers, model_key, label)
    for name in settings.diagnostics:
        result.diagnostics[name] = _ablation(result, refs, layers, model_key, label)
    result.router = _router_rows(state)
    result.metadata = _metadata(state, settings, refs, layers, model, label, metadata or {})
    return result


def _novelty(result: GeometryResult, refs: Sequence[SiteRef], layers: list[int], key: str, label: str) -> list[Row]:
    rows: list[Row] = []
    for (a, left), (b, right) in zip(enumerate(refs), list(enumerate(refs))[1:], strict=False):
        u, v = result.vectors[left.site], result.vectors[right.site]
        x, y = result.samples.get(left.site), result.samples.get(right.site)
        same_width = u.shape[0] == v.shape[0]
        rows.append(
            {
                "model_key": key,
                "model_label": label,
                "layer": layers[a],
                "transition": f"{layers[a]}->{layers[b]}",
                "novelty_k": min(u.shape[1], v.shape[1]) if same_width else 0,
                "feature_subspace_novelty": formulas.subspace_novelty(u, v),
                "linear_cka": formulas.linear_cka(x, y) if x is not None and y is not None else math.nan,
                "layer_cosine_sim": formulas.layer_cosine_sim(x, y) if x is not None and y is not None else math.nan,
                "from_site": left.site,
                "to_site": right.site,
            }
        )
    return rows


def _ablation(result: GeometryResult, refs: Sequence[SiteRef], layers: list[int], key: str, label: str) -> list[Row]:
    rows: list[Row] = []
    for i, ref in enumerate(refs):
        sample = result.samples.get(ref.site)
        if sample is None:
            continue
        for variant_row in formulas.normalization_ablation(sample):
            row: Row = dict(variant_row)
            row.update(
                {
                    "model_key": key,
                    "model_label": label,
                    "layer": layers[i],
                    "site": ref.site,
                    "tokens": int(sample.shape[0]),
                    "hidden_dim": int(sample.shape[1]),
                }
            )
            rows.append(row)
    return rows


def _router_rows(state: CollectionState) -> list[Row]:
    rows: list[Row] = []
    for i, (path, counter) in enumerate(state.routers.items()):
        ref = state.router_refs[path]
        row: Row = {"layer": ref.block if ref.block is not None else i, "module": path, "top_k": ref.top_k}
        row.update(formulas.router_metrics(counter.to_host()))
        rows.append(row)
    return rows


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _metadata(
    state: CollectionState,
    settings: GeometrySettings,
    refs: Sequence[SiteRef],
    layers: list[int],
    model: torch.nn.Module | None,
    label: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    config = getattr(model, "config", None)
    blocks = find_blocks(model) if model is not None else None
    reservoir = state.reservoir
    metadata: dict[str, Any] = {
        "artifact_schema_version": ARTIFACT_SCHEMA_VERSION,
        "model_id": label,
        "model_class": type(model).__name__ if model is not None else None,
        "max_tokens": settings.max_tokens,
        "tokens_observed": state.tokens,
        "batches_observed": state.batches,
        "num_blocks": blocks[1] if blocks is not None else None,
        "layers": layers,
        "hook_point": list(settings.sites),
        "hook_targets": [r.module_path for r in refs],
        "sites": [r.site for r in refs],
        "hooks": [r.hook.value for r in refs],
        "sample_limit": reservoir.size if reservoir is not None else 0,
        "sample_seed": reservoir.seed if reservoir is not None else None,
        "sample_tokens": reservoir.filled if reservoir is not None else 0,
        "sampling": "seeded bottom-k reservoir over unmasked tokens (uniform without replacement)",
        "novelty_k": settings.novelty_k,
        "metrics": sorted(settings.families),
        "diagnostics": sorted(settings.diagnostics),
        "router_modules": list(state.routers),
        "accumulation": "float64 batched Chan merge on the activations' device; padding excluded",
        "skip_positions": settings.skip_positions,
        "input_device": str(state.sites[0].covariance.device) if state.sites[0].covariance is not None else None,
        "save_mode": "bundle+json",
        "run_name": None,
        "tokenizer": None,
        "dataset": None,
        "model_config": {k: getattr(config, k) for k in _CONFIG_FIELDS if getattr(config, k, None) is not None},
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "guardchain_geometry": _version("guardchain-geometry"),
            "transformers": _version("transformers"),
        },
    }
    metadata.update(extra)
    return metadata


def analyze(
    model: torch.nn.Module | ModelHandle,
    data: Iterable[Any],
    *,
    adapter: Any = None,
    device: str | torch.device | None = None,
    model_label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    run_metadata: dict[str, Any] | None = None,
    **settings: Any,
) -> GeometryResult:
    """Collect and compute the geometry of ``model`` on ``data`` (module docstring).

    :param model: a ``torch.nn.Module``, or a :class:`~guardchain.core.handles.ModelHandle` (its ``model``).
    :param data: an iterable of batches.
    :param adapter: resolves sites of a handle (``resolve_sites``); without it sites are resolved on the module.
    :param device: where batches are moved; default the model's first parameter's device.
    :param model_label: ``model_label`` of the rows (default the model's ``name_or_path`` or class name).
    :param progress: called with ``(batches run, tokens seen)``.
    :param run_metadata: stored under ``metadata["run_metadata"]``.
    :param settings: any field of :class:`~guardchain.geometry.config.GeometrySettings` (``sites``, ``families``,
        ``diagnostics``, ``router``, ``router_modules``, ``sample_size``, ``seed`` (default 0), ``novelty_k``,
        ``max_tokens``, ``per_unit``).
    :raises GuardchainError: ``GC-GEOM-SETTINGS``, ``GC-GEOM-MODEL``, ``GC-GEOM-SITE``, ``GC-GEOM-NO-ROUTER``,
        ``GC-GEOM-DATA``, ``GC-GEOM-ACTIVATION``, ``GC-GEOM-SITE-SILENT``, ``GC-GEOM-EMPTY``,
        ``GC-GEOM-SAMPLE-SIZE``, ``GC-MODEL-NONFINITE``.
    """
    if isinstance(settings.get("sites"), str):
        settings["sites"] = [settings["sites"]]
    config = settings_from(settings)
    handle = model if isinstance(model, ModelHandle) else None
    module = require_module(handle.model if handle is not None else model)
    if adapter is not None and handle is not None:
        refs = []
        for site in config.sites:
            try:
                refs.extend(adapter.resolve_sites(handle, site))
            except GuardchainError as exc:
                raise geometry_error(
                    GeometryErrorCode.SITE,
                    f"site {site!r} cannot be resolved: {exc.problems[0].message}",
                    details={"cause_code": str(exc.code)},
                    cause=exc,
                ) from exc
    else:
        refs = resolve_module_sites(module, config.sites)
    refs = unique_sites(refs)
    routers = routers_for(module, config)
    seed = config.seed if config.seed is not None else 0
    was_training = module.training
    module.eval()
    started = time.perf_counter()
    try:
        collector = Collector(
            module, refs, routers, sample_size=config.sample_size, seed=seed, skip_positions=config.skip_positions
        )
        state = collector.collect(
            data,
            device=torch.device(device) if device is not None else None,
            max_tokens=config.max_tokens,
            progress=progress,
        )
    finally:
        module.train(was_training)
    label = model_label or str(
        getattr(module, "name_or_path", "") or getattr(getattr(module, "config", None), "_name_or_path", "") or ""
    )
    extra: dict[str, Any] = {"runtime_sec": time.perf_counter() - started}
    if run_metadata:
        extra["run_metadata"] = dict(run_metadata)
    return summarize(state, config.model_copy(update={"seed": seed}), model=module, model_label=label, metadata=extra)
