"""Stable error codes and the one exception type the kernel raises for expected failures.

Every failure a user can cause or fix (a broken plugin, a bad chain file, an unavailable capability) carries a
code from :class:`ErrorCode`. Codes are part of the public contract: they never change meaning and are never
reused; ``docs/errors.md`` lists each one (a test keeps the two in step).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


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
    PLUGIN_HEAVY_IMPORT = "GC-PLUGIN-HEAVY-IMPORT"
    SPEC_INVALID = "GC-SPEC-INVALID"
    CAPABILITY_INVALID = "GC-CAPABILITY-INVALID"
    CAPABILITY_RESULT = "GC-CAPABILITY-RESULT"
    HOOK_FAILED = "GC-HOOK-FAILED"
    PAIRING_MISMATCH = "GC-PAIRING-MISMATCH"
    # Chain files.
    CONFIG_NOT_FOUND = "GC-CONFIG-NOT-FOUND"
    CONFIG_FORMAT = "GC-CONFIG-FORMAT"
    CONFIG_PARSE = "GC-CONFIG-PARSE"
    CONFIG_NOT_A_FILE = "GC-CONFIG-NOT-A-FILE"
    CONFIG_TOO_LARGE = "GC-CONFIG-TOO-LARGE"
    CONFIG_DUPLICATE_KEY = "GC-CONFIG-DUPLICATE-KEY"
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
    # The command line itself.
    INTERRUPTED = "GC-INTERRUPTED"
    INTERNAL = "GC-INTERNAL"


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
    ErrorCode.PLUGIN_HEAVY_IMPORT: "Importing a plugin's registration module (or running its registration hooks) "
    "imported torch or transformers, which makes every `guardchain` invocation slow; the plugin still works.",
    ErrorCode.SPEC_INVALID: "A registration hook passed an invalid capability spec (bad name, summary, config "
    "model that is not a pydantic model forbidding extra keys, a config model whose defaults do not validate or "
    "that has no JSON Schema, or a malformed factory reference).",
    ErrorCode.CAPABILITY_INVALID: "A capability object does not satisfy its protocol: a required attribute is "
    "missing, not callable, or has an incompatible signature.",
    ErrorCode.CAPABILITY_RESULT: "A capability returned a result that breaks its protocol's contract: a guard "
    "report or metric result that names another capability, an edit plan naming weights the model does not have, "
    "a non-finite metric value, a handle from another adapter, a malformed dataset fingerprint.",
    ErrorCode.HOOK_FAILED: "An observer or decision hook implementation raised; the other implementations still ran.",
    ErrorCode.PAIRING_MISMATCH: "A baseline and a subject result cannot be paired: different metrics, different "
    "evaluation units (window ids), a different order, or different token counts per unit.",
    ErrorCode.CONFIG_NOT_FOUND: "The chain file does not exist or cannot be read.",
    ErrorCode.CONFIG_FORMAT: "The chain file's extension is not one of .yaml, .yml, .toml or .json.",
    ErrorCode.CONFIG_PARSE: "The chain file is not valid YAML, TOML or JSON, its top level is not a mapping, or "
    "it holds text that is not valid Unicode (a lone surrogate).",
    ErrorCode.CONFIG_NOT_A_FILE: "The chain path exists but is not a regular file (a directory, a FIFO, a device "
    "such as /dev/zero).",
    ErrorCode.CONFIG_TOO_LARGE: "The chain file is larger than 1 MiB, its YAML aliases expand to more than "
    "100,000 values, or it nests deeper than 64 levels (or refers to itself).",
    ErrorCode.CONFIG_DUPLICATE_KEY: "A mapping of the chain file repeats a key (YAML or JSON; TOML refuses it "
    "while parsing), instead of the last one silently winning.",
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
    ErrorCode.OUTPUT_WRITE: "An output file (run record, certificate) could not be written, or the output "
    "folder is not writable (checked before the chain runs).",
    ErrorCode.INTERRUPTED: "The command was interrupted (Ctrl-C); exit code 130.",
    ErrorCode.INTERNAL: "An unexpected exception escaped a command (a bug in guardchain or in a plugin); exit code "
    "3, with the traceback in the log at --log-level debug.",
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


#: The longest exception message :func:`describe_exception` shows, in characters.
MAX_CAUSE_CHARS = 500


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: message"`` on one line: how an original cause is shown to users.

    Whitespace runs (newlines included) become one space and the message is cut at :data:`MAX_CAUSE_CHARS`
    characters, so that an exception whose text holds a whole model or tensor never floods the terminal.
    """
    try:
        text = " ".join(str(exc).split())
    except Exception:  # a broken __str__ must not hide the original failure
        text = "(the exception's message cannot be shown)"
    if len(text) > MAX_CAUSE_CHARS:
        text = text[: MAX_CAUSE_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def traceback_text(exc: BaseException) -> str:
    """The traceback of ``exc`` as plain text, for debug logs only.

    Never the structured or "rich" rendering that ``exc_info=True`` gives, which shows local variables and so
    prints whole models and tensors.
    """
    import traceback  # only on the failure path

    return "".join(traceback.format_exception(exc)).rstrip()


# -- pydantic validation errors as problems ---------------------------------------------------------------------


def format_path(loc: Sequence[int | str]) -> str:
    """``("steps", 2, "config", "x")`` -> ``"steps[2].config.x"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(prefix: str, loc: Sequence[int | str]) -> str:
    rest = format_path(loc)
    if not prefix:
        return rest
    if not rest:
        return prefix
    return prefix + rest if rest.startswith("[") else f"{prefix}.{rest}"


_TYPE_ERRORS = re.compile(r"(_type|_parsing|_class)$")


def _model_at(model: type[BaseModel] | None, loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (for 'did you mean' and allowed keys)."""
    from pydantic import BaseModel  # only validation failures need it: listing plugins never imports pydantic

    current: Any = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _inner_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    from pydantic import BaseModel  # see _model_at

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset, typing.Union, types.UnionType, dict):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def problems_from_validation_error(
    exc: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    """Turn pydantic errors into problems with file paths, stable codes and what was expected.

    :param exc: the validation error.
    :param prefix: path of the validated object inside the chain file (``steps[2].config``).
    :param model: the model that was validated, used to list allowed keys and suggest near misses.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        message = str(error["msg"])
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            owner = _model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields) if owner else []
            close = difflib.get_close_matches(key, allowed, n=1)
            problems.append(
                Problem(
                    ErrorCode.CONFIG_UNKNOWN_KEY,
                    f"unknown key {key!r}",
                    path=_join(prefix, loc),
                    expected="one of: " + ", ".join(allowed) if allowed else "",
                    hint=f"did you mean {close[0]!r}?" if close else "",
                )
            )
        elif kind == "missing":
            owner = _model_at(model, loc[:-1])
            info = owner.model_fields.get(str(loc[-1])) if owner and loc else None
            expected = ""
            if info is not None:
                expected = _describe_annotation(info.annotation)
                if info.description:
                    expected += f": {info.description}"
            problems.append(
                Problem(
                    ErrorCode.CONFIG_MISSING,
                    f"required key {str(loc[-1]) if loc else ''!r} is missing",
                    path=_join(prefix, loc),
                    expected=expected,
                )
            )
        else:
            code = ErrorCode.CONFIG_TYPE if _TYPE_ERRORS.search(kind) else ErrorCode.CONFIG_VALUE
            got = error.get("input")
            text = message
            if text.startswith("Value error, "):
                text = text[len("Value error, ") :]
            expected = ""
            if text.startswith("Input should be "):
                expected, _, reason = text[len("Input should be ") :].partition(", ")
                text = f"got {_short_repr(got)}" + (f" ({reason})" if reason else "")
            problems.append(Problem(code, text, path=_join(prefix, loc), expected=expected))
    return problems


def _describe_annotation(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
