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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from guardchain.core.handles import HookPoint, SiteRef
from guardchain.interventions.base import Intervention
from guardchain.interventions.catalog import lookup
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.model import Binding, GenerationPolicy, IntervenedModel
from guardchain.interventions.units import Units, _from_value

FORMAT = "guardchain-interventions"
FORMAT_VERSION = 1
CONFIG_FILE = "interventions.json"
WEIGHTS_FILE = "weights.safetensors"


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
    """A saved directory, read and validated: the rebuilt interventions (on ``map_location``) and the raw
    document."""

    document: dict[str, Any]
    interventions: list[Intervention]


def _load_error(directory: Path, message: str) -> Exception:
    return intervention_error(InterventionErrorCode.LOAD, f"{directory}: {message}")


def read_saved(directory: str | Path, *, map_location: str | torch.device = "cpu") -> SavedInterventions:
    """Read a saved directory and rebuild its interventions on ``map_location``.

    :raises GuardchainError: ``GC-INTERVENTION-CONFIG-VERSION`` for another format version,
        ``GC-INTERVENTION-LOAD`` for missing or inconsistent content.
    """
    root = Path(directory)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise _load_error(root, f"no {CONFIG_FILE}")
    try:
        document = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise _load_error(root, f"{CONFIG_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _load_error(root, f"{CONFIG_FILE} is not a {FORMAT} file")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise intervention_error(
            InterventionErrorCode.CONFIG_VERSION,
            f"{config_path} has format_version {version!r}; this release reads version {FORMAT_VERSION}",
            hint="save it again with a matching guardchain-interventions release",
        )
    weights_path = root / WEIGHTS_FILE
    stored = load_file(str(weights_path), device=str(map_location)) if weights_path.is_file() else {}
    interventions: list[Intervention] = []
    try:
        entries = list(document["interventions"])
        for i, entry in enumerate(entries):
            cls, config_model = lookup(entry["name"])
            try:
                config = config_model.model_validate(entry["params"])
            except ValidationError as exc:
                raise _load_error(root, f"intervention {i} ({entry['name']}): invalid params: {exc}") from exc
            built = cls.from_config(config, dim=entry.get("dim"), seed=int(entry["params"].get("seed", 0) or 0))
            prefix = f"interventions.{i}."
            own = {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}
            if sorted(own) != sorted(entry.get("tensors", [])):
                raise _load_error(
                    root,
                    f"intervention {i} ({entry['name']}) lists tensors {entry.get('tensors')} "
                    f"but {WEIGHTS_FILE} holds {sorted(own)}",
                )
            if own:
                built.load_tensors(own)
            interventions.append(built.to(map_location))
    except (KeyError, TypeError) as exc:
        raise _load_error(root, f"{CONFIG_FILE} is missing or mistypes a field: {exc!r}") from exc
    return SavedInterventions(document, interventions)


def load_interventions(
    directory: str | Path,
    model: torch.nn.Module,
    *,
    map_location: str | torch.device = "cpu",
    check_model: bool = True,
) -> IntervenedModel:
    """Rebuild a saved :class:`IntervenedModel` on ``model``.

    :param map_location: where the interventions' tensors go (``"cpu"``, ``"cuda:0"``, a ``torch.device``).
    :param check_model: compare the saved model fingerprint with ``model``'s.
    :raises GuardchainError: ``GC-INTERVENTION-CONFIG-VERSION``, ``GC-INTERVENTION-LOAD``,
        ``GC-INTERVENTION-MODEL-MISMATCH``.
    """
    root = Path(directory)
    saved = read_saved(root, map_location=map_location)
    document = saved.document
    if check_model:
        expected, found = document.get("model", {}), model_fingerprint(model)
        differ = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
        if differ:
            listed = ", ".join(f"{k} {expected.get(k)!r} != {found.get(k)!r}" for k in differ)
            raise intervention_error(
                InterventionErrorCode.MODEL_MISMATCH,
                f"{root} was saved from another model: {listed}",
                hint="load onto the architecture it was trained on, or pass check_model=False",
            )
    bindings = []
    try:
        for i, entry in enumerate(document["bindings"]):
            site = entry["site"]
            ref = SiteRef(
                site=site["site"],
                module_path=site["module_path"],
                hook=HookPoint(site["hook"]),
                block=site.get("block"),
                details=dict(site.get("details", {})),
            )
            intervention = saved.interventions[int(entry["intervention"])]
            units_json = entry.get("units", {})
            _, config_model = lookup(intervention.plugin_name)
            fields = set(config_model.model_fields)
            try:
                config_model.model_validate(
                    {**intervention.params(), **{k: v for k, v in units_json.items() if k in fields}}
                )
            except ValidationError as exc:
                raise _load_error(root, f"binding {i}: invalid units: {exc}") from exc
            units = Units(
                positions=_from_value(units_json.get("positions")),
                heads=None if units_json.get("heads") is None else tuple(units_json["heads"]),
                n_heads=units_json.get("n_heads"),
                source_positions=_from_value(units_json.get("source_positions")),
            )
            bindings.append(Binding(ref, intervention, units, int(entry.get("source", 0))))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _load_error(root, f"{CONFIG_FILE} has an invalid binding: {exc!r}") from exc
    generation: GenerationPolicy = document.get("generation", "prompt")
    return IntervenedModel(model, bindings, generation=generation)
