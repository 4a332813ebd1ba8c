"""Registry: loading stages, isolation, specs, conflicts, allow/block lists, hook calls (in-process)."""

from __future__ import annotations

import sys
import textwrap
import types
from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel, ConfigDict

from guardchain.core import hookimpl
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import PluginStatus, Registry, RegistrySettings


class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = 1.0


class LooseCfg(BaseModel):
    threshold: float = 1.0


class GoodGuard:
    def __init__(self, config):
        self.config = config

    def prepare(self, baseline, context):
        pass

    def after_edit(self, subject, context):
        pass

    def finalize(self, context):
        raise NotImplementedError


def make_plugin(name: str = "plug", api: object = 1, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    if api is not None:
        module.GUARDCHAIN_PLUGIN_API = api
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def guard_plugin(*names: str, factory=GoodGuard, name: str = "plug") -> types.ModuleType:
    def guardchain_register_guards(registrar):
        for guard_name in names:
            registrar.register(guard_name, summary=f"{guard_name} guard", config_model=Cfg, factory=factory)

    return make_plugin(name, guardchain_register_guards=guardchain_register_guards)


def test_a_good_plugin_registers_its_specs():
    registry = Registry.from_plugins({"plug": guard_plugin("alpha", "beta")})
    record = registry.plugin("plug")
    assert record.status == PluginStatus.OK
    assert record.provides == {"guard": ["alpha", "beta"]}
    assert record.hooks == ["guardchain_register_guards"]
    assert [s.name for s in registry.specs(CapabilityKind.GUARD)] == ["alpha", "beta"]
    assert registry.get_spec(CapabilityKind.GUARD, "alpha").plugin == "plug"


def test_missing_api_version_is_incompatible():
    registry = Registry.from_plugins({"p": make_plugin(api=None)})
    record = registry.plugin("p")
    assert record.status == PluginStatus.INCOMPATIBLE
    assert record.problems[0].code == ErrorCode.PLUGIN_API
    assert "declares no API version" in record.problems[0].message


def test_wrong_api_version_never_calls_hooks():
    def guardchain_register_guards(registrar):
        raise AssertionError("called")

    registry = Registry.from_plugins({"p": make_plugin(api=2, guardchain_register_guards=guardchain_register_guards)})
    assert registry.plugin("p").status == PluginStatus.INCOMPATIBLE
    assert registry.plugin("p").api_version == 2


def test_a_raising_hook_keeps_nothing_of_the_plugin():
    def guardchain_register_guards(registrar):
        registrar.register("kept_if_clean", summary="s", config_model=Cfg, factory=GoodGuard)

    def guardchain_register_metrics(registrar):
        raise RuntimeError("boom")

    plugin = make_plugin(
        guardchain_register_guards=guardchain_register_guards, guardchain_register_metrics=guardchain_register_metrics
    )
    registry = Registry.from_plugins({"p": plugin, "good": guard_plugin("other", name="good")})
    record = registry.plugin("p")
    assert record.status == PluginStatus.ERROR
    assert record.problems[0].code == ErrorCode.PLUGIN_REGISTER
    assert "RuntimeError: boom" in record.problems[0].message
    assert record.provides == {}
    assert registry.names(CapabilityKind.GUARD) == ["other"]
    assert registry.plugin("good").ok


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "Bad-Name"}, "invalid capability name"),
        ({"summary": ""}, "one-line summary"),
        ({"summary": "two\nlines"}, "one-line summary"),
        ({"config_model": LooseCfg}, "extra='forbid'"),
        ({"config_model": dict}, "pydantic BaseModel"),
        ({"factory": "not a ref"}, "malformed factory"),
        ({"factory": 42}, "factory must be callable"),
    ],
)
def test_invalid_specs_are_refused_with_spec_invalid(kwargs, needle):
    base = {"name": "ok_name", "summary": "fine", "config_model": Cfg, "factory": "pkg.mod:Attr"}
    base.update(kwargs)

    def guardchain_register_guards(registrar):
        registrar.register(base.pop("name"), **base)

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    record = registry.plugin("p")
    assert record.status == PluginStatus.ERROR
    assert record.problems[0].code == ErrorCode.SPEC_INVALID
    assert needle in record.problems[0].message
    assert registry.specs() == []


