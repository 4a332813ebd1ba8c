"""Contract test classes: subclass one per capability in your plugin's tests.

Each class needs ``name`` (the registered capability name) and, for the behavioural tests, the fixtures its
docstring lists. The default ``registry`` fixture discovers installed entry points; override it to build one
another way. Tests are plain pytest methods, so ``-k`` and markers work as usual.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from guardchain.core.capabilities import validate_capability
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.handles import ModelHandle, ModelStructure, SiteRef, WeightFamily
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import (
    API_ATTRIBUTE,
    ENTRY_POINT_GROUP,
    SUPPORTED_PLUGIN_APIS,
    PluginStatus,
    Registry,
    RegistrySettings,
)
from guardchain.core.results import EditPlan, EditReport, GuardReport, GuardStatus, MetricResult
from guardchain.core.specs import CapabilitySpec

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CapabilityContract:
    """What every capability must satisfy, whatever its kind.

    Class attributes: ``kind`` (set by the kind's contract) and ``name`` (set by you).
    Fixtures you may override: ``registry``, ``config`` (a mapping or config-model instance; default ``{}``).
    """

    kind: ClassVar[CapabilityKind]
    name: ClassVar[str]
    #: Set to True only if your factory must be a callable rather than a lazy ``"module:attr"`` string.
    allow_eager_factory: ClassVar[bool] = False

    @pytest.fixture
    def registry(self) -> Registry:
        """Every installed plugin, ignoring allow/block variables."""
        return Registry.discover(RegistrySettings())

    @pytest.fixture
    def spec(self, registry: Registry) -> CapabilitySpec:
        """The capability's registered spec."""
        return registry.get_spec(self.kind, self.name)

    @pytest.fixture
    def config(self) -> Mapping[str, Any] | BaseModel:
        """The configuration the behavioural tests use."""
        return {}

    @pytest.fixture
    def capability(self, registry: Registry, config: Mapping[str, Any] | BaseModel) -> Any:
        """A fresh instance, created through the registry as a chain would create it."""
        return registry.create(self.kind, self.name, config).instance

    @pytest.fixture
    def context(self, tmp_path: Any, registry: Registry) -> RunContext:
        """A run context (seed 0) writing under a temporary directory."""
        return RunContext(run_id="contract-test", seed=0, out_dir=tmp_path / "run", registry=registry)

    def test_registered_by_a_healthy_plugin(self, registry: Registry, spec: CapabilitySpec) -> None:
        record = registry.plugin(spec.plugin)
        assert record is not None
        assert record.status == PluginStatus.OK, record.problems
        assert spec.summary.strip() and "\n" not in spec.summary

    def test_factory_is_lazy(self, spec: CapabilitySpec) -> None:
        if self.allow_eager_factory:
            pytest.skip("this capability opted out of a lazy factory")
        assert isinstance(spec.factory, str), "register the factory as 'module:attr' so listing imports nothing"

    def test_config_model_rejects_unknown_keys(self, registry: Registry, spec: CapabilitySpec) -> None:
        with pytest.raises(GuardchainError) as caught:
            registry.validate_config(spec, {"__not_a_real_key__": 1}, path="config")
        assert ErrorCode.CONFIG_UNKNOWN_KEY in {p.code for p in caught.value.problems}

    def test_config_round_trips_through_json(
        self, registry: Registry, spec: CapabilitySpec, config: Mapping[str, Any] | BaseModel
    ) -> None:
        validated = registry.validate_config(spec, config, path="config")
        again = spec.config_model.model_validate_json(validated.model_dump_json())
        assert again == validated

    def test_config_has_a_json_schema(self, spec: CapabilitySpec) -> None:
        schema = spec.config_model.model_json_schema()
        assert schema.get("type") == "object"
        json.dumps(schema)

    def test_satisfies_its_protocol(self, capability: Any) -> None:
        assert validate_capability(self.kind, capability, label=self.name) == []


class AdapterContract(CapabilityContract):
    """Adapters. Provide ``model_ref`` (a loadable reference), ``valid_site`` (a site string your adapter
    resolves), and implement ``perturb(self, handle)`` to change at least one weight in place."""

    kind = CapabilityKind.ADAPTER
    valid_site: ClassVar[str]

    @pytest.fixture
    def model_ref(self) -> str:
        raise NotImplementedError("AdapterContract subclasses provide a model_ref fixture")

    def perturb(self, handle: ModelHandle) -> None:
        raise NotImplementedError("AdapterContract subclasses implement perturb(handle)")

    @pytest.fixture
    def handle(self, capability: Any, model_ref: str, context: RunContext) -> ModelHandle:
        handle: ModelHandle = capability.load(model_ref, context)
        return handle

    def test_load_returns_a_handle(self, handle: ModelHandle, model_ref: str, spec: CapabilitySpec) -> None:
        assert isinstance(handle, ModelHandle)
        assert handle.ref == model_ref
        assert handle.adapter in {spec.name, spec.qualified_name}

    def test_describe_lists_blocks_and_weights(self, capability: Any, handle: ModelHandle) -> None:
        structure = capability.describe(handle)
        assert isinstance(structure, ModelStructure)
        assert structure.blocks, "a transformer has at least one block"
        names = {w.name for w in structure.weights}
        assert len(names) == len(structure.weights), "weight names are unique"
        for weight in structure.weights:
            assert isinstance(weight.family, WeightFamily)
            assert all(isinstance(d, int) and d > 0 for d in weight.shape)
        for group in structure.tied:
            assert set(group) <= names | {g for g in group}, "tied groups name parameters"

    def test_weights_digest_is_stable(self, capability: Any, handle: ModelHandle) -> None:
        first = capability.weights_digest(handle)
        assert _HEX64.match(first)
        assert capability.weights_digest(handle) == first

    def test_snapshot_restore_is_bit_identical(self, capability: Any, handle: ModelHandle) -> None:
        before = capability.weights_digest(handle)
        snapshot = capability.snapshot(handle)
        self.perturb(handle)
        assert capability.weights_digest(handle) != before, "perturb() must change a weight"
        capability.restore(handle, snapshot)
        assert capability.weights_digest(handle) == before

    def test_resolves_a_valid_site(self, capability: Any, handle: ModelHandle) -> None:
        sites = capability.resolve_sites(handle, self.valid_site)
        assert sites and all(isinstance(s, SiteRef) for s in sites)

    def test_rejects_an_unknown_site(self, capability: Any, handle: ModelHandle) -> None:
        with pytest.raises(Exception, match=r"(?i)site"):
            capability.resolve_sites(handle, "no_such_thing[12345].nowhere")


class EditContract(CapabilityContract):
    """Edits. Provide ``handle`` (a loaded model) and ``structure`` (its adapter's ``describe``)."""

    kind = CapabilityKind.EDIT

    def test_plan_targets_existing_weights(self, capability: Any, handle: ModelHandle, structure: Any) -> None:
        plan = capability.plan(handle, structure)
        assert isinstance(plan, EditPlan)
        assert plan.edit == self.name
        assert set(plan.targets) <= {w.name for w in structure.weights}

    def test_apply_reports_within_the_plan(self, capability: Any, handle: ModelHandle, structure: Any) -> None:
        plan = capability.plan(handle, structure)
        report = capability.apply(handle, plan)
        assert isinstance(report, EditReport)
        assert set(report.modules_changed) <= set(plan.targets)
        assert set(report.per_module) <= set(report.modules_changed)
        assert report.parameters_changed >= 0


class GuardContract(CapabilityContract):
    """Guards. Provide ``baseline``, a loaded model; the contract runs the lifecycle on a null edit (the subject is
    the unchanged baseline), where every guard must pass."""

    kind = CapabilityKind.GUARD

    def _lifecycle(self, guard: Any, baseline: ModelHandle, context: RunContext) -> GuardReport:
        guard.prepare(baseline, context)
        guard.after_edit(baseline, context)
        report: GuardReport = guard.finalize(context)
        return report

    def test_null_edit_passes(self, capability: Any, baseline: ModelHandle, context: RunContext) -> None:
        report = self._lifecycle(capability, baseline, context)
        assert isinstance(report, GuardReport)
        assert report.guard == self.name
        assert report.status == GuardStatus.PASS, report.findings

    def test_report_is_deterministic_and_serializable(
        self, registry: Registry, config: Any, baseline: ModelHandle, context: RunContext
    ) -> None:
        first = self._lifecycle(registry.create(self.kind, self.name, config).instance, baseline, context)
        second = self._lifecycle(registry.create(self.kind, self.name, config).instance, baseline, context)
        assert first.model_dump(mode="json") == second.model_dump(mode="json")
        json.dumps(first.model_dump(mode="json"))


class MetricContract(CapabilityContract):
    """Metrics. Provide ``handle`` and ``data`` (what the chain's dataset would load)."""

    kind = CapabilityKind.METRIC

    def test_returns_a_paired_result(self, capability: Any, handle: ModelHandle, data: Any, context: Any) -> None:
        result = capability.compute(handle, data, context)
        assert isinstance(result, MetricResult)
        assert result.metric == self.name
        assert math.isfinite(result.value)
        assert len(result.per_unit) == len(result.unit_ids) > 0

    def test_is_deterministic(self, capability: Any, handle: ModelHandle, data: Any, context: Any) -> None:
        assert capability.compute(handle, data, context) == capability.compute(handle, data, context)


class InterventionContract(CapabilityContract):
    """Interventions. Provide ``handle`` and ``sites`` (site strings valid for it)."""

    kind = CapabilityKind.INTERVENTION

    def test_attach_returns_something_removable(
        self, capability: Any, handle: ModelHandle, sites: Any, context: Any
    ) -> None:
        attached = capability.attach(handle, sites, context)
        assert callable(getattr(attached, "remove", None))
        attached.remove()
        attached.remove()  # idempotent


class DatasetContract(CapabilityContract):
    """Datasets: no extra fixtures needed."""

    kind = CapabilityKind.DATASET

    def test_fingerprint_is_stable(self, registry: Registry, config: Any, context: RunContext) -> None:
        digests = []
        for _ in range(2):
            dataset = registry.create(self.kind, self.name, config).instance
            assert dataset.load(context) is not None
            digests.append(dataset.fingerprint())
        assert _HEX64.match(digests[0])
        assert digests[0] == digests[1]


class PluginContract:
    """A plugin distribution as a whole. Set ``entry_point`` (the entry-point name in ``guardchain.plugins``)."""

    entry_point: ClassVar[str]
    #: modules a registration module must not import at module level
    forbidden_imports: ClassVar[tuple[str, ...]] = ("torch", "transformers")

    def _entry_point(self) -> Any:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == self.entry_point]
        assert found, f"no entry point {self.entry_point!r} in group {ENTRY_POINT_GROUP!r}"
        return found[0]

    def test_declares_a_supported_api_version(self) -> None:
        module = self._entry_point().load()
        assert getattr(module, API_ATTRIBUTE, None) in SUPPORTED_PLUGIN_APIS

    def test_loads_ok_and_registers_capabilities(self) -> None:
        registry = Registry.discover(RegistrySettings())
        record = registry.plugin(self.entry_point)
        assert record is not None and record.status == PluginStatus.OK, record and record.problems
        assert record.provides, "a plugin registers at least one capability"

    def test_every_capability_imports_and_conforms(self) -> None:
        registry = Registry.discover(RegistrySettings())
        for spec in registry.specs():
            if spec.plugin == self.entry_point:
                assert registry.check_loadable(spec) == [], spec.name

    def test_registration_imports_nothing_heavy(self) -> None:
        ep = self._entry_point()
        code = textwrap.dedent(
            f"""
            import importlib, sys
            from guardchain.core.registry import Registry, RegistrySettings
            Registry.discover(RegistrySettings(allow=frozenset({{{self.entry_point!r}}})))
            heavy = sorted(m for m in {self.forbidden_imports!r} if m in sys.modules)
            print(",".join(heavy))
            """
        )
        # The child sees exactly the import path this test sees (including test-time additions).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == "", f"loading {ep.value} imported {out.stdout.strip()}"
