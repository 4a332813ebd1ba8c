"""One test per hook (``test_hook_<name>``), plus the checks that keep specs, docs and tests in step."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import click
import pytest
from pydantic import BaseModel, ConfigDict

from guardchain.core import hookimpl, hookspecs
from guardchain.core.config import validate_chain
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner

REPO = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, fn in vars(hookspecs).items() if name.startswith("guardchain_") and callable(fn))


def test_there_are_hooks_for_every_kind():
    assert {f"guardchain_register_{k.plural}" for k in CapabilityKind} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_documents_its_contract(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    params = list(inspect.signature(fn).parameters)
    for param in params:
        assert f":param {param}:" in doc, f"{name} does not document {param}"
    assert ":returns:" in doc and ":raises:" in doc and ".. versionadded::" in doc
    assert "Called " in doc, f"{name} does not say when it is called"
    opts = fn.guardchain_spec
    if opts.get("firstresult"):
        assert "first non-None" in doc


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_is_in_the_docs_with_its_signature(name):
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    text = (REPO / "docs" / "plugins" / "hooks.md").read_text()
    assert f"## {name}({params})" in text


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_has_a_test_of_its_own(name):
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_hook_{name}\(", sources), f"no test_hook_{name}"


# -- registration hooks -------------------------------------------------------------------------------------------


class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Everything:
    """One object that satisfies every protocol, so each registration hook can be tested alike."""

    def __init__(self, config):
        self.config = config

    def load(self, *args): ...  # Adapter.load(ref, context) and Dataset.load(context)
    def describe(self, handle): ...
    def token_logprobs(self, handle, batch): ...
    def resolve_sites(self, handle, site): ...
    def snapshot(self, handle, names): ...
    def restore(self, handle, snapshot): ...
    def weights_digest(self, handle): ...
    def plan(self, handle, structure): ...
    def apply(self, handle, plan): ...
    def prepare(self, baseline, context): ...
    def after_edit(self, subject, context): ...
    def finalize(self, context): ...
    def compute(self, handle, data, context): ...
    def attach(self, handle, sites, context): ...
    def fingerprint(self): ...


def _check_registration(kind: CapabilityKind) -> None:
    hook_name = f"guardchain_register_{kind.plural}"
    seen = {}

    def impl(registrar):
        seen["kind"] = registrar.kind
        registrar.register(f"my_{kind.value}", summary="s", config_model=Cfg, factory=Everything)

    module = types.ModuleType("p")
    module.GUARDCHAIN_PLUGIN_API = 1
    setattr(module, hook_name, hookimpl(impl))
    registry = Registry.from_plugins({"p": module})
    assert seen["kind"] == kind
    assert registry.plugin("p").provides == {kind.value: [f"my_{kind.value}"]}
    assert registry.names(kind) == [f"my_{kind.value}"]
    other_kinds = [k for k in CapabilityKind if k != kind]
    assert all(registry.names(k) == [] for k in other_kinds)
    assert isinstance(registry.create(kind, f"my_{kind.value}").instance, Everything)


def test_hook_guardchain_register_adapters():
    _check_registration(CapabilityKind.ADAPTER)


def test_hook_guardchain_register_edits():
    _check_registration(CapabilityKind.EDIT)


def test_hook_guardchain_register_guards():
    _check_registration(CapabilityKind.GUARD)


def test_hook_guardchain_register_metrics():
    _check_registration(CapabilityKind.METRIC)


def test_hook_guardchain_register_interventions():
    _check_registration(CapabilityKind.INTERVENTION)


def test_hook_guardchain_register_datasets():
    _check_registration(CapabilityKind.DATASET)


def test_hook_guardchain_register_commands():
    from click.testing import CliRunner

    from guardchain.core.cli import GuardchainGroup

    def impl(cli):
        @cli.command("greet")
        def greet():
            click.echo("hi")

        @cli.command("plugins")  # taken by the kernel: refused
        def clash():
            click.echo("hijacked")

    module = types.ModuleType("p")
    module.GUARDCHAIN_PLUGIN_API = 1
    module.guardchain_register_commands = hookimpl(impl)
    registry = Registry.from_plugins({"p": module})

    from guardchain.core.cli import cli as root
    from guardchain.core.cli.state import AppState

    group = GuardchainGroup(name="guardchain", commands=dict(root.commands), callback=root.callback, params=root.params)
    state = AppState(_registry=registry)
    runner = CliRunner()
    greeted = runner.invoke(group, ["greet"], obj=state)
    assert greeted.stdout.strip() == "hi"
    assert "GC-PLUGIN-CONFLICT" in greeted.stderr and "'plugins'" in greeted.stderr
    assert registry.plugin("p").problems[0].code == "GC-PLUGIN-CONFLICT"
    listed = runner.invoke(group, ["plugins", "--help"], obj=AppState(_registry=registry))
    assert "hijacked" not in listed.output and "List, inspect" in listed.output


# -- decision hook ------------------------------------------------------------------------------------------------


def test_hook_guardchain_resolve_adapter(fakes_module):
    registry = Registry.from_plugins({"fakes": fakes_module})
    assert registry.resolve_adapter("fake:2") == ("fake_lm", [])
    assert registry.resolve_adapter("./elsewhere") == (None, [])

    def prefer(model_ref):
        return "fake_lm_preferred" if model_ref.endswith(":2") else None

    module = types.ModuleType("pref")
    module.GUARDCHAIN_PLUGIN_API = 1
    module.guardchain_resolve_adapter = hookimpl(tryfirst=True)(prefer)
    registry.add_plugin("pref", module)
    assert registry.resolve_adapter("fake:2")[0] == "fake_lm_preferred"
    assert registry.resolve_adapter("fake:3")[0] == "fake_lm"


def _renderer(name, impl, **marks):
    module = types.ModuleType(name)
    module.GUARDCHAIN_PLUGIN_API = 1
    module.guardchain_render_result = hookimpl(**marks)(impl)
    return module


def test_hook_guardchain_render_result(tmp_path):
    from guardchain.core.views import ResultView, Text

    seen = []

    def own(kind, name, distribution, result, artifacts):
        seen.append(("own", kind, name, distribution, sorted(artifacts)))
        artifacts.clear()  # each implementation gets its own copy
        if result.get("draw") == "own":
            return ResultView(title="own view", blocks=[Text(text=str(result["value"]))])
        return None

    def other(name, result, artifacts):
        seen.append(("other", name, sorted(artifacts)))
        if result.get("draw") == "broken":
            raise RuntimeError("renderer bug")
        if result.get("draw") == "wrong":
            return {"title": "not a view"}
        return ResultView(title=f"other's view of {name}") if result.get("draw") != "nobody" else None

    registry = Registry.from_plugins(
        {"owner": _renderer("owner", own, trylast=True), "other": _renderer("other", other, tryfirst=True)}
    )
    files = {"llc/traces.json": tmp_path / "traces.json"}

    # the capability's own plugin is asked first, even against tryfirst
    view, problems = registry.render_result("metric", "score", "owner", "acme", {"draw": "own", "value": 3}, files)
    assert (view.title, view.blocks[0].text, problems) == ("own view", "3", [])
    assert seen == [("own", "metric", "score", "acme", ["llc/traces.json"])]

    # "not mine" passes to the others; the artifacts reach them whole
    seen.clear()
    view, problems = registry.render_result("metric", "score", "owner", "acme", {"draw": "other"}, files)
    assert view.title == "other's view of score" and problems == []
    assert [s[0] for s in seen] == ["own", "other"] and seen[1][2] == ["llc/traces.json"]

    # a raising renderer and one answering something else are recorded; nobody answering gives None
    for draw in ("broken", "wrong"):
        view, problems = registry.render_result("guard", "g", None, None, {"draw": draw})
        assert view is None
        assert [p.code for p in problems] == ["GC-HOOK-FAILED"] and problems[0].details["plugin"] == "other"
    assert registry.render_result("edit", "e", None, None, {"draw": "nobody"}) == (None, [])


# -- observer hooks -----------------------------------------------------------------------------------------------


def _observed_run(fakes_module, tmp_path, hook_name, impl):
    module = types.ModuleType("observer")
    module.GUARDCHAIN_PLUGIN_API = 1
    setattr(module, hook_name, hookimpl(impl))
    registry = Registry.from_plugins({"fakes": fakes_module, "observer": module})
    raw = {
        "name": "observed",
        "model": {"ref": "fake:1"},
        "data": {"dataset": "fake_text"},
        "steps": [{"guard": "fake_norm"}, {"edit": "fake_scale"}, {"metric": "fake_score", "id": "score"}],
    }
    return ChainRunner(registry).run(validate_chain(raw, registry), out_dir=tmp_path / "run")


def test_hook_guardchain_chain_started(fakes_module, tmp_path):
    seen = []
    record = _observed_run(
        fakes_module,
        tmp_path,
        "guardchain_chain_started",
        lambda chain, context: seen.append((chain.name, context.handle, context.seed)),
    )
    assert seen == [("observed", None, 0)]
    assert record.status == "ok"


def test_hook_guardchain_step_started(fakes_module, tmp_path):
    seen = []
    _observed_run(
        fakes_module,
        tmp_path,
        "guardchain_step_started",
        lambda step, index, context: seen.append((index, str(step.kind), sorted(context.results))),
    )
    assert seen == [(0, "guard", []), (1, "edit", ["0-fake_norm"]), (2, "metric", ["0-fake_norm", "1-fake_scale"])]


def test_hook_guardchain_step_finished(fakes_module, tmp_path):
    seen = []
    _observed_run(
        fakes_module,
        tmp_path,
        "guardchain_step_finished",
        lambda step, index, record: seen.append((index, record.id, record.status, record.duration_s >= 0)),
    )
    assert seen == [(0, "0-fake_norm", "ok", True), (1, "1-fake_scale", "ok", True), (2, "score", "ok", True)]


def test_hook_guardchain_chain_finished(fakes_module, tmp_path):
    seen = []

    def impl(chain, context, record):
        seen.append((record.status, len(record.steps), (context.out_dir / "run.json").exists()))
        raise RuntimeError("too late to matter")

    record = _observed_run(fakes_module, tmp_path, "guardchain_chain_finished", impl)
    assert seen == [("ok", 3, False)]  # called before the record is written
    assert record.problems[-1].code == "GC-HOOK-FAILED"
    assert "too late to matter" in (tmp_path / "run" / "run.json").read_text()