def test_a_class_factory_is_checked_against_the_protocol_at_registration():
    class NotAGuard:
        def prepare(self, baseline):  # missing context parameter
            pass

    registry = Registry.from_plugins({"p": guard_plugin("g", factory=NotAGuard)})
    record = registry.plugin("p")
    assert record.status == PluginStatus.ERROR
    codes = {p.code for p in record.problems}
    assert codes == {ErrorCode.CAPABILITY_INVALID}
    messages = " ".join(p.message for p in record.problems)
    assert "after_edit" in messages and "finalize" in messages and "prepare" in messages


def test_registering_the_same_name_twice_in_one_plugin_is_invalid():
    registry = Registry.from_plugins({"p": guard_plugin("twice", "twice")})
    assert registry.plugin("p").problems[0].code == ErrorCode.SPEC_INVALID
    assert "registered twice" in registry.plugin("p").problems[0].message


def test_an_unknown_hook_makes_the_plugin_invalid_with_a_suggestion():
    def guardchain_register_gaurds(registrar):
        pass

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_gaurds=guardchain_register_gaurds)})
    record = registry.plugin("p")
    assert record.status == PluginStatus.INVALID
    assert record.problems[0].code == ErrorCode.PLUGIN_HOOK
    assert "guardchain_register_guards" in record.problems[0].hint


def test_wrong_hook_arguments_are_invalid():
    def guardchain_register_guards(registrar, surprise):
        pass

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    assert registry.plugin("p").status == PluginStatus.INVALID
    assert registry.plugin("p").problems[0].code == ErrorCode.PLUGIN_HOOK


def test_wrappers_are_refused():
    module = make_plugin()

    @hookimpl(wrapper=True)
    def guardchain_step_started(step):
        return (yield)

    module.guardchain_step_started = guardchain_step_started
    registry = Registry.from_plugins({"p": module})
    assert registry.plugin("p").status == PluginStatus.INVALID
    assert "wrapper" in registry.plugin("p").problems[0].message


def test_conflicting_names_name_both_and_stay_reachable_qualified():
    a = guard_plugin("same", name="a")
    b = guard_plugin("same", name="b")
    registry = Registry(RegistrySettings())
    registry.add_plugin("a", a, distribution="dist-a", version="1")
    registry.add_plugin("b", b, distribution="dist-b", version="2")
    for name in ("a", "b"):
        record = registry.plugin(name)
        assert record.status == PluginStatus.CONFLICT
        assert record.problems[0].code == ErrorCode.PLUGIN_CONFLICT
        assert "dist-a" in record.problems[0].message and "dist-b" in record.problems[0].message
    with pytest.raises(GuardchainError) as caught:
        registry.get_spec(CapabilityKind.GUARD, "same")
    assert caught.value.code == ErrorCode.PLUGIN_CONFLICT
    assert registry.get_spec(CapabilityKind.GUARD, "dist-a:same").distribution == "dist-a"
    assert registry.get_spec(CapabilityKind.GUARD, "dist-b:same").distribution == "dist-b"


def test_same_name_in_different_kinds_is_no_conflict():
    def guardchain_register_metrics(registrar):
        registrar.register("shared", summary="m", config_model=Cfg, factory="x.y:Z")

    registry = Registry.from_plugins(
        {
            "g": guard_plugin("shared", name="g"),
            "m": make_plugin(guardchain_register_metrics=guardchain_register_metrics),
        }
    )
    assert all(p.ok for p in registry.plugins)


def test_unknown_names_suggest_and_point_at_failed_plugins():
    broken = make_plugin(api=None)
    registry = Registry.from_plugins({"g": guard_plugin("spectral", name="g"), "broken": broken})
    with pytest.raises(GuardchainError) as caught:
        registry.get_spec(CapabilityKind.GUARD, "spectrall")
    problem = caught.value.problems[0]
    assert problem.code == ErrorCode.PLUGIN_UNKNOWN
    assert "did you mean 'spectral'?" in problem.hint
    assert "broken" in problem.hint and "GC-PLUGIN-API" in problem.hint
    assert problem.expected == "one of: spectral"


