"""The registry enforces the conformance kit's rules: config models with valid defaults and a JSON Schema, and
registration modules that import nothing heavy; one plugin's broken config model never hides the others'."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardchain.core import registry as registry_module
from guardchain.core.config_schema import chain_json_schema
from guardchain.core.errors import ErrorCode, GuardchainError, Problem
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import ENTRY_POINT_GROUP, Registry, RegistrySettings
from guardchain.core.specs import CapabilitySpec

MISFITS_SRC = Path(__file__).resolve().parents[1] / "fixtures" / "dists" / "gc-misfits" / "src"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BadDefault(_Config):
    bits: int = Field(default=99, ge=2, le=8)


class RequiredAndValid(_Config):
    name: str
    bits: int = Field(default=4, ge=2, le=8)


class OneOfTwo(_Config):
    name: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one(self) -> OneOfTwo:
        if (self.name is None) == (self.path is None):
            raise ValueError("set name or path")
        return self


class NotJson(_Config):
    when: Any = Field(default=object())


def spec_for(model: type[BaseModel]) -> CapabilitySpec:
    return CapabilitySpec(CapabilityKind.GUARD, "g", "A guard.", model, "x.y:Z", plugin="p")


def test_a_config_model_whose_default_breaks_its_bound_is_refused() -> None:
    with pytest.raises(GuardchainError) as caught:
        _ = spec_for(BadDefault).config_model
    problem = caught.value.problems[0]
    assert problem.code == ErrorCode.SPEC_INVALID
    assert "guard 'g' (plugin p)" in problem.message and "invalid default: bits" in problem.message


@pytest.mark.parametrize("model", [RequiredAndValid, OneOfTwo])
def test_required_fields_and_cross_field_rules_are_not_invalid_defaults(model: type[BaseModel]) -> None:
    assert spec_for(model).config_model is model


def test_defaults_that_json_cannot_carry_are_refused() -> None:
    with pytest.raises(GuardchainError) as caught:
        _ = spec_for(NotJson).config_model
    assert "JSON round trip" in caught.value.problems[0].message


@pytest.fixture
def misfits_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(MISFITS_SRC))
    import gc_misfits.plugin

    return gc_misfits.plugin


def test_creating_and_checking_a_capability_with_a_bad_config_model_fail_alike(misfits_module: Any) -> None:
    registry = Registry.from_plugins({"misfits": misfits_module})
    assert registry.plugin("misfits").ok  # string references: listing stays import-free and the plugin loads
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.GUARD, "bad_default_guard")
    assert caught.value.code == ErrorCode.SPEC_INVALID
    spec = registry.get_spec(CapabilityKind.GUARD, "schemaless_guard")
    assert any("no JSON Schema" in p.message for p in registry.check_loadable(spec))
    assert registry.check_loadable(registry.get_spec(CapabilityKind.GUARD, "misfit_guard")) == []


def test_one_broken_config_model_leaves_the_others_in_the_schema(fakes_module: Any, misfits_module: Any) -> None:
    registry = Registry.from_plugins({"fakes": fakes_module, "misfits": misfits_module})
    problems: list[Problem] = []
    schema = chain_json_schema(registry, problems)
    defs = schema["$defs"]
    assert "guard.misfits:misfit_guard" in defs and "edit.fakes:fake_scale" in defs
    assert not any(key.startswith(("guard.misfits:schemaless", "guard.misfits:bad_default")) for key in defs)
    assert {p.details["plugin"] for p in problems} == {"misfits"}
    assert {str(p.code) for p in problems} == {"GC-SPEC-INVALID"}
    names = {
        v["properties"]["guard"]["enum"][0]
        for v in schema["properties"]["steps"]["items"]["oneOf"]
        if "guard" in v["properties"]
    }
    assert names == {"fake_norm", "misfit_guard"}


def _module(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.py").write_text(text)


def test_a_registration_module_that_imports_a_heavy_module_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heavy = "gc_test_heavy_lib_a"
    _module(tmp_path, heavy, "VALUE = 1\n")
    _module(tmp_path, "gc_test_heavy_plugin_a", f"import {heavy}\nGUARDCHAIN_PLUGIN_API = 1\n")
    _module(tmp_path, "gc_test_later_plugin_a", f"import {heavy}\nGUARDCHAIN_PLUGIN_API = 1\n")
    _module(tmp_path, "gc_test_light_plugin_a", "GUARDCHAIN_PLUGIN_API = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "HEAVY_MODULES", (heavy,))
    for name in (heavy, "gc_test_heavy_plugin_a", "gc_test_later_plugin_a", "gc_test_light_plugin_a"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    eps = [
        EntryPoint("a_heavy", "gc_test_heavy_plugin_a", ENTRY_POINT_GROUP),
        EntryPoint("b_later", "gc_test_later_plugin_a", ENTRY_POINT_GROUP),
        EntryPoint("c_light", "gc_test_light_plugin_a", ENTRY_POINT_GROUP),
    ]
    registry = Registry.discover(RegistrySettings(), entry_points_source=lambda: eps)
    first, later, light = (registry.plugin(n) for n in ("a_heavy", "b_later", "c_light"))
    assert first.ok and [w.code for w in first.warnings] == [ErrorCode.PLUGIN_HEAVY_IMPORT]
    assert heavy in first.warnings[0].message and first.to_dict()["warnings"][0]["code"] == "GC-PLUGIN-HEAVY-IMPORT"
    # Loaded after the heavy module was already imported: this process cannot tell; a fresh one can.
    assert later.ok and later.warnings == [] and later.heavy_unchecked
    assert light.warnings == [] and light.heavy_unchecked


@pytest.mark.dists
def test_a_fresh_interpreter_sees_a_heavy_import_that_this_process_cannot(
    fixture_sites: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")  # imported here first, so the in-process check is blind
    monkeypatch.syspath_prepend(str(fixture_sites.by_dist["heavy-import"]))
    registry = Registry.discover(RegistrySettings(allow=frozenset({"heavy_import"})))
    record = registry.plugin("heavy_import")
    assert record.ok and record.heavy_unchecked and record.warnings == []
    [problem] = registry.probe_heavy_imports(record)
    assert problem.code == "GC-PLUGIN-HEAVY-IMPORT" and "imported torch" in problem.message
