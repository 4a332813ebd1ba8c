"""The JSON Schema of chain files, assembled from the kernel envelope and every loaded plugin's config model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardchain.core.config import STEP_KINDS, ChainConfig, StepSection
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception
from guardchain.core.kinds import CapabilityKind

if TYPE_CHECKING:
    from guardchain.core.registry import Registry


def chain_json_schema(registry: Registry, problems: list[Problem] | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a chain file for the plugins ``registry`` has loaded.

    Each step is a ``oneOf`` over the registered capabilities of the step kinds: ``{"guard": {"const": name},
    "config": {"$ref": "#/$defs/guard.<name>"}}``; likewise ``model`` (adapters) and ``data`` (datasets).

    A capability whose config model cannot be imported or has no valid schema is left out: one plugin's broken
    model never hides the others'. Its problems (``GC-PLUGIN-UNAVAILABLE``, ``GC-SPEC-INVALID``) are appended to
    ``problems`` when given, each with ``details["plugin"]``.
    """
    schema = ChainConfig.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})

    def variants(
        kinds: tuple[CapabilityKind, ...], extra: dict[str, Any], required: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        out = []
        for kind in kinds:
            for spec in registry.specs(kind):
                key = f"{kind}.{spec.qualified_name}"
                try:
                    sub = spec.config_model.model_json_schema(ref_template=f"#/$defs/{key}.{{model}}")
                except Exception as exc:
                    if problems is not None:
                        found = (
                            exc.problems
                            if isinstance(exc, GuardchainError)
                            else [
                                Problem(
                                    ErrorCode.SPEC_INVALID,
                                    f"{spec.label}: its config model has no JSON Schema: {describe_exception(exc)}",
                                )
                            ]
                        )
                        problems.extend(_owned(p, spec.plugin) for p in found)
                    continue
                for name, definition in sub.pop("$defs", {}).items():
                    defs[f"{key}.{name}"] = definition
                defs[key] = sub
                names = [spec.name, spec.qualified_name]
                out.append(
                    {
                        "type": "object",
                        "description": spec.summary,
                        "properties": {
                            kind.value: {"enum": names},
                            "config": {"$ref": f"#/$defs/{key}"},
                            **extra,
                        },
                        "required": [kind.value, *required],
                        "additionalProperties": False,
                    }
                )
        return out

    step_fields = StepSection.model_json_schema()["properties"]
    step_extra = {"id": step_fields["id"], "sites": step_fields["sites"]}
    steps = variants(STEP_KINDS, step_extra)
    if steps:
        schema["properties"]["steps"]["items"] = {"oneOf": steps}
    adapters = variants((CapabilityKind.ADAPTER,), {"ref": {"type": "string", "minLength": 1}}, ("ref",))
    if adapters:
        ref_only = {
            "type": "object",
            "properties": {"ref": {"type": "string", "minLength": 1}, "config": {"type": "object"}},
            "required": ["ref"],
            "additionalProperties": False,
        }
        schema["properties"]["model"] = {"anyOf": [{"oneOf": adapters}, ref_only, {"type": "null"}]}
    datasets = variants((CapabilityKind.DATASET,), {})
    if datasets:
        schema["properties"]["data"] = {"anyOf": [{"oneOf": datasets}, {"type": "null"}]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "guardchain chain file"
    return schema


def _owned(problem: Problem, plugin: str) -> Problem:
    details = {**problem.details, "plugin": plugin}
    return Problem(problem.code, problem.message, problem.path, problem.expected, problem.hint, details)