def test_allow_and_block_lists():
    plugins = {"a": guard_plugin("ga", name="a"), "b": guard_plugin("gb", name="b")}
    only_a = Registry.from_plugins(plugins, RegistrySettings(allow=frozenset({"a"})))
    assert only_a.names(CapabilityKind.GUARD) == ["ga"]
    assert only_a.plugin("b").status == PluginStatus.BLOCKED
    assert only_a.plugin("b").problems[0].code == ErrorCode.PLUGIN_BLOCKED
    none = Registry.from_plugins(plugins, RegistrySettings(allow=frozenset()))
    assert none.specs() == []
    blocked = Registry.from_plugins(plugins, RegistrySettings(block=frozenset({"a"})))
    assert blocked.names(CapabilityKind.GUARD) == ["gb"]


def test_settings_from_environment():
    settings = RegistrySettings.from_env(
        {"GUARDCHAIN_PLUGINS": "a, b", "GUARDCHAIN_DISABLE_PLUGINS": "c", "GUARDCHAIN_TRACE_PLUGINS": "1"},
        block=["d"],
    )
    assert settings.allow == {"a", "b"}
    assert settings.block == {"c", "d"}
    assert settings.trace
    assert RegistrySettings.from_env({"GUARDCHAIN_PLUGINS": ""}).allow == frozenset()
    assert RegistrySettings.from_env({}).allow is None


def test_tracing_logs_each_hook_call(capsys):
    from guardchain.core.logs import configure_logging

    configure_logging("json", "info")
    try:
        Registry.from_plugins({"p": guard_plugin("traced")}, RegistrySettings(trace=True))
    finally:
        configure_logging("auto", "warning")
    err = capsys.readouterr().err
    assert '"event": "hook.call"' in err and '"event": "hook.result"' in err
    assert "guardchain_register_guards" in err


def test_create_validates_config_and_instantiates():
    registry = Registry.from_plugins({"p": guard_plugin("g")})
    created = registry.create(CapabilityKind.GUARD, "g", {"threshold": 2.5})
    assert isinstance(created.instance, GoodGuard)
    assert created.config.threshold == 2.5
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "g", {"threshhold": 2.5}, path="steps[0].config")
    problem = caught.value.problems[0]
    assert problem.code == ErrorCode.CONFIG_UNKNOWN_KEY
    assert problem.path == "steps[0].config.threshhold"
    assert "did you mean 'threshold'?" in problem.hint


def test_create_reports_an_unimportable_factory_as_unavailable_with_its_cause():
    def guardchain_register_guards(registrar):
        registrar.register("lazy", summary="s", config_model=Cfg, factory="gc_no_such_module_xyz.impl:Guard")

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    assert registry.plugin("p").ok  # listing never imports the factory
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "lazy")
    assert caught.value.code == ErrorCode.PLUGIN_UNAVAILABLE
    assert isinstance(caught.value.cause, ModuleNotFoundError)
    assert "gc_no_such_module_xyz" in caught.value.problems[0].hint
    assert registry.check_loadable(registry.get_spec(CapabilityKind.GUARD, "lazy"))[0].code == (
        ErrorCode.PLUGIN_UNAVAILABLE
    )


def test_create_checks_the_instance_against_the_protocol():
    def guardchain_register_guards(registrar):
        registrar.register("fn", summary="s", config_model=Cfg, factory=lambda config: object())

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "fn")
    assert caught.value.code == ErrorCode.CAPABILITY_INVALID


def test_a_raising_factory_is_unavailable():
    def explode(config):
        raise ValueError("no GPU here")

    def guardchain_register_guards(registrar):
        registrar.register("fn", summary="s", config_model=Cfg, factory=explode)

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "fn")
    assert caught.value.code == ErrorCode.PLUGIN_UNAVAILABLE
    assert "ValueError: no GPU here" in caught.value.problems[0].message


# -- entry points ------------------------------------------------------------------------------------------------


@pytest.fixture
def ep_modules(tmp_path, monkeypatch):
    """Write importable modules for injected entry points."""
    root = tmp_path / "mods"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def write(name: str, source: str) -> None:
        (root / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)

    return write


