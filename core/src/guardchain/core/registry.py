"""The plugin registry: discovery through entry points, isolation, capability specs and hook calls.

There is no global plugin manager: the CLI builds one :class:`Registry` per invocation and tests build their own
(:meth:`Registry.discover` from installed entry points, :meth:`Registry.from_plugins` from objects in memory).

Loading one plugin goes through these stages; a failure at any stage stays inside that plugin, is recorded with a
stable code, and never stops the others from loading:

1. metadata: entry point name, value, distribution and version are recorded before anything is imported, so an
   unimportable plugin is still listed with its distribution;
2. allow/block lists (``GUARDCHAIN_PLUGINS``, ``GUARDCHAIN_DISABLE_PLUGINS``) -> ``blocked``;
3. import (``GC-PLUGIN-IMPORT`` names the missing module; ``GC-PLUGIN-IMPORT-ERROR`` for anything else);
4. API version (``GUARDCHAIN_PLUGIN_API``) -> ``incompatible`` (``GC-PLUGIN-API``);
5. hook validation by pluggy, plus unknown ``guardchain_*`` hooks and wrappers -> ``invalid`` (``GC-PLUGIN-HOOK``);
6. registration hooks, called one implementation at a time into staging registrars; specs are committed only if
   every registration hook of the plugin returned cleanly (``GC-PLUGIN-REGISTER`` / ``GC-SPEC-INVALID``);
7. name conflicts across distributions -> both plugins ``conflict`` (``GC-PLUGIN-CONFLICT``, naming both); each
   capability stays reachable as ``distribution:name``;
8. heavy imports: a registration module (or its registration hooks) that imported torch or transformers keeps
   working but carries a ``GC-PLUGIN-HEAVY-IMPORT`` warning, which ``plugins check`` reports (exit 1).

Pluggy's ``load_setuptools_entrypoints`` (aborts on the first failing import) and fan-out hook calls (one raising
implementation hides the rest) are deliberately not used.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from guardchain.core import PLUGIN_API_VERSION, hookspecs
from guardchain.core.errors import (
    ErrorCode,
    GuardchainError,
    Problem,
    describe_exception,
    problems_from_validation_error,
    traceback_text,
)
from guardchain.core.kinds import CapabilityKind
from guardchain.core.logs import get_logger
from guardchain.core.markers import PROJECT_NAME
from guardchain.core.specs import CapabilitySpec, Registrar

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import BaseModel

ENTRY_POINT_GROUP = "guardchain.plugins"
SUPPORTED_PLUGIN_APIS = frozenset({PLUGIN_API_VERSION})
API_ATTRIBUTE = "GUARDCHAIN_PLUGIN_API"

ENV_ALLOW = "GUARDCHAIN_PLUGINS"
ENV_BLOCK = "GUARDCHAIN_DISABLE_PLUGINS"
ENV_TRACE = "GUARDCHAIN_TRACE_PLUGINS"

#: Modules a registration module must not import (they make every ``guardchain`` invocation take seconds).
HEAVY_MODULES: tuple[str, ...] = ("torch", "transformers")

REGISTRATION_HOOKS: dict[str, CapabilityKind] = {f"guardchain_register_{k.plural}": k for k in CapabilityKind}
_ENTRY_POINT_VALUE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)?$")

_log = get_logger("guardchain.registry")


class PluginStatus(StrEnum):
    """Where a plugin ended up after loading."""

    OK = "ok"
    ERROR = "error"
    INCOMPATIBLE = "incompatible"
    INVALID = "invalid"
    BLOCKED = "blocked"
    CONFLICT = "conflict"


@dataclass
class PluginRecord:
    """Everything known about one plugin, whatever happened to it.

    :ivar name: the entry point name (unique within a registry; qualified with the distribution on a clash).
    :ivar distribution: the distribution that declares the entry point, or ``None`` for in-memory plugins.
    :ivar version: that distribution's version.
    :ivar entry_point: the entry point's value (``"package.plugin"``).
    :ivar status: the outcome of loading it.
    :ivar hooks: names of the hooks it implements (sorted).
    :ivar provides: kind -> registered capability names.
    :ivar problems: every problem met while loading or calling it, first one decisive.
    :ivar warnings: problems that leave the plugin working (``GC-PLUGIN-HEAVY-IMPORT``); ``plugins check``
        reports them.
    :ivar heavy_unchecked: a heavy module (:data:`HEAVY_MODULES`) was already imported when this plugin's
        registration module was, so whether it imports one too cannot be seen in this process
        (:meth:`Registry.probe_heavy_imports` checks it in a fresh one).
    :ivar load_ms: wall time of import plus registration, in milliseconds.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str = ""
    status: PluginStatus = PluginStatus.OK
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    heavy_unchecked: bool = False
    load_ms: float = 0.0
    api_version: int | None = None

    @property
    def ok(self) -> bool:
        """True when the plugin loaded and registered everything it declared."""
        return self.status == PluginStatus.OK

    def fail(self, status: PluginStatus, problem: Problem) -> None:
        """Mark the plugin as not ok (the first failure decides its status) and keep the problem."""
        if self.status == PluginStatus.OK:
            self.status = status
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        """The JSON row printed by ``guardchain plugins list --format json``."""
        row: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.entry_point,
            "status": str(self.status),
            "hooks": list(self.hooks),
            "provides": {k: list(v) for k, v in self.provides.items()},
            "api_version": self.api_version,
        }
        if self.problems:
            first = self.problems[0]
            row["error"] = {"code": str(first.code), "message": first.message, **dict(first.details)}
            row["problems"] = [p.to_dict() for p in self.problems]
        if self.warnings:
            row["warnings"] = [p.to_dict() for p in self.warnings]
        return row


