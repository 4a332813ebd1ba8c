"""The saved directory's format, checked before anything is built: ``interventions.json`` as strict pydantic
models, and ``weights.safetensors``' header against the shapes the document implies.

Everything a tampered or truncated save can carry is refused here with ``GC-INTERVENTION-LOAD`` (or
``GC-INTERVENTION-CONFIG-VERSION``), never a raw exception: a config file larger than :data:`MAX_CONFIG_BYTES` or
nested deeper than the JSON parser's stack, a field of the wrong type (strict: ``"0"``, ``0.0`` and ``true`` are not
integers), a negative index, a weights file whose header does not fit the file (truncated) or declares other
tensors or shapes than the interventions need. Shapes are compared *before* an intervention is built, so a
declared size can never make the loader allocate more than the file holds. Non-finite numbers (in ``params`` or in
a tensor) are refused unless the caller allows them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guardchain.interventions.codes import InterventionErrorCode, intervention_error

FORMAT = "guardchain-interventions"
FORMAT_VERSION = 1
CONFIG_FILE = "interventions.json"
WEIGHTS_FILE = "weights.safetensors"
#: The largest ``interventions.json`` read (a steering vector of 10⁶ floats is ~20 MB).
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: Tensor dtypes a saved intervention may hold (safetensors names).
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class SavedSite(BaseModel):
    """A binding's resolved site (:class:`guardchain.core.handles.SiteRef` fields)."""

    model_config = _STRICT

    site: str
    module_path: str
    hook: Literal["input", "output"]
    block: int | None = Field(default=None, ge=0)
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("details")
    @classmethod
    def _details(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The keys the hooks read: ``input_kwarg`` a string, ``tuple_index`` and ``input_arg`` non-negative
        integers (other keys are the adapter's own)."""
        if "input_kwarg" in value and not isinstance(value["input_kwarg"], str):
            raise ValueError("input_kwarg must be a string")
        for key in ("tuple_index", "input_arg"):
            item = value.get(key, 0)
            if type(item) is not int or item < 0:
                raise ValueError(f"{key} must be a non-negative integer")
        return value


class SavedBinding(BaseModel):
    """One binding: which saved intervention, where, on which units, reading which source."""

    model_config = _STRICT

    site: SavedSite
    intervention: int = Field(ge=0)
    units: dict[str, Any] = Field(default_factory=dict)
    source: int = Field(default=0, ge=0)


class SavedIntervention(BaseModel):
    """One saved intervention: its registered name, constructor parameters, hidden size and tensor names."""

    model_config = _STRICT

    name: str
    params: dict[str, Any]
    dim: int | None = Field(default=None, ge=1)
    tensors: list[str] = Field(default_factory=list)


class SavedDocument(BaseModel):
    """``interventions.json``."""

    model_config = _STRICT

    format: Literal["guardchain-interventions"]
    format_version: int
    library_version: str
    generation: Literal["prompt", "every_step"]
    model: dict[str, Any]
    interventions: list[SavedIntervention]
    bindings: list[SavedBinding]


def load_error(directory: Path, message: str) -> Exception:
    """``GC-INTERVENTION-LOAD`` naming the directory."""
    return intervention_error(InterventionErrorCode.LOAD, f"{directory}: {message}")


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors()[:8])


def read_document(root: Path) -> SavedDocument:
    """Read and validate ``root/interventions.json``.

    :raises GuardchainError: ``GC-INTERVENTION-CONFIG-VERSION`` for another format version,
        ``GC-INTERVENTION-LOAD`` for anything else that is wrong.
    """
    path = root / CONFIG_FILE
    if not path.is_file():
        raise load_error(root, f"no {CONFIG_FILE}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise load_error(root, f"{CONFIG_FILE} is {size} bytes, more than the {MAX_CONFIG_BYTES} this loader reads")
    try:
        raw = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise load_error(root, f"{CONFIG_FILE} is not valid JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise load_error(root, f"{CONFIG_FILE} is not a {FORMAT} file")
    version = raw.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise intervention_error(
            InterventionErrorCode.CONFIG_VERSION,
            f"{path} has format_version {version!r}; this release reads version {FORMAT_VERSION}",
            hint="save it again with a matching guardchain-interventions release",
        )
    try:
        return SavedDocument.model_validate(raw)
    except ValidationError as exc:
        raise load_error(root, f"{CONFIG_FILE} is malformed: {_problems(exc)}") from exc
    except RecursionError as exc:
        raise load_error(root, f"{CONFIG_FILE} is nested too deeply") from exc


def nonfinite_paths(value: Any, path: str = "") -> Iterator[str]:
    """Paths of the NaN and ±inf floats in a JSON value."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path or "(value)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from nonfinite_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nonfinite_paths(item, f"{path}[{i}]")


def tensor_key(index: int, name: str) -> str:
    """The safetensors key of intervention ``index``'s tensor ``name``."""
    return f"interventions.{index}.{name}"


def check_header(
    root: Path, header: Mapping[str, tuple[str, tuple[int, ...]]], expected: Mapping[str, tuple[int, ...]]
) -> None:
    """Compare the weights file's declared tensors (key -> (dtype, shape)) with the ones the document implies.

    :raises GuardchainError: ``GC-INTERVENTION-LOAD`` for a missing, extra, mis-shaped or non-float tensor.
    """
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        raise load_error(
            root,
            f"{WEIGHTS_FILE} does not hold the tensors the saved interventions need: missing {missing[:6]}, "
            f"unexpected {extra[:6]}",
        )
    for key, shape in expected.items():
        dtype, found = header[key]
        if dtype not in FLOAT_DTYPES:
            raise load_error(root, f"{WEIGHTS_FILE}: tensor {key!r} has dtype {dtype}, not a float type")
        if tuple(found) != tuple(shape):
            raise load_error(root, f"{WEIGHTS_FILE}: tensor {key!r} has shape {tuple(found)}, expected {tuple(shape)}")