def test_entry_point_stages_are_isolated(ep_modules):
    ep_modules(
        "gc_ep_good",
        """
        from pydantic import BaseModel, ConfigDict
        from guardchain.core import hookimpl
        GUARDCHAIN_PLUGIN_API = 1
        class C(BaseModel):
            model_config = ConfigDict(extra="forbid")
        @hookimpl
        def guardchain_register_metrics(registrar):
            registrar.register("m", summary="metric", config_model=C, factory="x.y:Z")
        """,
    )
    ep_modules("gc_ep_missing", "import gc_this_module_does_not_exist\n")
    ep_modules("gc_ep_raises", "raise SystemExit('exit at import')\n")
    ep_modules("gc_ep_attr_error", "import os\nos.no_such_function()\n")
    group = "guardchain.plugins"
    eps = [
        EntryPoint("missing", "gc_ep_missing", group),
        EntryPoint("good", "gc_ep_good", group),
        EntryPoint("raises", "gc_ep_raises", group),
        EntryPoint("noattr", "gc_ep_good:nothing_here", group),
        EntryPoint("malformed", "not a module!", group),
        EntryPoint("attr_error", "gc_ep_attr_error", group),
    ]
    registry = Registry.discover(RegistrySettings(), entry_points_source=lambda: eps)
    status = {p.name: (p.status, p.problems[0].code if p.problems else None) for p in registry.plugins}
    assert status == {
        "attr_error": (PluginStatus.ERROR, ErrorCode.PLUGIN_IMPORT_ERROR),  # raised inside the module
        "good": (PluginStatus.OK, None),
        "malformed": (PluginStatus.ERROR, ErrorCode.PLUGIN_ENTRY_POINT),
        "missing": (PluginStatus.ERROR, ErrorCode.PLUGIN_IMPORT),
        "noattr": (PluginStatus.ERROR, ErrorCode.PLUGIN_ENTRY_POINT),
        "raises": (PluginStatus.ERROR, ErrorCode.PLUGIN_IMPORT_ERROR),
    }
    missing = registry.plugin("missing").problems[0]
    assert missing.details["missing_module"] == "gc_this_module_does_not_exist"
    assert "gc_this_module_does_not_exist" in missing.hint
    assert registry.names(CapabilityKind.METRIC) == ["m"]


def test_duplicate_entry_point_names_are_both_kept(ep_modules):
    ep_modules(
        "gc_ep_twice",
        """
        GUARDCHAIN_PLUGIN_API = 1
        """,
    )
    group = "guardchain.plugins"
    eps = [EntryPoint("same", "gc_ep_twice", group), EntryPoint("same", "gc_ep_twice", group)]
    registry = Registry.discover(RegistrySettings(), entry_points_source=lambda: eps)
    assert len(registry.plugins) == 2
    assert {p.name for p in registry.plugins} == {"same", "memory:same"}


# -- decision and observer hooks ----------------------------------------------------------------------------------


def test_resolve_adapter_first_result_wins_in_pluggy_order_and_survives_a_raise():
    calls = []

    def answer(label, result):
        def guardchain_resolve_adapter(model_ref, hints):
            calls.append(label)
            assert hints == {"x": 1}
            return result

        return guardchain_resolve_adapter

    def raising(model_ref):
        calls.append("raising")
        raise RuntimeError("resolver broke")

    first = make_plugin("first", guardchain_resolve_adapter=answer("first", "adapter_first"))
    second = make_plugin("second", guardchain_resolve_adapter=answer("second", None))
    last = make_plugin("last")
    last.guardchain_resolve_adapter = hookimpl(trylast=True)(answer("last", "fallback"))
    boom = make_plugin("boom", guardchain_resolve_adapter=raising)
    registry = Registry.from_plugins({"first": first, "last": last, "second": second, "boom": boom})
    name, problems = registry.resolve_adapter("some/ref", {"x": 1})
    # last registered runs first: boom (raises, recorded), second (None), first (answers); 'last' is trylast.
    assert calls == ["raising", "second", "first"]
    assert name == "adapter_first"
    assert [p.code for p in problems] == [ErrorCode.HOOK_FAILED]
    assert "resolver broke" in problems[0].message


def test_observers_are_isolated():
    seen = []

    def ok(index):
        seen.append(index)

    def bad(index):
        raise RuntimeError("observer broke")

    registry = Registry.from_plugins(
        {"ok": make_plugin("ok", guardchain_step_started=ok), "bad": make_plugin("bad", guardchain_step_started=bad)}
    )
    problems = registry.call_observers("guardchain_step_started", step=None, index=3, context=None)
    assert seen == [3]
    assert [p.code for p in problems] == [ErrorCode.HOOK_FAILED]
    assert problems[0].details["plugin"] == "bad"


