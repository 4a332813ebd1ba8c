"""What a certification is asked to do: the request, the preset file, and the chain they become.

A certification *is* a chain: :func:`build_chain` turns a request into the same envelope a chain file has (model,
data, the guard chain with its metric gates, the edit, the primary metric on the preview and final splits), and
the kernel validates and creates every capability of it up front, exactly as for ``guardchain run``. Problems are
reported with the preset's own paths (``guards[2].config.kappa``, ``edit_config.bits``, ``gates[0].max``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guardchain.certify.policy import (
    METRIC_GATE,
    GuardChainKind,
    GuardStep,
    Policy,
    Profile,
    Tier,
    resolve_policy,
    tier_guard_steps,
)
from guardchain.core.config import ValidatedChain, read_chain_file, validate_chain
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, problems_from_validation_error
from guardchain.core.registry import Registry

#: First-party defaults, by qualified name: a third-party capability registered under the same bare name never
#: replaces them silently (name another in a preset to use it).
DEFAULT_DATASET = "guardchain-data:kjv_excerpt"
DEFAULT_METRIC = "guardchain-metrics:ppl"
DEFAULT_EDIT = "guardchain-edits:quant_rtn"


class CertifyPreset(BaseModel):
    """What a ``--preset`` file may set (command-line options win over it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    adapter: str | None = None
    adapter_config: dict[str, Any] = Field(default_factory=dict)
    dataset: str = DEFAULT_DATASET
    dataset_config: dict[str, Any] = Field(default_factory=dict)
    metric: str | None = Field(
        default=DEFAULT_METRIC,
        description="The primary metric, on paired preview and final windows; null certifies without one (a model "
        "with no language-model head), on the guards and metric gates alone.",
    )
    metric_config: dict[str, Any] = Field(default_factory=dict)
    edit: str = DEFAULT_EDIT
    edit_config: dict[str, Any] = Field(default_factory=dict)
    guards: list[GuardStep] | None = Field(
        default=None,
        description="Guard chain in order ({guard: name, config: {...}}); null means the tier's required chain, "
        "[] certifies without guards.",
    )
    gates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Metric gates, each a metric_gate config ({metric, compare, max/min, ...}), run after the guards.",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class CertifyRequest(BaseModel):
    """Everything one certification needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    baseline: str = Field(min_length=1)
    subject: str | None = Field(default=None, min_length=1)
    tier: Tier = "balanced"
    profile: Profile = "dev"
    preset: CertifyPreset = Field(default_factory=CertifyPreset)
    out: Path

    @property
    def mode(self) -> str:
        """``compare`` with a subject checkpoint, ``edit`` otherwise."""
        return "compare" if self.subject is not None else "edit"

    def guard_steps(self) -> tuple[GuardChainKind, list[GuardStep]]:
        """The guard chain to run: the tier's (or the preset's, or none) followed by the metric gates."""
        preset = self.preset
        if preset.guards is None:
            kind: GuardChainKind = "tier"
            steps = list(tier_guard_steps(self.tier))
        else:
            kind = "custom" if preset.guards else "none"
            steps = list(preset.guards)
        steps += [GuardStep(guard=METRIC_GATE, config=gate) for gate in preset.gates]
        return kind, steps


def load_preset(path: str | Path) -> CertifyPreset:
    """Read a preset file (YAML, TOML or JSON), reporting every problem with its path."""
    raw = read_chain_file(path)
    try:
        return CertifyPreset.model_validate(raw)
    except ValidationError as exc:
        raise GuardchainError(problems_from_validation_error(exc, model=CertifyPreset)) from exc


@dataclass(frozen=True)
class CertificationChain:
    """A request as a chain: the validated chain, the policy it runs under (guard configs validated, in full), and
    the renaming of chain paths to the preset's spelling for problems found later (by the runner's preparation).
    """

    chain: ValidatedChain
    policy: Policy
    where: tuple[tuple[str, str, str], ...]

    def rename(self, problems: list[Problem]) -> list[Problem]:
        """Problems with the preset's paths instead of the chain's."""
        return [_preset_path(p, list(self.where)) for p in problems]


def build_chain(request: CertifyRequest, registry: Registry) -> CertificationChain:
    """The request as a validated chain, and the policy it runs under (guard configs validated, in full).

    Steps: the guards (and metric gates) in order, the edit (edit mode only), then the primary metric on the
    preview split and on the final split.

    :raises GuardchainError: every problem at once, with the preset's paths; ``GC-CONFIG-VALUE`` for fewer windows
        than the profile asks.
    """
    preset = request.preset
    policy = resolve_policy(request.tier, request.profile)
    sizes = policy.sizes
    dataset_config = {
        "seq_len": sizes.seq_len,
        "n_preview": sizes.n_preview,
        "n_final": sizes.n_final,
        "seed": preset.seed,
        **preset.dataset_config,
    }
    problems: list[Problem] = []
    for key, minimum in (("n_preview", sizes.n_preview), ("n_final", sizes.n_final)):
        value = dataset_config.get(key, minimum)
        if not isinstance(value, int) or value < minimum:
            problems.append(
                Problem(
                    ErrorCode.CONFIG_VALUE,
                    f"{value!r} {key.removeprefix('n_')} windows are too few for the {policy.profile!r} profile",
                    path=f"dataset_config.{key}",
                    expected=f"an integer of at least {minimum}",
                )
            )
    kind, guard_steps = request.guard_steps()
    steps: list[dict[str, Any]] = []
    where: list[tuple[str, str, str]] = []  # per step: its kind, the preset's path of its config, of its name
    first_gate = len(guard_steps) - len(preset.gates)
    for index, step in enumerate(guard_steps):
        steps.append({"guard": step.guard, "config": step.config})
        gate = f"gates[{index - first_gate}]"
        if index >= first_gate:
            where.append(("guard", gate, gate))
        else:
            where.append(("guard", f"guards[{index}].config", f"guards[{index}].guard"))
    if request.subject is None:
        steps.append({"edit": preset.edit, "config": preset.edit_config})
        where.append(("edit", "edit_config", "edit"))
    for split in ("preview", "final") if preset.metric is not None else ():
        config = {**preset.metric_config, "split": split}
        steps.append({"id": f"primary-{split}", "metric": preset.metric, "config": config})
        where.append(("metric", "metric_config", "metric"))
    if preset.metric is None and not guard_steps:
        problems.append(
            Problem(
                ErrorCode.CONFIG_VALUE,
                "with no primary metric (metric: null) and no guards or gates there is nothing to certify",
                path="metric",
                hint="keep the default metric, or add guards or gates",
            )
        )
    raw: dict[str, Any] = {
        "name": "certify",
        "seed": preset.seed,
        "model": {"ref": request.baseline, "config": preset.adapter_config}
        | ({"adapter": preset.adapter} if preset.adapter else {}),
        "data": {"dataset": preset.dataset, "config": dataset_config},
        "steps": steps,
    }
    try:
        chain = validate_chain(raw, registry)
    except GuardchainError as exc:
        problems += [_preset_path(p, where) for p in exc.problems]
        chain = None
        if kind == "tier":
            problems = [_hint_no_guards(p) for p in problems]
    if problems:
        raise GuardchainError(problems)
    assert chain is not None
    validated_guards = tuple(
        GuardStep(guard=step.guard, config=config.model_dump(mode="json"))
        for step, config in zip(guard_steps, chain.step_configs, strict=False)
    )
    policy = resolve_policy(request.tier, request.profile, kind, validated_guards, preset.metric is not None)
    return CertificationChain(chain, policy, tuple(where))


def _hint_no_guards(problem: Problem) -> Problem:
    """Say how to proceed when the tier's required guards are not installed."""
    if not (problem.path.startswith("guards[") and problem.path.endswith("].guard")):
        return problem
    hint = "install guardchain-guards, or certify without guards: --no-guards (or guards: [] in a --preset)"
    return Problem(problem.code, problem.message, problem.path, problem.expected, hint, problem.details)


def _preset_path(problem: Problem, where: list[tuple[str, str, str]]) -> Problem:
    """Rename a chain path to the preset's spelling: ``steps[3].config.bits`` -> ``edit_config.bits``,
    ``steps[0].guard`` -> ``guards[0].guard``, ``data.config.n_final`` -> ``dataset_config.n_final``."""
    path = problem.path
    renames = [("model.config", "adapter_config"), ("model.ref", "baseline"), ("model", "baseline")]
    renames += [("data.config", "dataset_config")]
    renames += [("data", "dataset")]
    for index, (kind, config_path, name_path) in enumerate(where):
        renames += [(f"steps[{index}].config", config_path), (f"steps[{index}].{kind}", name_path)]
        renames += [(f"steps[{index}]", name_path)]
    for old, new in sorted(renames, key=lambda pair: -len(pair[0])):
        if path == old or path.startswith((f"{old}.", f"{old}[")):
            path = new + path[len(old) :]
            break
    return Problem(problem.code, problem.message, path, problem.expected, problem.hint, problem.details)
