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

from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception
from guardchain.core.kinds import CapabilityKind

if TYPE_CHECKING:
    from pydantic import BaseModel

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

    @cached_property
    def config_model(self) -> type[BaseModel]:
        """The config model class, imported on first use and checked (pydantic model, ``extra="forbid"``).

        :raises GuardchainError: ``GC-PLUGIN-UNAVAILABLE`` if it cannot be imported, ``GC-SPEC-INVALID`` if it
            is not a pydantic model forbidding extra keys.
        """
        target = self.config_model_ref
        if isinstance(target, str):
            target = self._import(target, "config model")
        problems = _config_model_problems(f"{self.kind} {self.name!r}", target)
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


def _config_model_problems(label: str, model: Any) -> list[Problem]:
    from pydantic import BaseModel

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
        from guardchain.core.capabilities import validate_capability

        problems.extend(validate_capability(spec.kind, spec.factory, label=label))
    return problems
