"""Contract test classes: subclass one per capability in your plugin's tests.

Each class needs ``name`` (the registered capability name) and, for the behavioural tests, the fixtures its
docstring lists. The default ``registry`` fixture discovers installed entry points once per test module (so a
module-scoped fixture that loads a model may use it, with ``model_context``); override it to build one another
way. Tests are plain pytest methods, so ``-k`` and markers work as usual.

The result checks are :mod:`guardchain.core.conformance`'s: the very rules the runtime enforces on every result,
so a capability that passes the kit is never refused at run time for a rule the kit did not check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from guardchain.core import conformance
from guardchain.core.capabilities import validate_capability
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.handles import ModelHandle, SiteRef, WeightFamily
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import (
    API_ATTRIBUTE,
    ENTRY_POINT_GROUP,
    SUPPORTED_PLUGIN_APIS,
    PluginStatus,
    Registry,
    RegistrySettings,
)
from guardchain.core.results import GuardReport, GuardStatus
from guardchain.core.specs import CapabilitySpec


def _rendered(problems: list[Any]) -> str:
    return "; ".join(p.render() for p in problems)


class CapabilityContract:
    """What every capability must satisfy, whatever its kind.

    Class attributes: ``kind`` (set by the kind's contract) and ``name`` (set by you).
    Fixtures you may override: ``registry``, ``config`` (a mapping or config-model instance; default ``{}``).
    """

    kind: ClassVar[CapabilityKind]
    name: ClassVar[str]
    #: Set to True only if your factory must be a callable rather than a lazy ``"module:attr"`` string.
    allow_eager_factory: ClassVar[bool] = False

    @pytest.fixture(scope="module")
    def registry(self) -> Registry:
        """Every installed plugin, ignoring allow/block variables; one registry per test module."""
        return Registry.discover(RegistrySettings())

    @pytest.fixture(scope="module")
    def model_context(self, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> RunContext:
        """A run context (seed 0) for module-scoped fixtures that load a model once::

        @pytest.fixture(scope="module")
        def baseline(self, registry, model_context):
            return registry.create("adapter", "hf_gpt2").instance.load("path/to/checkpoint", model_context)
        """
        out_dir = tmp_path_factory.mktemp("guardchain-model")
        return RunContext(run_id="contract-model", seed=0, out_dir=out_dir, registry=registry)

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
        assert record is not None, f"no plugin record for {spec.plugin!r}"
        assert record.status == PluginStatus.OK, f"plugin {spec.plugin!r} is {record.status}: " + _rendered(
            record.problems
        )
        assert spec.summary.strip() and "\n" not in spec.summary, "the summary must be one non-empty line"

    def test_factory_is_lazy(self, spec: CapabilitySpec) -> None:
        if self.allow_eager_factory:
            pytest.skip("this capability opted out of a lazy factory")
        assert isinstance(spec.factory, str), "register the factory as 'module:attr' so listing imports nothing"

    def test_config_model_rejects_unknown_keys(self, registry: Registry, spec: CapabilitySpec) -> None:
        with pytest.raises(GuardchainError) as caught:
            registry.validate_config(spec, {"__not_a_real_key__": 1}, path="config")
        codes = {p.code for p in caught.value.problems}
        assert ErrorCode.CONFIG_UNKNOWN_KEY in codes, f"an unknown key gave {codes}, not GC-CONFIG-UNKNOWN-KEY"

    def test_config_model_follows_the_rules(self, spec: CapabilitySpec) -> None:
        """The runtime's own check (:attr:`CapabilitySpec.config_model`): forbids extra keys, valid defaults that
        survive JSON, a JSON Schema."""
        try:
            _ = spec.config_model
        except GuardchainError as exc:
            pytest.fail(f"the runtime refuses the config model of {spec.label}: {_rendered(exc.problems)}")

    def test_config_round_trips_through_json(
        self, registry: Registry, spec: CapabilitySpec, config: Mapping[str, Any] | BaseModel
    ) -> None:
        validated = registry.validate_config(spec, config, path="config")
        again = spec.config_model.model_validate_json(validated.model_dump_json())
        assert again == validated, f"the config changed in a JSON round trip: {validated!r} -> {again!r}"

    def test_config_has_a_json_schema(self, spec: CapabilitySpec) -> None:
        schema = spec.config_model.model_json_schema()
        assert schema.get("type") == "object", f"the config's JSON Schema is not an object: {schema!r}"
        json.dumps(schema)

    def test_satisfies_its_protocol(self, capability: Any) -> None:
        problems = validate_capability(self.kind, capability, label=self.name)
        assert problems == [], _rendered(problems)


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
        problems = conformance.handle_problems(handle, model_ref, spec.accepted_names, spec.label)
        assert problems == [], _rendered(problems)

    def test_describe_lists_blocks_and_weights(
        self, capability: Any, handle: ModelHandle, spec: CapabilitySpec
    ) -> None:
        structure = capability.describe(handle)
        problems = conformance.structure_problems(structure, spec.label)
        assert problems == [], _rendered(problems)
        for weight in structure.weights:
            assert isinstance(weight.family, WeightFamily), f"{weight.name}: family {weight.family!r}"
        names = {w.name for w in structure.weights}
        for group in structure.tied:
            assert set(group) <= names | {g for g in group}, f"tied group {group} names unknown parameters"

    def test_weights_digest_is_stable(self, capability: Any, handle: ModelHandle, spec: CapabilitySpec) -> None:
        first = capability.weights_digest(handle)
        problems = conformance.digest_problems(first, spec.label, "weights_digest")
        assert problems == [], _rendered(problems)
        assert capability.weights_digest(handle) == first, "weights_digest changed without a change to the weights"

    def test_snapshot_restore_is_bit_identical(self, capability: Any, handle: ModelHandle) -> None:
        before = capability.weights_digest(handle)
        snapshot = capability.snapshot(handle)
        self.perturb(handle)
        assert capability.weights_digest(handle) != before, "perturb() must change a weight"
        capability.restore(handle, snapshot)
        assert capability.weights_digest(handle) == before, (
            "restore(snapshot) did not give the weights back bit for bit"
        )

    def test_resolves_a_valid_site(self, capability: Any, handle: ModelHandle) -> None:
        sites = capability.resolve_sites(handle, self.valid_site)
        assert sites, f"{self.valid_site!r} resolved to no site"
        assert all(isinstance(s, SiteRef) for s in sites), f"resolve_sites returned {sites!r}, not SiteRef objects"

    def test_rejects_an_unknown_site(self, capability: Any, handle: ModelHandle) -> None:
        with pytest.raises(Exception, match=r"(?i)site"):
            capability.resolve_sites(handle, "no_such_thing[12345].nowhere")


class EditContract(CapabilityContract):
    """Edits. Provide ``handle`` (a loaded model) and ``structure`` (its adapter's ``describe``)."""

    kind = CapabilityKind.EDIT

    def test_plan_targets_existing_weights(
        self, capability: Any, handle: ModelHandle, structure: Any, spec: CapabilitySpec
    ) -> None:
        plan = capability.plan(handle, structure)
        problems = conformance.edit_plan_problems(plan, spec.accepted_names, structure, spec.label)
        assert problems == [], _rendered(problems)

    def test_apply_reports_within_the_plan(
        self, capability: Any, handle: ModelHandle, structure: Any, spec: CapabilitySpec
    ) -> None:
        plan = capability.plan(handle, structure)
        report = capability.apply(handle, plan)
        problems = conformance.edit_report_problems(report, plan, spec.accepted_names, spec.label)
        assert problems == [], _rendered(problems)
        assert report.parameters_changed >= 0, f"parameters_changed is {report.parameters_changed}"


class GuardContract(CapabilityContract):
    """Guards. Provide ``baseline``, a :class:`ModelHandle` loaded by an installed adapter; the contract runs the
    lifecycle (``prepare``, ``after_edit``, ``finalize``) on a null edit (the subject is the unchanged baseline),
    where every guard must pass. Unless your ``context`` fixture set them, ``context.handle`` is the baseline and
    ``context.adapter`` the adapter named by ``baseline.adapter``, created through the registry, as in a chain.

    Load the model once per module::

        class TestAcmeGuard(GuardContract):
            name = "acme_guard"

            @pytest.fixture(scope="module")
            def baseline(self, registry, model_context):
                adapter = registry.create("adapter", "hf_gpt2").instance
                return adapter.load("path/to/checkpoint", model_context)

    A guard reads the weights through ``baseline.model`` (``subject.model`` in ``after_edit``: the same object,
    changed in place by the edit), and the plan of the edit being gated through ``context.edit_plan``.
    """

    kind = CapabilityKind.GUARD

    def _lifecycle(self, guard: Any, baseline: ModelHandle, context: RunContext) -> GuardReport:
        if context.handle is None:
            context.handle = baseline
        if context.adapter is None and context.registry is not None:
            context.adapter = context.registry.create(CapabilityKind.ADAPTER, baseline.adapter).instance
        guard.prepare(baseline, context)
        guard.after_edit(baseline, context)
        report: GuardReport = guard.finalize(context)
        return report

    def test_null_edit_passes(
        self, capability: Any, baseline: ModelHandle, context: RunContext, spec: CapabilitySpec
    ) -> None:
        report = self._lifecycle(capability, baseline, context)
        problems = conformance.guard_report_problems(report, spec.accepted_names, spec.label)
        assert problems == [], _rendered(problems)
        assert report.status == GuardStatus.PASS, f"a null edit gave {report.status}: {report.findings}"

    def test_report_is_deterministic_and_serializable(
        self, registry: Registry, config: Any, baseline: ModelHandle, context: RunContext
    ) -> None:
        first = self._lifecycle(registry.create(self.kind, self.name, config).instance, baseline, context)
        second = self._lifecycle(registry.create(self.kind, self.name, config).instance, baseline, context)
        assert first.model_dump(mode="json") == second.model_dump(mode="json"), "two null edits gave different reports"
        json.dumps(first.model_dump(mode="json"))


class MetricContract(CapabilityContract):
    """Metrics. Provide ``handle`` and ``data`` (what the chain's dataset would load)."""

    kind = CapabilityKind.METRIC

    def test_returns_a_paired_result(
        self, capability: Any, handle: ModelHandle, data: Any, context: Any, spec: CapabilitySpec
    ) -> None:
        result = capability.compute(handle, data, context)
        problems = conformance.metric_result_problems(result, spec.accepted_names, spec.label)
        assert problems == [], _rendered(problems)
        assert len(result.per_unit) == len(result.unit_ids) > 0, "per_unit must align with at least one unit id"

    def test_is_deterministic(self, capability: Any, handle: ModelHandle, data: Any, context: Any) -> None:
        first = capability.compute(handle, data, context)
        assert capability.compute(handle, data, context) == first, "two computations gave different results"


class InterventionContract(CapabilityContract):
    """Interventions. Provide ``handle`` and ``sites`` (site strings valid for it)."""

    kind = CapabilityKind.INTERVENTION

    def test_attach_returns_something_removable(
        self, capability: Any, handle: ModelHandle, sites: Any, context: Any
    ) -> None:
        attached = capability.attach(handle, sites, context)
        problems = conformance.detachable_problems(attached, self.name)
        assert problems == [], _rendered(problems)
        attached.remove()
        attached.remove()  # idempotent


class DatasetContract(CapabilityContract):
    """Datasets: no extra fixtures needed."""

    kind = CapabilityKind.DATASET

    def test_fingerprint_is_stable(self, registry: Registry, config: Any, context: RunContext) -> None:
        digests = []
        for _ in range(2):
            dataset = registry.create(self.kind, self.name, config).instance
            assert dataset.load(context) is not None, "load() returned None"
            digests.append(dataset.fingerprint())
        problems = conformance.digest_problems(digests[0], self.name, "fingerprint")
        assert problems == [], _rendered(problems)
        assert digests[0] == digests[1], "two loads of the same data gave different fingerprints"


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
        declared = getattr(module, API_ATTRIBUTE, None)
        assert declared in SUPPORTED_PLUGIN_APIS, f"{API_ATTRIBUTE} is {declared!r}, not one of {SUPPORTED_PLUGIN_APIS}"

    def test_loads_ok_and_registers_capabilities(self) -> None:
        registry = Registry.discover(RegistrySettings())
        record = registry.plugin(self.entry_point)
        assert record is not None, f"plugin {self.entry_point!r} was not discovered"
        assert record.status == PluginStatus.OK, f"plugin is {record.status}: {_rendered(record.problems)}"
        assert record.provides, "a plugin registers at least one capability"

    def test_every_capability_imports_and_conforms(self) -> None:
        registry = Registry.discover(RegistrySettings())
        for spec in registry.specs():
            if spec.plugin == self.entry_point:
                problems = registry.check_loadable(spec)
                assert problems == [], _rendered(problems)

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
