"""Stable error codes and the one exception type the kernel raises for expected failures.

Every failure a user can cause or fix (a broken plugin, a bad chain file, an unavailable capability) carries a
code from :class:`ErrorCode`. Codes are part of the public contract: they never change meaning and are never
reused; ``docs/errors.md`` lists each one (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable, documented error codes. The value is what users see and search for."""

    # Plugin discovery and registration (one plugin's failure never hides another's).
    PLUGIN_IMPORT = "GC-PLUGIN-IMPORT"
    PLUGIN_IMPORT_ERROR = "GC-PLUGIN-IMPORT-ERROR"
    PLUGIN_ENTRY_POINT = "GC-PLUGIN-ENTRY-POINT"
    PLUGIN_API = "GC-PLUGIN-API"
    PLUGIN_HOOK = "GC-PLUGIN-HOOK"
    PLUGIN_REGISTER = "GC-PLUGIN-REGISTER"
    PLUGIN_CONFLICT = "GC-PLUGIN-CONFLICT"
    PLUGIN_BLOCKED = "GC-PLUGIN-BLOCKED"
    PLUGIN_UNKNOWN = "GC-PLUGIN-UNKNOWN"
    PLUGIN_UNAVAILABLE = "GC-PLUGIN-UNAVAILABLE"
    SPEC_INVALID = "GC-SPEC-INVALID"
    CAPABILITY_INVALID = "GC-CAPABILITY-INVALID"
    HOOK_FAILED = "GC-HOOK-FAILED"
    PAIRING_MISMATCH = "GC-PAIRING-MISMATCH"
    # Chain files.
    CONFIG_NOT_FOUND = "GC-CONFIG-NOT-FOUND"
    CONFIG_FORMAT = "GC-CONFIG-FORMAT"
    CONFIG_PARSE = "GC-CONFIG-PARSE"
    CONFIG_UNKNOWN_KEY = "GC-CONFIG-UNKNOWN-KEY"
    CONFIG_MISSING = "GC-CONFIG-MISSING"
    CONFIG_TYPE = "GC-CONFIG-TYPE"
    CONFIG_VALUE = "GC-CONFIG-VALUE"
    # Running chains.
    ADAPTER_UNRESOLVED = "GC-ADAPTER-UNRESOLVED"
    MODEL_NOT_FOUND = "GC-MODEL-NOT-FOUND"
    MODEL_NONFINITE = "GC-MODEL-NONFINITE"
    STEP_FAILED = "GC-STEP-FAILED"
    STEP_ORDER = "GC-STEP-ORDER"
    OUTPUT_WRITE = "GC-OUTPUT-WRITE"