@dataclass(frozen=True)
class RegistrySettings:
    """Which plugins load, and whether hook calls are traced.

    :ivar allow: if not ``None``, only plugins whose entry point or distribution name is listed load (an empty
        set loads none). From ``GUARDCHAIN_PLUGINS=a,b``.
    :ivar block: plugins (entry point or distribution names) that never load. From
        ``GUARDCHAIN_DISABLE_PLUGINS=a,b`` plus ``--disable-plugin``.
    :ivar trace: log every hook call and its outcome (``hook.call`` / ``hook.result`` events). From
        ``GUARDCHAIN_TRACE_PLUGINS=1``.
    """

    allow: frozenset[str] | None = None
    block: frozenset[str] = frozenset()
    trace: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, block: Iterable[str] = ()) -> RegistrySettings:
        """Read the ``GUARDCHAIN_*`` variables; ``block`` adds names from the command line."""
        env = os.environ if environ is None else environ
        allow = None
        if ENV_ALLOW in env:
            allow = frozenset(_split_names(env[ENV_ALLOW]))
        blocked = frozenset(_split_names(env.get(ENV_BLOCK, ""))) | frozenset(block)
        trace = env.get(ENV_TRACE, "").strip().lower() in {"1", "true", "yes", "on"}
        return cls(allow=allow, block=blocked, trace=trace)

    def blocked_reason(self, name: str, distribution: str | None) -> str | None:
        """Why ``name`` is not loaded, or ``None`` if it may load."""
        names = {name} | ({distribution} if distribution else set())
        if names & self.block:
            return f"disabled by {ENV_BLOCK} / --disable-plugin"
        if self.allow is not None and not names & self.allow:
            return f"not in the allow-list {ENV_ALLOW}={','.join(sorted(self.allow))!r}"
        return None


