"""Save and load bound interventions: a versioned JSON config plus safetensors for trained weights.

A saved directory holds:

* ``interventions.json`` — ``{"format": "guardchain-interventions", "format_version": 1, "library_version",
  "generation", "model": <fingerprint>, "interventions": [{"name", "params", "dim", "tensors"}], "bindings":
  [{"site": {SiteRef fields}, "intervention": <index>, "units": {...}, "source"}]}``. ``name`` is the registered
  plugin name; ``params`` plus a binding's ``units`` validate against that plugin's config model. No Python type
  strings, no pickles.
* ``weights.safetensors`` — every trainable tensor as ``interventions.<index>.<name>`` (absent when none).

The model fingerprint (class, ``model_type``, hidden size, layer count, SHA-256 of the sorted parameter names and
shapes) is checked on load. Tensors are loaded straight onto ``map_location`` (the caller's choice; ``"cpu"`` by
default), never onto a device named in the file.

Loading trusts nothing in the directory (:mod:`guardchain.interventions.document`): the JSON is validated strictly,
the weights file's header is checked against the shapes the interventions need before any is built, non-finite
values are refused unless ``allow_nonfinite``, and every binding's module path must exist in the model and match
its recorded site (re-resolved by the adapter when one is given). Any failure is ``GC-INTERVENTION-LOAD``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, ModelHandle, SiteRef
from guardchain.interventions.base import Intervention
from guardchain.interventions.catalog import lookup
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.document import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    SavedBinding,
    SavedDocument,
    check_header,
    load_error,
    nonfinite_paths,
    read_document,
    tensor_key,
)
from guardchain.interventions.model import Binding, IntervenedModel
from guardchain.interventions.units import Units, _from_value

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "SavedInterventions",
    "load_interventions",
    "model_fingerprint",
    "read_saved",
    "save_interventions",
]


def model_fingerprint(model: torch.nn.Module) -> dict[str, Any]:
    """What identifies a model architecture for saved interventions (no weight values)."""
    config = getattr(model, "config", None)

    def first(*keys: str) -> Any:
        for key in keys:
            value = getattr(config, key, None)
            if value is not None:
                return value
        return None

    shapes = "\n".join(f"{name}:{tuple(p.shape)}" for name, p in sorted(model.named_parameters()))
    return {
        "class": type(model).__name__,
        "model_type": first("model_type"),
        "hidden_size": first("hidden_size", "n_embd", "d_model"),
        "n_layers": first("num_hidden_layers", "n_layer"),
        "parameters_sha256": hashlib.sha256(shapes.encode()).hexdigest(),
    }


def _site_json(ref: SiteRef) -> dict[str, Any]:
    return {
        "site": ref.site,
        "module_path": ref.module_path,
        "hook": ref.hook.value,
        "block": ref.block,
        "details": dict(ref.details),
    }


def save_interventions(im: IntervenedModel, directory: str | Path) -> Path:
    """Write ``im``'s bindings and trained weights to ``directory`` (created); returns it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    from guardchain.interventions import __version__

    index = {id(m): i for i, m in enumerate(im.interventions)}
    tensors: dict[str, torch.Tensor] = {}
    entries = []
    for i, module in enumerate(im.interventions):
        intervention: Intervention = module  # type: ignore[assignment]
        own = intervention.tensors()
        for name, tensor in own.items():
            tensors[f"interventions.{i}.{name}"] = tensor.detach().to("cpu").contiguous()
        entries.append(
            {
                "name": intervention.plugin_name,
                "params": intervention.params(),
                "dim": getattr(intervention, "dim", None),
                "tensors": sorted(own),
            }
        )
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "generation": im.generation,
        "model": model_fingerprint(im.model),
        "interventions": entries,
        "bindings": [
            {
                "site": _site_json(b.site),
                "intervention": index[id(b.intervention)],
                "units": b.units.to_config(),
                "source": b.source,
            }
            for b in im.bindings
        ],
    }
    (out / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    weights = out / WEIGHTS_FILE
    if tensors:
        save_file(tensors, str(weights), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    elif weights.exists():
        weights.unlink()
    return out


@dataclass(frozen=True)
class SavedInterventions:
    """A saved directory, read and validated: the rebuilt interventions (on ``map_location``) and the document."""

    document: SavedDocument
    interventions: list[Intervention]


def _read_header(root: Path, path: Path, map_location: str) -> tuple[Any, dict[str, tuple[str, tuple[int, ...]]]]:
    """Open the weights file lazily and read its header (key -> (dtype, shape)); nothing is loaded yet."""
    try:
        handle: Any = safe_open(str(path), framework="pt", device=map_location)  # its stub types no method
        header = {}
        for key in handle.keys():  # noqa: SIM118 - a safe_open handle is not a mapping
            view = handle.get_slice(key)
            header[key] = (str(view.get_dtype()), tuple(int(n) for n in view.get_shape()))
    except Exception as exc:  # safetensors raises its own error types (and OSError) for truncated or corrupt files
        raise load_error(
            root, f"{WEIGHTS_FILE} is not a readable safetensors file (truncated or corrupt): {exc}"
        ) from exc
    return handle, header


def _configs(root: Path, document: SavedDocument, allow_nonfinite: bool) -> list[tuple[type[Intervention], BaseModel]]:
    """Each saved intervention's class and validated config."""
    built = []
    for i, entry in enumerate(document.interventions):
        cls, config_model = lookup(entry.name)
        if not allow_nonfinite:
            bad = list(nonfinite_paths(entry.params))
            if bad:
                raise load_error(root, f"intervention {i} ({entry.name}): params {bad[:4]} are not finite")
        try:
            config = config_model.model_validate(entry.params, strict=True)
        except ValidationError as exc:
            raise load_error(root, f"intervention {i} ({entry.name}): invalid params: {exc}") from exc
        built.append((cls, config))
    return built


def read_saved(
    directory: str | Path, *, map_location: str | torch.device = "cpu", allow_nonfinite: bool = False
) -> SavedInterventions:
    """Read a saved directory and rebuild its interventions on ``map_location``.

    Checks, in order: the JSON (strict types, known names, valid params, finite numbers), the expected tensor
    shapes (from each intervention's config and ``dim``) against the weights file's header, and only then builds
    each intervention and loads its tensors (finite unless ``allow_nonfinite``).

    :raises GuardchainError: ``GC-INTERVENTION-CONFIG-VERSION`` for another format version,
        ``GC-INTERVENTION-LOAD`` for missing, malformed, inconsistent or non-finite content.
    """
    root = Path(directory)
    document = read_document(root)
    configs = _configs(root, document, allow_nonfinite)
    expected: dict[str, tuple[int, ...]] = {}
    for i, (entry, (cls, config)) in enumerate(zip(document.interventions, configs, strict=True)):
        try:
            shapes = cls.tensor_shapes(config, entry.dim)
        except GuardchainError as exc:
            raise load_error(root, f"intervention {i} ({entry.name}): {exc.problems[0].message}") from exc
        if sorted(shapes) != sorted(entry.tensors):
            raise load_error(
                root, f"intervention {i} ({entry.name}) lists tensors {entry.tensors}, but needs {sorted(shapes)}"
            )
        expected.update({tensor_key(i, name): shape for name, shape in shapes.items()})
    weights_path = root / WEIGHTS_FILE
    handle: Any = None
    if expected or weights_path.exists():
        if not weights_path.is_file():
            raise load_error(root, f"no {WEIGHTS_FILE}, but the saved interventions need {sorted(expected)[:6]}")
        handle, header = _read_header(root, weights_path, str(map_location))
        check_header(root, header, expected)
    interventions: list[Intervention] = []
    for i, (entry, (cls, config)) in enumerate(zip(document.interventions, configs, strict=True)):
        try:
            built = cls.from_config(config, dim=entry.dim, seed=int(getattr(config, "seed", None) or 0))
            own = {name: handle.get_tensor(tensor_key(i, name)) for name in entry.tensors}
            if not allow_nonfinite:
                bad = sorted(name for name, tensor in own.items() if not bool(torch.isfinite(tensor).all()))
                if bad:
                    raise load_error(root, f"intervention {i} ({entry.name}): tensors {bad} are not finite")
            if own:
                built.load_tensors(own)
            interventions.append(built.to(map_location))
        except GuardchainError:
            raise
        except Exception as exc:  # a last line: whatever the checks above missed is still a coded error
            raise load_error(
                root, f"intervention {i} ({entry.name}) cannot be built: {type(exc).__name__}: {exc}"
            ) from exc
    return SavedInterventions(document, interventions)


_BLOCK_SITE = re.compile(r"^blocks\[(\d+)\]\.")


def _check_site(root: Path, i: int, model: torch.nn.Module, ref: SiteRef, adapter: Any) -> None:
    """The binding's module exists, and its module path is the one its site names.

    With an adapter the site is resolved again and must give exactly the recorded module, hook and details.
    Without one, what holds for any model is checked: a module-path site (``<module path>.<hook>``) names its own
    module and hook, and a ``blocks[I]`` site's module lies under the ``I``-th child of a ``ModuleList`` (the
    blocks) with ``block = I``.
    """
    where = f"binding {i}: site {ref.site!r} with module {ref.module_path!r} ({ref.hook.value})"
    try:
        model.get_submodule(ref.module_path)
    except AttributeError as exc:
        raise load_error(root, f"{where}: the model has no module {ref.module_path!r}") from exc
    if adapter is not None:
        try:
            found = list(adapter.resolve_sites(ModelHandle(model=model, adapter="", ref=""), ref.site))
        except GuardchainError as exc:
            raise load_error(root, f"{where}: the adapter cannot resolve the site: {exc.problems[0].message}") from exc
        same = [
            r
            for r in found
            if (r.module_path, r.hook, r.block, dict(r.details))
            == (ref.module_path, ref.hook, ref.block, dict(ref.details))
        ]
        if len(found) != 1 or not same:
            listed = ", ".join(f"{r.module_path} ({r.hook.value})" for r in found)
            raise load_error(root, f"{where}: the adapter resolves the site to {listed}, not to the recorded module")
        return
    match = _BLOCK_SITE.match(ref.site)
    if match is None:
        if ref.site != f"{ref.module_path}.{ref.hook.value}":
            raise load_error(root, f"{where}: a module-path site must read {ref.module_path}.{ref.hook.value}")
        return
    index = match.group(1)
    parts = ref.module_path.split(".")
    under_block = any(
        part == index and isinstance(model.get_submodule(".".join(parts[:k])), torch.nn.ModuleList)
        for k, part in enumerate(parts)
        if k > 0
    )
    if ref.block != int(index) or not under_block:
        raise load_error(
            root,
            f"{where}: the module does not lie in block {index} (block {ref.block}); pass adapter= to re-resolve "
            "the site",
        )


def _binding(root: Path, i: int, entry: SavedBinding, saved: SavedInterventions, allow_nonfinite: bool) -> Binding:
    if entry.intervention >= len(saved.interventions):
        raise load_error(
            root,
            f"binding {i} names intervention {entry.intervention}, but {len(saved.interventions)} were saved",
        )
    intervention = saved.interventions[entry.intervention]
    site = entry.site
    ref = SiteRef(site.site, site.module_path, HookPoint(site.hook), site.block, dict(site.details))
    _, config_model = lookup(intervention.plugin_name)
    fields = set(config_model.model_fields)
    units_json = entry.units
    unknown = sorted(set(units_json) - {"positions", "heads", "n_heads", "source_positions"})
    if unknown:
        raise load_error(root, f"binding {i}: unknown units keys {unknown}")
    if not allow_nonfinite and list(nonfinite_paths(units_json)):
        raise load_error(root, f"binding {i}: units are not finite")
    try:
        config_model.model_validate(
            {**intervention.params(), **{k: v for k, v in units_json.items() if k in fields}}, strict=True
        )
        units = Units(
            positions=_from_value(units_json.get("positions")),
            heads=None if units_json.get("heads") is None else tuple(units_json["heads"]),
            n_heads=units_json.get("n_heads"),
            source_positions=_from_value(units_json.get("source_positions")),
        )
    except (ValidationError, TypeError, ValueError) as exc:
        raise load_error(root, f"binding {i}: invalid units: {exc}") from exc
    return Binding(ref, intervention, units, entry.source)


def load_interventions(
    directory: str | Path,
    model: torch.nn.Module,
    *,
    map_location: str | torch.device = "cpu",
    check_model: bool = True,
    allow_nonfinite: bool = False,
    adapter: Any = None,
) -> IntervenedModel:
    """Rebuild a saved :class:`IntervenedModel` on ``model``.

    :param map_location: where the interventions' tensors go (``"cpu"``, ``"cuda:0"``, a ``torch.device``).
    :param check_model: compare the saved model fingerprint with ``model``'s.
    :param allow_nonfinite: accept NaN or infinite values in saved parameters and tensors.
    :param adapter: the model's adapter (``resolve_sites``): every binding's site is resolved again and must give
        the recorded module. Without it, only what holds for any model is checked (module exists; a module-path
        site names its module; a ``blocks[I]`` site lies in block ``I``).
    :raises GuardchainError: ``GC-INTERVENTION-CONFIG-VERSION``, ``GC-INTERVENTION-LOAD``,
        ``GC-INTERVENTION-MODEL-MISMATCH``.
    """
    root = Path(directory)
    saved = read_saved(root, map_location=map_location, allow_nonfinite=allow_nonfinite)
    document = saved.document
    if check_model:
        expected, found = document.model, model_fingerprint(model)
        differ = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
        if differ:
            listed = ", ".join(f"{k} {expected.get(k)!r} != {found.get(k)!r}" for k in differ)
            raise intervention_error(
                InterventionErrorCode.MODEL_MISMATCH,
                f"{root} was saved from another model: {listed}",
                hint="load onto the architecture it was trained on, or pass check_model=False",
            )
    bindings = []
    for i, entry in enumerate(document.bindings):
        binding = _binding(root, i, entry, saved, allow_nonfinite)
        _check_site(root, i, model, binding.site, adapter)
        bindings.append(binding)
    return IntervenedModel(model, bindings, generation=document.generation)