ERROR_DESCRIPTIONS: Mapping[ErrorCode, str] = {
    ErrorCode.PLUGIN_IMPORT: "A plugin's registration module could not be imported because a module is missing "
    "(usually an optional extra that is not installed); the message names the missing module.",
    ErrorCode.PLUGIN_IMPORT_ERROR: "A plugin's registration module raised an exception other than ImportError "
    "while being imported.",
    ErrorCode.PLUGIN_ENTRY_POINT: "An entry point in the `guardchain.plugins` group is malformed or names an "
    "attribute that does not exist.",
    ErrorCode.PLUGIN_API: "A plugin declares no `GUARDCHAIN_PLUGIN_API`, or one this kernel does not support.",
    ErrorCode.PLUGIN_HOOK: "A plugin implements a `guardchain_*` hook that does not exist, or with arguments the "
    "hook specification does not have.",
    ErrorCode.PLUGIN_REGISTER: "A plugin's registration hook raised; nothing it tried to register was kept.",
    ErrorCode.PLUGIN_CONFLICT: "Two distributions register a capability of the same kind under the same name; "
    "the bare name is ambiguous and each is reachable only as `distribution:name`.",
    ErrorCode.PLUGIN_BLOCKED: "A plugin was not loaded because of `GUARDCHAIN_PLUGINS` (allow-list) or "
    "`GUARDCHAIN_DISABLE_PLUGINS` / `--disable-plugin` (block-list).",
    ErrorCode.PLUGIN_UNKNOWN: "A chain names a capability that no loaded plugin registers.",
    ErrorCode.PLUGIN_UNAVAILABLE: "A chain uses a capability whose plugin failed to load or whose implementation "
    "cannot be imported; the original cause is attached.",
    ErrorCode.SPEC_INVALID: "A registration hook passed an invalid capability spec (bad name, summary, config "
    "model that is not a pydantic model forbidding extra keys, or a malformed factory reference).",
    ErrorCode.CAPABILITY_INVALID: "A capability object does not satisfy its protocol: a required attribute is "
    "missing, not callable, or has an incompatible signature.",
    ErrorCode.HOOK_FAILED: "An observer or decision hook implementation raised; the other implementations still ran.",
    ErrorCode.PAIRING_MISMATCH: "A baseline and a subject result cannot be paired: different metrics, different "
    "evaluation units (window ids), a different order, or different token counts per unit.",
    ErrorCode.CONFIG_NOT_FOUND: "The chain file does not exist or cannot be read.",
    ErrorCode.CONFIG_FORMAT: "The chain file's extension is not one of .yaml, .yml, .toml or .json.",
    ErrorCode.CONFIG_PARSE: "The chain file is not valid YAML, TOML or JSON, or its top level is not a mapping.",
    ErrorCode.CONFIG_UNKNOWN_KEY: "A key that the schema does not define (often a typo; a suggestion is given).",
    ErrorCode.CONFIG_MISSING: "A required key is absent.",
    ErrorCode.CONFIG_TYPE: "A value has the wrong type.",
    ErrorCode.CONFIG_VALUE: "A value has the right type but is out of range or otherwise invalid.",
    ErrorCode.ADAPTER_UNRESOLVED: "No adapter was named for a model reference and no plugin's "
    "`guardchain_resolve_adapter` hook claimed it.",
    ErrorCode.MODEL_NOT_FOUND: "A model reference looks like a path, but nothing exists there (and no plugin "
    "claims it as a name).",
    ErrorCode.MODEL_NONFINITE: "A model produced a non-finite value where a metric needs a finite one (a NaN or "
    "infinite log-probability of an observed token). Metrics raise it instead of dropping the value, which would "
    "flatter a broken model; `certify` records it as the failed `subject_finite` gate (and rolls an edit back).",
    ErrorCode.STEP_FAILED: "A chain step raised while running; the run record names the step and the cause.",
    ErrorCode.STEP_ORDER: "A chain's steps are in an order the runner cannot execute (e.g. an edit or metric "
    "with no model loaded).",
    ErrorCode.OUTPUT_WRITE: "An output file (run record, certificate) could not be written.",
}


@dataclass(frozen=True)
class Problem:
    """One diagnosed problem: a stable code, where it is, what is wrong and what was expected.

    ``path`` uses the chain file's own spelling (``steps[2].config.sigma_quantile``); it is empty for problems
    that have no location in a file (a plugin that fails to import). ``code`` is one of the kernel's
    :class:`ErrorCode` s or a plugin's own stable code (a string such as ``"GC-HF-NETWORK-DISABLED"``, documented
    by that plugin).
    """

    code: ErrorCode | str
    message: str
    path: str = ""
    expected: str = ""
    hint: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"code", "path", "message", "expected", "hint", "details"}``."""
        return {
            "code": str(self.code),
            "path": self.path,
            "message": self.message,
            "expected": self.expected,
            "hint": self.hint,
            "details": dict(self.details),
        }

    def render(self) -> str:
        """One human-readable line (plus the hint, when there is one)."""
        where = f"{self.path}: " if self.path else ""
        text = f"{self.code} {where}{self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class GuardchainError(Exception):
    """An expected failure with one or more :class:`Problem` s attached.

    The CLI prints each problem on its own line and exits non-zero without a traceback. ``cause`` keeps the
    original exception (for example the ImportError behind an unavailable plugin) so logs can show it.
    """

    def __init__(self, problems: Problem | list[Problem], *, cause: BaseException | None = None) -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else list(problems)
        if not self.problems:
            raise ValueError("GuardchainError needs at least one problem")
        self.cause = cause
        super().__init__("\n".join(p.render() for p in self.problems))

    @property
    def code(self) -> ErrorCode | str:
        """The code of the first problem (the one a caller usually branches on)."""
        return self.problems[0].code

    @classmethod
    def single(
        cls,
        code: ErrorCode | str,
        message: str,
        *,
        path: str = "",
        expected: str = "",
        hint: str = "",
        cause: BaseException | None = None,
    ) -> GuardchainError:
        """Shorthand for an error with one problem."""
        return cls(Problem(code, message, path=path, expected=expected, hint=hint), cause=cause)


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: message"`` — how an original cause is shown to users."""
    return f"{type(exc).__name__}: {exc}"