def _split_names(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


@dataclass(frozen=True)
class CreatedCapability:
    """A capability instantiated from its spec with a validated config."""

    spec: CapabilitySpec
    config: BaseModel
    instance: Any


class Registry:
    """Loaded plugins and the capabilities they registered.

    Build one with :meth:`discover` (installed entry points) or :meth:`from_plugins` (objects in memory, for
    tests); add more with :meth:`add_plugin`.
    """

    def __init__(self, settings: RegistrySettings | None = None) -> None:
        self.settings = settings or RegistrySettings()
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, PluginRecord] = {}
        self._objects: dict[str, object] = {}
        # (kind, name) -> every spec registered under that name (more than one means a conflict).
        self._specs: dict[tuple[CapabilityKind, str], list[CapabilitySpec]] = {}

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def discover(
        cls,
        settings: RegistrySettings | None = None,
        *,
        entry_points_source: Callable[[], Iterable[EntryPoint]] | None = None,
    ) -> Registry:
        """Load every plugin in the ``guardchain.plugins`` entry-point group.

        :param settings: allow/block lists and tracing; defaults to :meth:`RegistrySettings.from_env`.
        :param entry_points_source: returns the entry points to load (tests inject fakes here); defaults to
            ``importlib.metadata.entry_points(group="guardchain.plugins")``.
        """
        registry = cls(settings if settings is not None else RegistrySettings.from_env())
        source = entry_points_source or (lambda: entry_points(group=ENTRY_POINT_GROUP))
        for ep in sorted(source(), key=lambda e: (e.name, _dist_name(e) or "")):
            registry.add_entry_point(ep)
        return registry

    @classmethod
    def from_plugins(
        cls,
        plugins: Mapping[str, object] | Iterable[tuple[str, object]],
        settings: RegistrySettings | None = None,
    ) -> Registry:
        """Build a registry from plugin objects in memory (modules, classes or instances with hookimpls)."""
        registry = cls(settings)
        items = plugins.items() if isinstance(plugins, Mapping) else plugins
        for name, obj in items:
            registry.add_plugin(name, obj)
        return registry

    def add_entry_point(self, ep: EntryPoint) -> PluginRecord:
        """Load one entry point through every stage; failures are recorded, never raised."""
        dist = _dist_name(ep)
        version = ep.dist.version if ep.dist is not None else None
        record = PluginRecord(
            name=self._unique_name(ep.name, dist), distribution=dist, version=version, entry_point=ep.value
        )
        self._plugins[record.name] = record
        reason = self.settings.blocked_reason(ep.name, dist)
        if reason:
            self._pm.set_blocked(record.name)
            record.fail(PluginStatus.BLOCKED, Problem(ErrorCode.PLUGIN_BLOCKED, f"plugin {ep.name!r} {reason}"))
            return record
        started = time.perf_counter()
        if not _ENTRY_POINT_VALUE.match(ep.value.strip()):
            record.fail(
                PluginStatus.ERROR,
                Problem(
                    ErrorCode.PLUGIN_ENTRY_POINT,
                    f"malformed entry point value {ep.value!r}",
                    expected="'package.module' or 'package.module:attribute'",
                ),
            )
            return record
        module_name, _, attr_path = ep.value.strip().partition(":")
        heavy_before = {m for m in HEAVY_MODULES if m in sys.modules}
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            # Only ModuleNotFoundError names a missing module; a plain ImportError's .name is the module that
            # exists but lacks the imported name (often a version mismatch).
            missing = (exc.name or "") if isinstance(exc, ModuleNotFoundError) else ""
            record.fail(
                PluginStatus.ERROR,
                Problem(
                    ErrorCode.PLUGIN_IMPORT,
                    f"cannot import plugin {ep.name!r} ({ep.value}): {describe_exception(exc)}",
                    hint=(f"the module {missing!r} is missing; install the extra or package that provides it")
                    if missing
                    else "check that the plugin and the packages it imports have compatible versions",
                    details={"type": type(exc).__name__, "missing_module": missing},
                ),
            )
            _log.debug("plugin.load_failed", plugin=record.name, traceback=traceback_text(exc))
            return record
        except (Exception, SystemExit) as exc:
            record.fail(
                PluginStatus.ERROR,
                Problem(
                    ErrorCode.PLUGIN_IMPORT_ERROR,
                    f"plugin {ep.name!r} raised while being imported: {describe_exception(exc)}",
                    details={"type": type(exc).__name__},
                ),
            )
            _log.debug("plugin.load_failed", plugin=record.name, traceback=traceback_text(exc))
            return record
        for part in attr_path.split(".") if attr_path else ():
            if not hasattr(obj, part):
                record.fail(
                    PluginStatus.ERROR,
                    Problem(
                        ErrorCode.PLUGIN_ENTRY_POINT,
                        f"entry point {ep.name!r} names a missing attribute: {ep.value!r} has no {part!r}",
                    ),
                )
                return record
            obj = getattr(obj, part)
        self._register_object(record, obj, started)
        self._note_heavy_imports(record, heavy_before)
        return record

    @staticmethod
    def _note_heavy_imports(record: PluginRecord, heavy_before: set[str]) -> None:
        """Warn (``GC-PLUGIN-HEAVY-IMPORT``) when loading ``record`` imported a module of :data:`HEAVY_MODULES`."""
        record.heavy_unchecked = bool(heavy_before)
        imported = [m for m in HEAVY_MODULES if m in sys.modules and m not in heavy_before]
        if imported:
            record.warnings.append(heavy_import_problem(record.name, record.entry_point, imported))

    def probe_heavy_imports(self, record: PluginRecord) -> list[Problem]:
        """Load only ``record``'s entry point in a fresh interpreter and return its heavy-import warnings.

        The in-process check of :meth:`add_entry_point` cannot see a plugin import torch once another plugin
        already has; this one can. It costs one interpreter start (a fraction of a second).
        """
        code = (
            "import json, sys\n"
            "from guardchain.core.registry import Registry, RegistrySettings\n"
            f"registry = Registry.discover(RegistrySettings(allow=frozenset({{{record.name!r}}})))\n"
            f"record = registry.plugin({record.name!r})\n"
            "print(json.dumps([p.to_dict() for p in (record.warnings if record else [])]))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
            )
            rows = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            return [
                Problem(
                    ErrorCode.PLUGIN_HEAVY_IMPORT,
                    f"could not check in a fresh interpreter what plugin {record.name!r} imports: "
                    f"{describe_exception(exc)}",
                    details={"plugin": record.name},
                )
            ]
        return [
            Problem(row["code"], row["message"], row["path"], row["expected"], row["hint"], row["details"])
            for row in rows
        ]

    def add_plugin(
        self,
        name: str,
        obj: object,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginRecord:
        """Register an already imported plugin object (stages 4 to 7 of the loader)."""
        record = PluginRecord(
            name=self._unique_name(name, distribution),
            distribution=distribution,
            version=version,
            entry_point=getattr(obj, "__name__", type(obj).__name__),
        )
        self._plugins[record.name] = record
        reason = self.settings.blocked_reason(name, distribution)
        if reason:
            record.fail(PluginStatus.BLOCKED, Problem(ErrorCode.PLUGIN_BLOCKED, f"plugin {name!r} {reason}"))
            return record
        self._register_object(record, obj, time.perf_counter())
        return record

    def _unique_name(self, name: str, distribution: str | None) -> str:
        if name not in self._plugins:
            return name
        qualified = f"{distribution or 'memory'}:{name}"
        suffix = 2
        candidate = qualified
        while candidate in self._plugins:
            candidate = f"{qualified}#{suffix}"
            suffix += 1
        return candidate

    def _register_object(self, record: PluginRecord, obj: object, started: float) -> None:
        try:
            self._register_object_stages(record, obj)
        finally:
            record.load_ms = (time.perf_counter() - started) * 1000.0
            if record.ok:
                _log.debug(
                    "plugin.loaded",
                    plugin=record.name,
                    dist=record.distribution,
                    version=record.version,
                    duration_ms=round(record.load_ms, 2),
                )
            else:
                first = record.problems[0]
                _log.debug("plugin.load_failed", plugin=record.name, code=str(first.code), error=first.message)

    def _register_object_stages(self, record: PluginRecord, obj: object) -> None:
        api = getattr(obj, API_ATTRIBUTE, None)
        record.api_version = api if isinstance(api, int) else None
        if api not in SUPPORTED_PLUGIN_APIS:
            declared = "declares no API version" if api is None else f"declares API version {api!r}"
            record.fail(
                PluginStatus.INCOMPATIBLE,
                Problem(
                    ErrorCode.PLUGIN_API,
                    f"plugin {record.name!r} {declared}; this kernel supports "
                    f"{', '.join(map(str, sorted(SUPPORTED_PLUGIN_APIS)))}",
                    expected=f"{API_ATTRIBUTE} = {PLUGIN_API_VERSION}",
                    hint="upgrade or downgrade the plugin (or guardchain-core) so that their API versions match",
                ),
            )
            return
        try:
            self._pm.register(obj, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            record.fail(
                PluginStatus.INVALID,
                Problem(ErrorCode.PLUGIN_HOOK, f"plugin {record.name!r} has an invalid hook: {exc}"),
            )
            return
        self._objects[record.name] = obj
        hook_problems = self._check_hooks(record, obj)
        if hook_problems:
            for problem in hook_problems:
                record.fail(PluginStatus.INVALID, problem)
            self._unregister(record)
            return
        record.hooks = sorted(hc.name for hc in self._pm.get_hookcallers(obj) or [])
        staged: list[CapabilitySpec] = []
        for hook_name, kind in REGISTRATION_HOOKS.items():
            for impl in self._impls_of(hook_name, record.name):
                registrar = Registrar(kind, record)
                failure = self._call_impl(hook_name, impl, {"registrar": registrar})
                if failure is not None:
                    if isinstance(failure, GuardchainError):
                        problems = failure.problems
                    else:
                        problems = [
                            Problem(
                                ErrorCode.PLUGIN_REGISTER,
                                f"{hook_name} of plugin {record.name!r} raised; nothing it registers is kept: "
                                f"{describe_exception(failure)}",
                                details={"type": type(failure).__name__},
                            )
                        ]
                    for problem in problems:
                        record.fail(PluginStatus.ERROR, problem)
                    self._unregister(record)
                    return
                staged.extend(registrar.specs)
        for spec in staged:
            self._commit(record, spec)

    def _check_hooks(self, record: PluginRecord, obj: object) -> list[Problem]:
        problems = []
        for attr in dir(obj):
            is_hook_name = attr.startswith("guardchain_") and callable(getattr(obj, attr, None))
            if is_hook_name and self._pm.parse_hookimpl_opts(obj, attr) is None:
                problems.append(
                    Problem(
                        ErrorCode.PLUGIN_HOOK,
                        f"plugin {record.name!r} defines {attr!r} without @hookimpl, so it would never be called",
                        hint="decorate it with guardchain.core.hookimpl",
                    )
                )
        for caller in self._pm.get_hookcallers(obj) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is not obj:
                    continue
                if not caller.has_spec() and not impl.optionalhook:
                    close = difflib.get_close_matches(caller.name, _hook_names(), n=1)
                    problems.append(
                        Problem(
                            ErrorCode.PLUGIN_HOOK,
                            f"plugin {record.name!r} implements unknown hook {caller.name!r}",
                            hint=f"did you mean {close[0]!r}?" if close else "",
                        )
                    )
                if impl.kwargnames:
                    problems.append(
                        Problem(
                            ErrorCode.PLUGIN_HOOK,
                            f"plugin {record.name!r} gives {caller.name!r} parameters with defaults "
                            f"({', '.join(impl.kwargnames)}); pluggy never passes those, so they would stay at "
                            "their defaults",
                            hint="remove the defaults: an implementation may simply omit parameters it does not need",
                        )
                    )
                if impl.hookwrapper or impl.wrapper:
                    problems.append(
                        Problem(
                            ErrorCode.PLUGIN_HOOK,
                            f"plugin {record.name!r} implements {caller.name!r} as a wrapper, "
                            "which guardchain hooks do not support",
                        )
                    )
        return problems

    def _unregister(self, record: PluginRecord) -> None:
        obj = self._objects.pop(record.name, None)
        if obj is not None and self._pm.is_registered(obj):
            self._pm.unregister(obj)
        record.hooks = []
        for (_, _), specs in self._specs.items():
            specs[:] = [s for s in specs if s.plugin != record.name]
        record.provides = {}

    def _commit(self, record: PluginRecord, spec: CapabilitySpec) -> None:
        key = (spec.kind, spec.name)
        key_label = f"{spec.kind}:{spec.name}"
        existing = self._specs.setdefault(key, [])
        existing.append(spec)
        record.provides.setdefault(str(spec.kind), []).append(spec.name)
        if len(existing) > 1:
            owners = ", ".join(f"{s.distribution or s.plugin} (plugin {s.plugin!r})" for s in existing)
            message = f"{spec.kind} {spec.name!r} is registered by more than one plugin: {owners}"
            hint = (
                "use the qualified name "
                + " or ".join(repr(s.qualified_name) for s in existing)
                + ", or disable one plugin with GUARDCHAIN_DISABLE_PLUGINS"
            )
            for other in existing:
                other_record = self._plugins[other.plugin]
                # Earlier conflict problems about this name are superseded by this one, which names every owner.
                other_record.problems = [
                    p
                    for p in other_record.problems
                    if not (p.code == ErrorCode.PLUGIN_CONFLICT and p.details.get("capability") == key_label)
                ]
                other_record.fail(
                    PluginStatus.CONFLICT,
                    Problem(ErrorCode.PLUGIN_CONFLICT, message, hint=hint, details={"capability": key_label}),
                )

    # -- hooks ------------------------------------------------------------------------------------------------

    def _impls_of(self, hook_name: str, plugin_name: str | None = None) -> list[pluggy.HookImpl]:
        caller = getattr(self._pm.hook, hook_name)
        impls = list(reversed(caller.get_hookimpls()))  # pluggy's call order: last registered first
        if plugin_name is not None:
            impls = [impl for impl in impls if impl.plugin_name == plugin_name]
        return impls

    def _invoke(self, hook_name: str, impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> tuple[Any, Exception | None]:
        """Call one implementation in isolation, traced when tracing is on: ``(its answer, what it raised)``.

        Every hook call of the kernel goes through here, so ``GUARDCHAIN_TRACE_PLUGINS=1`` logs each one.
        """
        args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        if self.settings.trace:
            _log.info("hook.call", hook=hook_name, plugin=impl.plugin_name)
        started = time.perf_counter()
        try:
            answer = impl.function(**args)
        except Exception as exc:
            self._trace_result(hook_name, impl, started, error=describe_exception(exc))
            _log.debug("hook.failed", hook=hook_name, plugin=impl.plugin_name, traceback=traceback_text(exc))
            return None, exc
        self._trace_result(hook_name, impl, started)
        return answer, None

    def _call_impl(self, hook_name: str, impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Exception | None:
        """Call one implementation in isolation; return what it raised, if anything."""
        return self._invoke(hook_name, impl, kwargs)[1]

    def _trace_result(self, hook: str, impl: pluggy.HookImpl, started: float, error: str | None = None) -> None:
        if self.settings.trace:
            ms = round((time.perf_counter() - started) * 1000.0, 3)
            _log.info("hook.result", hook=hook, plugin=impl.plugin_name, duration_ms=ms, error=error)

    def call_observers(self, hook_name: str, **kwargs: Any) -> list[Problem]:
        """Call every implementation of an observer hook, each in isolation.

        :returns: one ``GC-HOOK-FAILED`` problem per implementation that raised (the others still ran).
        """
        problems = []
        for impl in self._impls_of(hook_name):
            failure = self._call_impl(hook_name, impl, kwargs)
            if failure is not None:
                problems.append(
                    Problem(
                        ErrorCode.HOOK_FAILED,
                        f"{hook_name} of plugin {impl.plugin_name!r} raised: {describe_exception(failure)}",
                        details={"plugin": impl.plugin_name, "hook": hook_name},
                    )
                )
        return problems

    def resolve_adapter(
        self, model_ref: str, hints: Mapping[str, Any] | None = None
    ) -> tuple[str | None, list[Problem]]:
        """Ask ``guardchain_resolve_adapter`` implementations in order; the first non-None answer wins.

        An implementation may also *refuse* a reference it recognises but that cannot be used as it stands (a hub
        id while the network is off, a checkpoint whose ``config.json`` is broken) by raising a
        :class:`GuardchainError`: its problems are returned as they are (their own codes, with
        ``details["plugin"]`` and ``details["refused"] = True``) and the other implementations are still asked.

        :returns: the adapter name (or ``None``) and the problems: refusals, and ``GC-HOOK-FAILED`` for each
            implementation that raised anything else.
        """
        problems: list[Problem] = []
        frozen_hints = dict(hints or {})
        for impl in self._impls_of("guardchain_resolve_adapter"):
            answer, failure = self._invoke(
                "guardchain_resolve_adapter", impl, {"model_ref": model_ref, "hints": dict(frozen_hints)}
            )
            if isinstance(failure, GuardchainError):
                problems.extend(
                    Problem(
                        p.code,
                        p.message,
                        p.path,
                        p.expected,
                        p.hint,
                        {**p.details, "plugin": impl.plugin_name, "refused": True},
                    )
                    for p in failure.problems
                )
                continue
            if failure is not None:
                problems.append(
                    Problem(
                        ErrorCode.HOOK_FAILED,
                        f"guardchain_resolve_adapter of plugin {impl.plugin_name!r} raised: "
                        f"{describe_exception(failure)}",
                        details={"plugin": impl.plugin_name},
                    )
                )
                continue
            if answer is not None:
                return str(answer), problems
        return None, problems

    def render_result(
        self,
        kind: str,
        name: str,
        plugin: str | None,
        distribution: str | None,
        result: Mapping[str, Any],
        artifacts: Mapping[str, Path] | None = None,
    ) -> tuple[Any, list[Problem]]:
        """Ask ``guardchain_render_result``: the capability's own plugin first, then every other, until one answers.

        :param artifacts: the run's files by name (see the hookspec); each implementation gets its own copy.
        :returns: the :class:`~guardchain.core.views.ResultView` (or ``None`` when nobody renders it) and a
            ``GC-HOOK-FAILED`` problem per implementation that raised or answered something else.
        """
        from guardchain.core.views import ResultView  # pydantic loads only when a report is drawn

        hook = "guardchain_render_result"
        impls = self._impls_of(hook)
        impls = [i for i in impls if i.plugin_name == plugin] + [i for i in impls if i.plugin_name != plugin]
        problems: list[Problem] = []
        files = dict(artifacts or {})
        for impl in impls:
            kwargs = {
                "kind": kind,
                "name": name,
                "distribution": distribution,
                "result": dict(result),
                "artifacts": dict(files),
            }
            answer, failure = self._invoke(hook, impl, kwargs)
            if failure is None and answer is not None and not isinstance(answer, ResultView):
                failure = TypeError(f"returned {type(answer).__name__}, not a ResultView")
            if failure is not None:
                problems.append(
                    Problem(
                        ErrorCode.HOOK_FAILED,
                        f"{hook} of plugin {impl.plugin_name!r} failed: {describe_exception(failure)}",
                        details={"plugin": impl.plugin_name, "hook": hook},
                    )
                )
                continue
            if answer is not None:
                return answer, problems
        return None, problems

    def register_commands(self, make_group: Callable[[], Any]) -> list[tuple[str, Any, list[Problem]]]:
        """Call each ``guardchain_register_commands`` implementation with a fresh staging group.

        :param make_group: returns a new empty ``click.Group``.
        :returns: ``(plugin name, staging group, problems)`` per implementation, in call order.
        """
        out = []
        for impl in self._impls_of("guardchain_register_commands"):
            group = make_group()
            failure = self._call_impl("guardchain_register_commands", impl, {"cli": group})
            problems = []
            if failure is not None:
                problem = Problem(
                    ErrorCode.HOOK_FAILED,
                    f"guardchain_register_commands of plugin {impl.plugin_name!r} raised: "
                    f"{describe_exception(failure)}",
                )
                problems.append(problem)
                record = self._plugins.get(impl.plugin_name)
                if record is not None:
                    record.fail(PluginStatus.ERROR, problem)
                group = make_group()  # a raising hook adds no command, even those it added before raising
            out.append((impl.plugin_name, group, problems))
        return out

    def record_problem(self, plugin_name: str, status: PluginStatus, problem: Problem) -> None:
        """Attach a problem found outside loading (e.g. a CLI command clash) to a plugin's record."""
        record = self._plugins.get(plugin_name)
        if record is not None:
            record.fail(status, problem)

    # -- queries ----------------------------------------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginRecord]:
        """Every plugin seen, in load order (including blocked and broken ones)."""
        return list(self._plugins.values())

    def plugin(self, name: str) -> PluginRecord | None:
        """The record of plugin ``name``, or ``None``."""
        return self._plugins.get(name)

    def specs(self, kind: CapabilityKind | None = None) -> list[CapabilitySpec]:
        """Every registered capability spec (conflicting ones included), sorted by kind then name."""
        out = [s for (k, _), specs in self._specs.items() if kind is None or k == kind for s in specs]
        return sorted(out, key=lambda s: (str(s.kind), s.name, s.qualified_name))

    def names(self, kind: CapabilityKind) -> list[str]:
        """Registered names of one kind (each once, sorted)."""
        return sorted({name for (k, name), specs in self._specs.items() if k == kind and specs})

    def get_spec(self, kind: CapabilityKind, name: str) -> CapabilitySpec:
        """Find a capability by bare name or ``distribution:name``.

        :raises GuardchainError: ``GC-PLUGIN-UNKNOWN`` (with suggestions and the plugins that failed to load,
            which may be the ones that provide it) or ``GC-PLUGIN-CONFLICT`` for an ambiguous bare name.
        """
        if ":" in name:
            qualifier, _, bare = name.rpartition(":")
            matches = [s for s in self._specs.get((kind, bare), []) if qualifier in {s.distribution, s.plugin}]
            if len(matches) > 1:  # one distribution, several entry points: the plugin name decides
                matches = [s for s in matches if s.plugin == qualifier] or matches[:0]
            if len(matches) == 1:
                return matches[0]
        else:
            candidates = self._specs.get((kind, name), [])
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise GuardchainError.single(
                    ErrorCode.PLUGIN_CONFLICT,
                    f"{kind} {name!r} is ambiguous: registered by "
                    + ", ".join(s.distribution or s.plugin for s in candidates),
                    expected="one of " + ", ".join(repr(s.qualified_name) for s in candidates),
                    hint=f"name it as distribution:name (e.g. {candidates[0].qualified_name!r}) in the chain file or "
                    f"preset, or block one plugin with --disable-plugin NAME",
                )
        raise GuardchainError(self.unknown_problem(kind, name))

    def unknown_problem(self, kind: CapabilityKind, name: str, path: str = "") -> Problem:
        """The ``GC-PLUGIN-UNKNOWN`` problem for a name no plugin registered, with suggestions and causes."""
        known = self.names(kind)
        close = difflib.get_close_matches(name.rpartition(":")[2], known, n=1)
        failed = [p for p in self._plugins.values() if p.status in _LOAD_FAILURES]
        hint_parts = []
        if close:
            hint_parts.append(f"did you mean {close[0]!r}?")
        if failed:
            hint_parts.append(
                "plugins that failed to load may provide it: "
                + "; ".join(f"{p.name} ({p.problems[0].code}: {p.problems[0].message})" for p in failed)
            )
        qualifier = name.rpartition(":")[0]
        code = ErrorCode.PLUGIN_UNKNOWN
        details: dict[str, Any] = {}
        for record in failed:
            if qualifier and qualifier in {record.name, record.distribution}:
                code = ErrorCode.PLUGIN_UNAVAILABLE
                details["cause"] = record.problems[0].to_dict()
        return Problem(
            code,
            f"no {kind} named {name!r} is available",
            path=path,
            expected="one of: " + (", ".join(known) if known else f"(no {kind.plural} are registered)"),
            hint=" ".join(hint_parts),
            details=details,
        )

    def validate_config(self, spec: CapabilitySpec, raw: Mapping[str, Any] | BaseModel, *, path: str) -> BaseModel:
        """Validate ``raw`` against the spec's config model.

        :raises GuardchainError: one problem per validation error, each with its path under ``path``.
        """
        model = spec.config_model  # may raise GC-PLUGIN-UNAVAILABLE / GC-SPEC-INVALID for a lazy reference
        if isinstance(raw, model):
            return raw
        from pydantic import (
            ValidationError,  # pydantic loads only when a config is validated (listing plugins never does)
        )

        try:
            return model.model_validate(dict(raw) if isinstance(raw, Mapping) else raw)
        except ValidationError as exc:
            raise GuardchainError(problems_from_validation_error(exc, prefix=path, model=model)) from exc

    def create(
        self, kind: CapabilityKind, name: str, config: Mapping[str, Any] | BaseModel | None = None, *, path: str = ""
    ) -> CreatedCapability:
        """Resolve, configure, instantiate and check a capability.

        :param kind: its kind.
        :param name: bare or ``distribution:name``.
        :param config: a mapping (validated here) or an instance of the spec's config model; ``None`` = defaults.
        :param path: where the config sits in a chain file, for error paths (``steps[2].config``).
        :raises GuardchainError: ``GC-PLUGIN-UNKNOWN``, ``GC-PLUGIN-CONFLICT``, ``GC-PLUGIN-UNAVAILABLE`` (with
            the original cause), config problems, or ``GC-CAPABILITY-INVALID``.
        """
        spec = self.get_spec(kind, name)
        validated = self.validate_config(spec, config if config is not None else {}, path=path)
        factory = spec.load_factory()
        try:
            instance = factory(validated)
        except GuardchainError:
            raise
        except Exception as exc:
            raise GuardchainError.single(
                ErrorCode.PLUGIN_UNAVAILABLE,
                f"{kind} {spec.name!r} ({spec.qualified_name}) failed to initialise: {describe_exception(exc)}",
                path=path,
                cause=exc,
            ) from exc
        from guardchain.core.capabilities import (
            validate_capability,  # the protocols import pydantic results: listing plugins never needs them
        )

        problems = validate_capability(kind, instance, label=f"{kind} {spec.name!r} ({spec.qualified_name})")
        if problems:
            raise GuardchainError(problems)
        return CreatedCapability(spec=spec, config=validated, instance=instance)

    def check_loadable(self, spec: CapabilitySpec) -> list[Problem]:
        """Import a spec's config model and factory and check them (``plugins check --load``)."""
        try:
            _ = spec.config_model
            factory = spec.load_factory()
        except GuardchainError as exc:
            return exc.problems
        import inspect  # only when a spec is loaded

        from guardchain.core.capabilities import (
            validate_capability,  # the protocols import pydantic results: listing plugins never needs them
        )

        if inspect.isclass(factory):
            return validate_capability(spec.kind, factory, label=f"{spec.kind} {spec.name!r}")
        return []


_LOAD_FAILURES = {PluginStatus.ERROR, PluginStatus.INCOMPATIBLE, PluginStatus.INVALID}


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("guardchain_")]


def _dist_name(ep: EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def heavy_import_problem(plugin: str, entry_point: str, modules: list[str]) -> Problem:
    """The ``GC-PLUGIN-HEAVY-IMPORT`` warning for a plugin whose loading imported ``modules``."""
    return Problem(
        ErrorCode.PLUGIN_HEAVY_IMPORT,
        f"loading plugin {plugin!r} ({entry_point}) imported {', '.join(modules)}, which slows down every "
        "guardchain command",
        hint="import heavy modules inside the capability's implementation, and register factories and config "
        "models as 'module:attr' strings",
        details={"plugin": plugin, "modules": list(modules)},
    )