def test_register_commands_gives_each_plugin_its_own_group():
    import click

    def good(cli):
        @cli.command("hello")
        def hello():
            pass

    def bad(cli):
        raise RuntimeError("no commands today")

    registry = Registry.from_plugins(
        {
            "good": make_plugin("good", guardchain_register_commands=good),
            "bad": make_plugin("bad", guardchain_register_commands=bad),
        }
    )
    results = {name: (group, problems) for name, group, problems in registry.register_commands(click.Group)}
    assert list(results["good"][0].commands) == ["hello"]
    assert results["good"][1] == []
    assert results["bad"][1][0].code == ErrorCode.HOOK_FAILED
    assert registry.plugin("bad").status == PluginStatus.ERROR


def test_an_undecorated_hook_function_is_invalid():
    module = make_plugin()

    def guardchain_register_guards(registrar):
        pass

    module.guardchain_register_guards = guardchain_register_guards
    registry = Registry.from_plugins({"p": module})
    assert registry.plugin("p").status == PluginStatus.INVALID
    assert "without @hookimpl" in registry.plugin("p").problems[0].message


def test_hook_parameters_with_defaults_are_invalid():
    def guardchain_step_started(step, index=0):
        pass

    registry = Registry.from_plugins({"p": make_plugin(guardchain_step_started=guardchain_step_started)})
    assert registry.plugin("p").status == PluginStatus.INVALID
    assert "parameters with defaults (index)" in registry.plugin("p").problems[0].message


def test_an_import_error_of_a_name_does_not_blame_an_existing_module(ep_modules):
    ep_modules("gc_ep_badname", "from guardchain.core import no_such_name\n")
    eps = [EntryPoint("badname", "gc_ep_badname", "guardchain.plugins")]
    problem = Registry.discover(RegistrySettings(), entry_points_source=lambda: eps).plugin("badname").problems[0]
    assert problem.code == ErrorCode.PLUGIN_IMPORT
    assert problem.details["missing_module"] == ""
    assert "compatible versions" in problem.hint


def test_three_way_conflicts_give_each_plugin_one_problem_naming_all():
    registry = Registry(RegistrySettings())
    for name in ("a", "b", "c"):
        registry.add_plugin(name, guard_plugin("same", name=name), distribution=f"dist-{name}")
    for name in ("a", "b", "c"):
        problems = registry.plugin(name).problems
        assert len(problems) == 1
        assert all(f"dist-{n}" in problems[0].message for n in "abc")


def test_a_config_model_given_by_reference_is_imported_only_when_needed(ep_modules):
    ep_modules(
        "gc_lazy_config",
        """
        from pydantic import BaseModel, ConfigDict
        class Good(BaseModel):
            model_config = ConfigDict(extra="forbid")
            level: int = 1
        class Loose(BaseModel):
            level: int = 1
        """,
    )

    def guardchain_register_guards(registrar):
        registrar.register("lazy", summary="s", config_model="gc_lazy_config:Good", factory=GoodGuard)
        registrar.register("loose", summary="s", config_model="gc_lazy_config:Loose", factory=GoodGuard)
        registrar.register("absent", summary="s", config_model="gc_lazy_config:Absent", factory=GoodGuard)

    sys.modules.pop("gc_lazy_config", None)
    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    assert registry.plugin("p").ok
    assert "gc_lazy_config" not in sys.modules  # registering imported nothing
    assert registry.create(CapabilityKind.GUARD, "lazy", {"level": 3}).config.level == 3
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "loose")
    assert caught.value.code == ErrorCode.SPEC_INVALID and "extra='forbid'" in str(caught.value)
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "absent")
    assert caught.value.code == ErrorCode.PLUGIN_UNAVAILABLE
    checks = {s.name: [p.code for p in registry.check_loadable(s)] for s in registry.specs()}
    assert checks == {"absent": [ErrorCode.PLUGIN_UNAVAILABLE], "lazy": [], "loose": [ErrorCode.SPEC_INVALID]}


def test_a_malformed_config_model_reference_is_refused_at_registration():
    def guardchain_register_guards(registrar):
        registrar.register("g", summary="s", config_model="no colon here", factory=GoodGuard)

    registry = Registry.from_plugins({"p": make_plugin(guardchain_register_guards=guardchain_register_guards)})
    assert registry.plugin("p").problems[0].code == ErrorCode.SPEC_INVALID
    assert "malformed config model reference" in registry.plugin("p").problems[0].message
