"""Sweep files: what a ``guardchain sweep`` runs, and the cells it expands to.

A sweep file (YAML, TOML or JSON, read within the kernel's size, depth and duplicate-key rules) names one or more
baselines, the edits (a list, and/or grids whose settings are combined), tiers, seeds, and what every cell shares
(the keys of a ``certify --preset`` file: dataset, metric, guards, extra metric gates...)::

    name: tiny-gpt2-rtn
    baselines: [tiny-gpt2]
    grid:
      - edit: quant_rtn
        config: {bits: [8, 4], group_size: [null, 32]}
    tiers: [balanced]
    seeds: [0]
    gates: []

Validation has two steps, like a chain file's: first this module's envelope (``extra="forbid"``, every problem
with its path and a ``GC-CONFIG-*`` code), then every cell's certification through the plugins' own config
models, with the problems renamed to the sweep file's paths (``grid[0].config.bits``, ``baselines[1]``).

Each cell is one certification, with a **stable id** computed from its request (baseline, edit and settings,
tier, profile, seed, and everything shared): the SHA-256 of the request's canonical JSON, which is also the
certificate's ``provenance.config_digest``. A re-run recognises a finished cell by it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from guardchain.certify.codes import CertifyErrorCode
from guardchain.certify.policy import Profile, Tier
from guardchain.certify.request import DEFAULT_EDIT, CertifyPreset, CertifyRequest
from guardchain.core.config import dedupe_problems, read_chain_file
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, problems_from_validation_error

#: More cells than this is almost surely a mistake in a grid (and would take days): refused up front.
MAX_CELLS = 4096


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EditEntry(_Section):
    """One edit of ``edits:``: a capability and its settings."""

    edit: str = Field(default=DEFAULT_EDIT, min_length=1, description="Edit capability (default quant_rtn).")
    config: dict[str, Any] = Field(default_factory=dict, description="The edit's settings, e.g. {bits: 4}.")


class EditGrid(_Section):
    """One grid of ``grid:``: every combination of the listed settings of one edit."""

    edit: str = Field(default=DEFAULT_EDIT, min_length=1, description="Edit capability (default quant_rtn).")
    config: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Setting -> the values to try, e.g. {bits: [8, 4], group_size: [null, 32]}; a list-valued "
        "setting is written as a list of lists (scope: [[attn], [ffn]]). A single value may be given bare.",
    )

    @field_validator("config", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @field_validator("config")
    @classmethod
    def _not_empty(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, v in value.items() if not v]
        if empty:
            raise ValueError(f"setting(s) {', '.join(empty)} list no values: the grid would have no cells")
        return value


#: The keys of a ``certify --preset`` that every cell shares (the edit, its settings and the seed are the sweep's
#: axes): one model, :class:`~guardchain.certify.request.CertifyPreset`'s own fields, so the two never drift apart.
PER_CELL = frozenset({"edit", "edit_config", "seed"})
_Shared: type[BaseModel] = create_model(
    "SharedPreset",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (f.annotation, f) for name, f in CertifyPreset.model_fields.items() if name not in PER_CELL},  # type: ignore[call-overload]
)


class SweepFile(_Shared):  # type: ignore[misc,valid-type]
    """The envelope of a sweep file (see the module docstring): the sweep's axes and the preset keys every cell
    shares (``adapter``, ``adapter_config``, ``dataset``, ``dataset_config``, ``metric``, ``metric_config``,
    ``guards``, ``gates``)."""

    version: Literal[1] = 1
    name: str = Field(default="sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    baselines: list[str] = Field(min_length=1, description="Baseline models: named, local directory, .gguf, hub id.")
    edits: list[EditEntry] = Field(default_factory=list, description="Edits, each with its own settings.")
    grid: list[EditGrid] = Field(default_factory=list, description="Grids of settings, every combination a cell.")
    tiers: list[Tier] = Field(default_factory=lambda: list[Tier](["balanced"]), min_length=1)
    profile: Profile = "dev"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("baselines")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        if any(not ref.strip() for ref in value):
            raise ValueError("a baseline reference cannot be empty")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if any(not 0 <= seed <= 2**32 - 1 for seed in value):
            raise ValueError("seeds are integers in [0, 2**32 - 1]")
        return value


@dataclass(frozen=True)
class Cell:
    """One certification of a sweep.

    :ivar id: ``<readable label>-<first 10 hex of digest>``, the cell's folder name.
    :ivar digest: SHA-256 of the request's canonical JSON (= the certificate's ``provenance.config_digest``).
    :ivar request: the certification (its ``out`` is the cell's folder).
    :ivar source: where its edit comes from in the sweep file (``edits[1]``, ``grid[0]``), for error paths.
    :ivar baseline_index: which entry of ``baselines`` it certifies against; ``seed_index`` likewise.
    """

    id: str
    digest: str
    request: CertifyRequest
    source: str
    baseline_index: int
    seed_index: int

    @property
    def edit_config(self) -> dict[str, Any]:
        """The cell's edit settings."""
        return dict(self.request.preset.edit_config)

    def rename(self, problem: Problem) -> Problem:
        """A problem of this cell's certification, with the sweep file's path."""
        return _renamed(problem, self.source, self.baseline_index, self.seed_index)


def _renamed(problem: Problem, source: str, baseline_index: int, seed_index: int) -> Problem:
    """``edit_config.bits`` -> ``grid[0].config.bits``, ``baseline`` -> ``baselines[1]``, ``seed`` -> ``seeds[0]``;
    the shared keys (``guards``, ``gates``, ``dataset_config``...) are spelled as in the sweep file already."""
    path = problem.path
    renames = [
        ("edit_config", f"{source}.config"),
        ("edit", f"{source}.edit"),
        ("baseline", f"baselines[{baseline_index}]"),
        ("seed", f"seeds[{seed_index}]"),
    ]
    for old, new in renames:
        if path == old or path.startswith((f"{old}.", f"{old}[")):
            path = new + path[len(old) :]
            break
    return Problem(problem.code, problem.message, path, problem.expected, problem.hint, problem.details)


def load_sweep(path: str | Path) -> SweepFile:
    """Read and validate the envelope of a sweep file (step 1).

    :raises GuardchainError: the kernel's reading problems (``GC-CONFIG-NOT-FOUND``, ``-PARSE``, ``-TOO-LARGE``,
        ``-DUPLICATE-KEY``...) or every envelope problem with its path.
    """
    raw = read_chain_file(path)
    try:
        return cast(SweepFile, SweepFile.model_validate(raw))
    except ValidationError as exc:
        raise GuardchainError(problems_from_validation_error(exc, model=SweepFile)) from exc


def expand(sweep: SweepFile, out: Path, *, base_dir: Path | None = None) -> list[Cell]:
    """The cells of a sweep, each certifying into ``out/cells/<id>``: baseline-major (then seed, tier, edit), so
    that cells sharing a loaded baseline are neighbours. Baselines that are existing local paths are made absolute
    (relative to ``base_dir``, default the working directory), so that a worker started elsewhere finds them.

    :raises GuardchainError: ``GC-CONFIG-VALUE`` when the sweep asks for no edit or more than
        :data:`MAX_CELLS` cells, ``GC-CERT-SWEEP-DUPLICATE-CELL`` when two entries ask for the same cell, or any
        problem building a cell's request (with the sweep file's path).
    """
    edits: list[tuple[str, str, dict[str, Any]]] = [
        (f"edits[{i}]", e.edit, dict(e.config)) for i, e in enumerate(sweep.edits)
    ]
    for index, grid in enumerate(sweep.grid):
        keys = list(grid.config)
        for values in itertools.product(*(grid.config[k] for k in keys)):
            edits.append((f"grid[{index}]", grid.edit, dict(zip(keys, values, strict=True))))
    if not edits:
        raise GuardchainError.single(
            ErrorCode.CONFIG_MISSING,
            "the sweep lists no edit",
            path="edits",
            expected="edits: [{edit: quant_rtn, config: {bits: 8}}] and/or grid: [{edit: ..., config: {...: [...]}}]",
        )
    total = len(sweep.baselines) * len(sweep.seeds) * len(sweep.tiers) * len(edits)
    if total > MAX_CELLS:
        raise GuardchainError.single(
            ErrorCode.CONFIG_VALUE,
            f"the sweep expands to {total} cells, more than {MAX_CELLS}",
            path="grid" if sweep.grid else "edits",
            hint="split it into several sweep files",
        )
    shared = sweep.model_dump(include=set(CertifyPreset.model_fields) - PER_CELL)
    cells: list[Cell] = []
    seen: dict[str, str] = {}
    problems: list[Problem] = []
    for (b, baseline), (s, seed), tier, (source, edit, config) in itertools.product(
        enumerate(sweep.baselines), enumerate(sweep.seeds), sweep.tiers, edits
    ):
        ref = _absolute_if_local(baseline, base_dir)
        try:
            preset = CertifyPreset.model_validate({**shared, "edit": edit, "edit_config": config, "seed": seed})
            request = CertifyRequest(baseline=ref, tier=tier, profile=sweep.profile, preset=preset, out=out)
        except ValidationError as exc:
            problems += [_renamed(p, source, b, s) for p in problems_from_validation_error(exc, model=CertifyPreset)]
            continue
        digest = request_digest(request)
        cell_id = f"{_slug(ref, edit, config, tier, seed)}-{digest[:10]}"
        if digest in seen:
            problems.append(
                Problem(
                    CertifyErrorCode.SWEEP_DUPLICATE_CELL,
                    f"{source} asks again for the cell {seen[digest]} (baseline {baseline!r}, tier {tier}, seed "
                    f"{seed})",
                    path=source,
                )
            )
            continue
        seen[digest] = source
        cells.append(Cell(cell_id, digest, request.model_copy(update={"out": out / "cells" / cell_id}), source, b, s))
    if problems:
        raise GuardchainError(dedupe_problems(problems))
    return cells


def request_digest(request: CertifyRequest) -> str:
    """SHA-256 of the request's canonical JSON without its folder (the certificate's ``config_digest``)."""
    body = json.dumps(request.model_dump(mode="json", exclude={"out"}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _absolute_if_local(ref: str, base_dir: Path | None) -> str:
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path.resolve()) if path.exists() else ref


def _slug(ref: str, edit: str, config: dict[str, Any], tier: str, seed: int) -> str:
    """A readable, file-name-safe label: ``tiny-gpt2.quant_rtn.bits=4.group_size=32.balanced.s0`` (cut to 80)."""
    name = Path(ref).name or ref
    settings = [f"{k}={_short(v)}" for k, v in sorted(config.items())]
    parts = [name, edit.rpartition(":")[2], *settings, tier, f"s{seed}"]
    text = re.sub(r"[^A-Za-z0-9._=+-]+", "_", ".".join(parts)).strip("._")
    return text[:80] or "cell"


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(_short(v) for v in value)
    return "none" if value is None else str(value)
