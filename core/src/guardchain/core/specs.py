"""Capability specs: what a registration hook records instead of an instance.

A spec names a capability, says in one line what it does, points at its pydantic config model and at a lazy
factory (``"package.module:attr"``), so listing plugins never imports an implementation, nor torch.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception, format_path
from guardchain.core.kinds import CapabilityKind

if TYPE_CHECKING:
    from pydantic import BaseModel  # pydantic loads only when a config model is resolved (listing plugins never does)

    from guardchain.core.registry import PluginRecord

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
MAX_SUMMARY = 120

Factory = Callable[["BaseModel"], Any]


@dataclass(frozen=True)
class CapabilitySpec:
    """A registered capability, not yet instantiated.

    Both the implementation and the config model may be given as ``"module:attr"`` references, imported only
    when first needed (``plugins show``, ``doctor``, ``run``): listing plugins then imports neither torch nor
    pydantic model definitions.

    :ivar kind: its kind.
    :ivar name: its registered name: lowercase, digits and underscores, unique per kind.
    :ivar summary: one line, at most 120 characters.
    :ivar config_model_ref: the pydantic model of its configuration (must forbid extra keys), or a
        ``"module:attr"`` reference to it; :attr:`config_model` resolves it.
    :ivar factory: ``"module:attr"`` (imported on first use) or a callable; called with a validated
        ``config_model`` instance, it returns the capability object.
    :ivar docs: longer documentation (markdown), shown by ``guardchain plugins show``.
    :ivar plugin: name of the plugin (entry point) that registered it.
    :ivar distribution: the distribution that ships that plugin, when known.
    :ivar version: that distribution's version, when known.
    """

    kind: CapabilityKind
    name: str
    summary: str
    config_model_ref: type[BaseModel] | str
    factory: str | Factory
    docs: str = ""
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        """``distribution:name``, the spelling that stays unambiguous when two distributions clash."""
        return f"{self.distribution or self.plugin}:{self.name}"

    @property
    def label(self) -> str:
        """How errors name this capability: ``"guard 'spectral' (plugin guards, guardchain-guards 0.1.0)"``."""
        origin = " ".join(part for part in (self.distribution, self.version) if part)
        owner = f"plugin {self.plugin}" + (f", {origin}" if origin else "")
        return f"{self.kind} {self.name!r} ({owner})"

    @property
    def accepted_names(self) -> tuple[str, str]:
        """The names a result of this capability may carry: the registered name, then the qualified one."""
        return (self.name, self.qualified_name)

    @cached_property
    def config_model(self) -> type[BaseModel]:
        """The config model class, imported on first use and checked (pydantic model, ``extra="forbid"``).

        :raises GuardchainError: ``GC-PLUGIN-UNAVAILABLE`` if it cannot be imported, ``GC-SPEC-INVALID`` if it
            is not a pydantic model forbidding extra keys.
        """
        target = self.config_model_ref
        if isinstance(target, str):
            target = self._import(target, "config model")
        problems = _config_model_problems(self.label, target, full=True)
        if problems:
            raise GuardchainError(problems)
        return target

    def load_factory(self) -> Factory:
        """Import and return the factory.

        :raises GuardchainError: ``GC-PLUGIN-UNAVAILABLE`` with the original cause (usually a missing extra such
            as torch) if the implementation cannot be imported.
        """
        if not isinstance(self.factory, str):
            return self.factory
        target = self._import(self.factory, "implementation")
        if not callable(target):
            raise GuardchainError.single(
                ErrorCode.SPEC_INVALID,
                f"factory {self.factory!r} of {self.kind} {self.name!r} is not callable",
            )
        return target  # type: ignore[no-any-return]

    def _import(self, reference: str, what: str) -> Any:
        module_name, _, attr_path = reference.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr_path.split("."):
                target = getattr(target, part)
        except Exception as exc:
            missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
            hint = f"install the package that provides {missing!r}" if missing else ""
            raise GuardchainError.single(
                ErrorCode.PLUGIN_UNAVAILABLE,
                f"the {what} of {self.kind} {self.name!r} ({self.qualified_name}) cannot be imported from "
                f"{reference!r}: {describe_exception(exc)}",
                hint=hint,
                cause=exc,
            ) from exc
        return target


def _config_model_problems(label: str, model: Any, *, full: bool = False) -> list[Problem]:
    """Problems of a config model: a pydantic model forbidding extra keys and, with ``full``, one whose defaults
    validate, survive a JSON round trip and that has a JSON Schema (the rules of the conformance kit)."""
    from pydantic import BaseModel  # pydantic loads only when a config model is resolved (listing plugins never does)

    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        return [Problem(ErrorCode.SPEC_INVALID, f"{label}: config_model must be a pydantic BaseModel subclass")]
    if model.model_config.get("extra") != "forbid":
        return [
            Problem(
                ErrorCode.SPEC_INVALID,
                f"{label}: config_model {model.__name__} must set model_config = ConfigDict(extra='forbid') so "
                "that typos in chain files are caught",
            )
        ]
    if not full:
        return []
    return _default_problems(label, model) + _schema_problems(label, model)


def _default_problems(label: str, model: type[BaseModel]) -> list[Problem]:
    """Validate every default explicitly (pydantic does not) and round-trip the defaults through JSON."""
    from pydantic import ValidationError  # pydantic loads only when a config model is resolved

    def invalid(what: str, hint: str = _DEFAULT_HINT) -> list[Problem]:
        return [Problem(ErrorCode.SPEC_INVALID, f"{label}: config model {model.__name__} {what}", hint=hint)]

    defaults: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            continue
        try:
            defaults[info.alias or name] = info.get_default(call_default_factory=True)
        except Exception as exc:
            return invalid(f"cannot build the default of {name!r}: {describe_exception(exc)}")
    try:
        instance = model.model_validate(defaults)
    except ValidationError as exc:
        # Missing required fields, and rules across fields (a model validator, reported at the empty location,
        # such as "set name or local_path"), say nothing about the defaults themselves.
        errors = [e for e in exc.errors(include_url=False) if e["type"] != "missing" and e["loc"]]
        if not errors:
            return []
        first = errors[0]
        return invalid(f"has an invalid default: {format_path(first['loc'])}: {first['msg']}")
    except Exception as exc:
        return invalid(f"raised while validating its defaults: {describe_exception(exc)}")
    try:
        again = model.model_validate_json(instance.model_dump_json())
    except Exception as exc:
        return invalid(f"has defaults that do not survive a JSON round trip: {describe_exception(exc)}", _JSON_HINT)
    if again != instance:
        return invalid("has defaults that change in a JSON round trip", _JSON_HINT)
    return []


_DEFAULT_HINT = (
    "every default must satisfy its own field's constraints; a chain that relies on it would run with a value the "
    "model itself rejects"
)
_JSON_HINT = "configs are recorded as JSON (run records, certificates): use field types that JSON can carry"


def _schema_problems(label: str, model: type[BaseModel]) -> list[Problem]:
    import warnings  # only when a config model is checked

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a default left out of the schema: not this check's business
            schema = model.model_json_schema()
    except Exception as exc:
        return [
            Problem(
                ErrorCode.SPEC_INVALID,
                f"{label}: config model {model.__name__} has no JSON Schema: {describe_exception(exc)}",
                hint="use field types pydantic can describe in JSON Schema (no callables or arbitrary classes)",
            )
        ]
    if schema.get("type") != "object":
        return [Problem(ErrorCode.SPEC_INVALID, f"{label}: config model {model.__name__}'s schema is not an object")]
    return []


def check_spec(spec: CapabilitySpec) -> list[Problem]:
    """Validate a spec as it is registered.

    Checks the name, the summary, the config model (a pydantic model with ``extra="forbid"`` when given as a
    class; a well-formed ``"module:attr"`` reference otherwise), that a string factory is a well-formed reference,
    and, when the factory is a class given directly, that the class satisfies the kind's protocol. References are
    imported and checked only when used (``guardchain plugins check --load``, ``plugins show``, a chain), so
    listing stays import-free.

    :returns: ``GC-SPEC-INVALID`` / ``GC-CAPABILITY-INVALID`` problems; empty when valid.
    """
    label = f"{spec.kind} {spec.name!r}"
    problems: list[Problem] = []
    if not NAME_PATTERN.match(spec.name):
        problems.append(
            Problem(
                ErrorCode.SPEC_INVALID,
                f"invalid capability name {spec.name!r}",
                expected="lowercase letters, digits and underscores, starting with a letter, at most 64",
            )
        )
    if not spec.summary.strip() or "\n" in spec.summary or len(spec.summary) > MAX_SUMMARY:
        problems.append(
            Problem(
                ErrorCode.SPEC_INVALID,
                f"{label} needs a one-line summary of at most {MAX_SUMMARY} characters",
            )
        )
    if isinstance(spec.config_model_ref, str):
        if not FACTORY_PATTERN.match(spec.config_model_ref):
            problems.append(
                Problem(
                    ErrorCode.SPEC_INVALID,
                    f"{label}: malformed config model reference {spec.config_model_ref!r}",
                    expected="'package.module:ClassName'",
                )
            )
    else:
        problems.extend(_config_model_problems(label, spec.config_model_ref))
    if isinstance(spec.factory, str):
        if not FACTORY_PATTERN.match(spec.factory):
            problems.append(
                Problem(
                    ErrorCode.SPEC_INVALID,
                    f"{label}: malformed factory reference {spec.factory!r}",
                    expected="'package.module:attribute'",
                )
            )
    elif not callable(spec.factory):
        problems.append(Problem(ErrorCode.SPEC_INVALID, f"{label}: factory must be callable or 'module:attr'"))
    elif inspect.isclass(spec.factory):
        from guardchain.core.capabilities import (
            validate_capability,  # the protocols import pydantic results: listing plugins never needs them
        )

        problems.extend(validate_capability(spec.kind, spec.factory, label=label))
    return problems


class Registrar:
    """Collects the capability specs one plugin registers for one kind.

    Passed to ``guardchain_register_<kind>s(registrar)``; the registry commits what it collected only when all of
    the plugin's registration hooks return cleanly.
    """

    def __init__(self, kind: CapabilityKind, record: PluginRecord) -> None:
        self.kind = kind
        self._record = record
        self.specs: list[CapabilitySpec] = []

    def register(
        self,
        name: str,
        *,
        summary: str,
        config_model: type[BaseModel] | str,
        factory: str | Factory,
        docs: str = "",
        verifier: str | None = None,
    ) -> None:
        """Record one capability.

        :param name: registered name: lowercase letters, digits and underscores; unique per kind.
        :param summary: one line, at most 120 characters, shown by ``plugins list``.
        :param config_model: pydantic model (``extra="forbid"``) validating the step's ``config`` mapping, or a
            ``"module:Class"`` reference to it (preferred: listing plugins then builds no pydantic model).
        :param factory: ``"module:attr"`` (preferred: imported only when used) or a callable taking the validated
            config and returning the capability object.
        :param docs: longer markdown documentation, shown by ``plugins show``.
        :param verifier: guards only: a ``"module:function"`` reference to a torch-free function
            ``verify_report(report, config) -> list[tuple[str, str]]`` that re-derives the guard's status and
            summary measurements from its recorded report (JSON) and full config (JSON), returning ``(field,
            message)`` per disagreement. ``guardchain verify`` calls it for each of the guard's reports in a
            certificate (see ``docs/plugins/authoring.md``).
        :raises GuardchainError: ``GC-SPEC-INVALID`` / ``GC-CAPABILITY-INVALID`` if the spec is invalid, or the
            name was already registered by this plugin for this kind.
        """
        spec = CapabilitySpec(
            kind=self.kind,
            name=name,
            summary=summary,
            config_model_ref=config_model,
            factory=factory,
            docs=docs,
            plugin=self._record.name,
            distribution=self._record.distribution,
            version=self._record.version,
            extras={"verifier": verifier} if verifier is not None else {},
        )
        problems = check_spec(spec)
        if verifier is not None and (self.kind != CapabilityKind.GUARD or not FACTORY_PATTERN.match(verifier)):
            problems.append(
                Problem(
                    ErrorCode.SPEC_INVALID,
                    f"{self.kind} {name!r}: verifier {verifier!r} must be a 'module:function' reference, on a guard",
                )
            )
        if any(s.name == name for s in self.specs):
            problems.append(Problem(ErrorCode.SPEC_INVALID, f"{self.kind} {name!r} registered twice"))
        if problems:
            raise GuardchainError(problems)
        self.specs.append(spec)
