"""Chain files: the kernel envelope and two-step validation with paths and stable codes.

Files are read and parsed, within size, depth and duplicate-key rules, by :mod:`guardchain.core.chainfile`
(:func:`read_chain_file` is re-exported here).

A chain file (YAML, TOML or JSON) looks like::

    version: 1
    name: quantize-and-check
    seed: 0
    model: {ref: ./my-model}            # adapter chosen by guardchain_resolve_adapter unless given
    data: {dataset: text, config: {paths: [corpus.txt]}}
    steps:
      - guard: spectral
        config: {mode: gate}
      - edit: quant_rtn
        config: {bits: 8}
      - metric: ppl

Validation has two steps. First the envelope (this module's models, ``extra="forbid"``), then each step's
``config`` against the config model its plugin registered. Every problem from both steps is reported at once,
each with its path in the file's own terms (``steps[2].config.sigma_quantile``), a stable code and what was
expected; never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guardchain.core.chainfile import CHAIN_FILE_SUFFIXES as CHAIN_FILE_SUFFIXES
from guardchain.core.chainfile import read_chain_file as read_chain_file
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, problems_from_validation_error
from guardchain.core.kinds import CapabilityKind

if typing.TYPE_CHECKING:
    from guardchain.core.registry import Registry

STEP_KINDS: tuple[CapabilityKind, ...] = (
    CapabilityKind.GUARD,
    CapabilityKind.EDIT,
    CapabilityKind.METRIC,
    CapabilityKind.INTERVENTION,
)


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(_Envelope):
    """Which model the chain loads, and with which adapter."""

    ref: str = Field(min_length=1, description="Local directory, packaged model name, or hub id (opt-in network).")
    adapter: str | None = Field(
        default=None,
        min_length=1,
        description="Registered adapter name; omitted = chosen by guardchain_resolve_adapter.",
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The adapter's own configuration.")


class DataSection(_Envelope):
    """The data source every metric and guard of the chain reads."""

    dataset: str = Field(min_length=1, description="Registered dataset name.")
    config: dict[str, Any] = Field(default_factory=dict, description="The dataset's own configuration.")


class StepSection(_Envelope):
    """One step: exactly one of ``guard``, ``edit``, ``metric``, ``intervention`` names the capability."""

    id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="Key of this step's result in the run record; defaults to '<index>-<name>'.",
    )
    guard: str | None = Field(default=None, min_length=1, description="Registered guard name.")
    edit: str | None = Field(default=None, min_length=1, description="Registered edit name.")
    metric: str | None = Field(default=None, min_length=1, description="Registered metric name.")
    intervention: str | None = Field(default=None, min_length=1, description="Registered intervention name.")
    sites: list[str] = Field(default_factory=list, description="Sites an intervention attaches to.")
    config: dict[str, Any] = Field(default_factory=dict, description="The capability's own configuration.")

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> StepSection:
        named = [kind for kind in STEP_KINDS if getattr(self, kind.value) is not None]
        if len(named) != 1:
            raise ValueError(
                "a step names exactly one of guard, edit, metric, intervention"
                + (f" (found {', '.join(k.value for k in named)})" if named else "")
            )
        if self.sites and named[0] != CapabilityKind.INTERVENTION:
            raise ValueError("sites are only meaningful on an intervention step")
        if named[0] == CapabilityKind.INTERVENTION and not self.sites:
            raise ValueError("an intervention step needs at least one site")
        return self

    @property
    def kind(self) -> CapabilityKind:
        """The kind of capability this step uses."""
        return next(k for k in STEP_KINDS if getattr(self, k.value) is not None)

    @property
    def capability(self) -> str:
        """The capability name as written (bare or ``distribution:name``)."""
        return str(getattr(self, self.kind.value))


class OutputSection(_Envelope):
    """Where a run writes its record and artifacts."""

    dir: str = Field(default="runs", min_length=1, description="Parent directory of run directories.")


class ChainConfig(_Envelope):
    """The kernel envelope of a chain file (version 1)."""

    version: Literal[1] = Field(default=1, description="Chain file format version.")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Name of the chain.")
    description: str = ""
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Master seed for every random choice.")
    model: ModelSection | None = None
    data: DataSection | None = None
    steps: list[StepSection] = Field(min_length=1, description="The steps, run in order.")
    output: OutputSection = Field(default_factory=OutputSection)

    @field_validator("steps")
    @classmethod
    def _unique_step_ids(cls, steps: list[StepSection]) -> list[StepSection]:
        # Default ids start with a digit and explicit ones with a letter, so only explicit ids can clash.
        seen: dict[str, int] = {}
        for index, step in enumerate(steps):
            if step.id is not None:
                if step.id in seen:
                    raise ValueError(f"steps[{index}] repeats the id {step.id!r} of steps[{seen[step.id]}]")
                seen[step.id] = index
        return steps

    def step_id(self, index: int) -> str:
        """The id under which step ``index`` reports its result."""
        step = self.steps[index]
        return step.id or f"{index}-{step.capability.rpartition(':')[2]}"


@dataclass(frozen=True)
class ValidatedChain:
    """A chain that passed both validation steps.

    :ivar config: the envelope.
    :ivar step_configs: each step's validated plugin config, aligned with ``config.steps``.
    :ivar model_config: the adapter's validated config (``None`` when the adapter is resolved at run time).
    :ivar data_config: the dataset's validated config, or ``None``.
    :ivar source: the file it came from, if any.
    :ivar digest: SHA-256 of the canonical JSON of everything above (stable across file formats).
    """

    config: ChainConfig
    step_configs: tuple[BaseModel, ...]
    model_config: BaseModel | None = None
    data_config: BaseModel | None = None
    source: Path | None = None
    digest: str = field(default="")


def chain_digest(
    config: ChainConfig,
    step_configs: Sequence[BaseModel],
    model_config: BaseModel | None,
    data_config: BaseModel | None,
) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no whitespace) of the validated chain, defaults filled in."""
    payload = {
        "chain": config.model_dump(mode="json", exclude={"steps"}),
        "steps": [
            {**step.model_dump(mode="json", exclude={"config"}), "config": cfg.model_dump(mode="json")}
            for step, cfg in zip(config.steps, step_configs, strict=True)
        ],
        "model_config": model_config.model_dump(mode="json") if model_config else None,
        "data_config": data_config.model_dump(mode="json") if data_config else None,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def validate_chain(raw: Mapping[str, Any], registry: Registry, *, source: Path | None = None) -> ValidatedChain:
    """Validate a parsed chain in two steps and report every problem at once.

    :raises GuardchainError: with one problem per error, each with its path, code and expectation.
    """
    problems: list[Problem] = []
    envelope: ChainConfig | None = None
    try:
        envelope = ChainConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems.extend(problems_from_validation_error(exc, model=ChainConfig))

    # Step two runs on the raw mapping, so a step with an envelope problem elsewhere is still checked.
    step_configs: list[BaseModel | None] = []
    raw_steps = raw.get("steps")
    for index, raw_step in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        step_configs.append(
            _validate_plugin_section(registry, raw_step, None, f"steps[{index}]", problems)
            if isinstance(raw_step, Mapping)
            else None
        )
    model_config = None
    raw_model = raw.get("model")
    if isinstance(raw_model, Mapping) and raw_model.get("adapter") is not None:
        model_config = _validate_plugin_section(registry, raw_model, CapabilityKind.ADAPTER, "model", problems)
    data_config = None
    raw_data = raw.get("data")
    if isinstance(raw_data, Mapping):
        data_config = _validate_plugin_section(registry, raw_data, CapabilityKind.DATASET, "data", problems)

    unvalidated = [f"steps[{i}]" for i, c in enumerate(step_configs) if c is None]
    if unvalidated and not problems:  # every path above that returns None reports why; this keeps zip() honest
        problems.append(Problem(ErrorCode.CONFIG_VALUE, "the step could not be validated", path=unvalidated[0]))
    if problems or envelope is None:
        raise GuardchainError(dedupe_problems(problems))
    configs = tuple(c for c in step_configs if c is not None)
    digest = chain_digest(envelope, configs, model_config, data_config)
    return ValidatedChain(envelope, configs, model_config, data_config, source, digest)


def _validate_plugin_section(
    registry: Registry,
    section: Mapping[str, Any],
    kind: CapabilityKind | None,
    path: str,
    problems: list[Problem],
) -> BaseModel | None:
    if kind is None:
        named = [k for k in STEP_KINDS if section.get(k.value) is not None]
        if len(named) != 1:
            return None  # the envelope already reports this
        kind = named[0]
    name = section.get(kind.value)
    if not isinstance(name, str) or not name:
        return None
    try:
        spec = registry.get_spec(kind, name)
    except GuardchainError as exc:
        for problem in exc.problems:
            problems.append(
                Problem(
                    problem.code,
                    problem.message,
                    path=f"{path}.{kind.value}",
                    expected=problem.expected,
                    hint=problem.hint,
                    details=problem.details,
                )
            )
        return None
    raw_config = section.get("config", {})
    if raw_config is None:
        raw_config = {}
    if not isinstance(raw_config, Mapping):
        return None  # the envelope reports the type error
    try:
        return registry.validate_config(spec, raw_config, path=f"{path}.config")
    except GuardchainError as exc:
        problems.extend(exc.problems)
        return None


def dedupe_problems(problems: list[Problem]) -> list[Problem]:
    """Each problem once (by code, path and message), in order (several checks may find the same mistake)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for problem in problems:
        key = (str(problem.code), problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out


def load_chain(path: str | Path, registry: Registry) -> ValidatedChain:
    """Read and validate a chain file.

    :raises GuardchainError: every problem found, with paths and codes.
    """
    return validate_chain(read_chain_file(path), registry, source=Path(path))
