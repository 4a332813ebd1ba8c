"""The conformance kit run against the fake capabilities: every contract class exercised for real."""

from __future__ import annotations

import pytest

from guardchain.core.registry import Registry
from guardchain.testing import (
    AdapterContract,
    DatasetContract,
    EditContract,
    GuardContract,
    InterventionContract,
    MetricContract,
    PluginContract,
)


class FakesFixtures:
    """Registry from the fake plugin module, and a loaded fake model."""

    @pytest.fixture
    def registry(self, fakes_module) -> Registry:
        return Registry.from_plugins({"fakes": fakes_module})

    @pytest.fixture
    def adapter(self, registry):
        return registry.create("adapter", "fake_lm").instance

    @pytest.fixture
    def loaded(self, adapter, context):
        context.adapter = adapter
        context.handle = adapter.load("fake:2", context)
        return context.handle


class TestFakeAdapter(FakesFixtures, AdapterContract):
    name = "fake_lm"
    valid_site = "blocks[*].mlp.output"

    @pytest.fixture
    def model_ref(self):
        return "fake:2"

    def perturb(self, handle):
        handle.model["weights"]["blocks.0.attn.weight"][0, 0] += 1.0


class TestFakeEdit(FakesFixtures, EditContract):
    name = "fake_scale"

    @pytest.fixture
    def config(self):
        return {"factor": 0.5}

    @pytest.fixture
    def handle(self, loaded):
        return loaded

    @pytest.fixture
    def structure(self, adapter, loaded):
        return adapter.describe(loaded)


class TestFakeGuard(FakesFixtures, GuardContract):
    name = "fake_norm"

    @pytest.fixture
    def baseline(self, loaded):
        return loaded


class TestFakeMetric(FakesFixtures, MetricContract):
    name = "fake_score"

    @pytest.fixture
    def handle(self, loaded):
        return loaded

    @pytest.fixture
    def data(self, registry, context):
        return registry.create("dataset", "fake_text").instance.load(context)


class TestFakeIntervention(FakesFixtures, InterventionContract):
    name = "fake_tap"

    @pytest.fixture
    def handle(self, loaded):
        return loaded

    @pytest.fixture
    def sites(self):
        return ["blocks[*].attn.output"]


class TestFakeDataset(FakesFixtures, DatasetContract):
    name = "fake_text"


@pytest.mark.dists
class TestFakesPlugin(PluginContract):
    entry_point = "fakes"

    @pytest.fixture(autouse=True)
    def installed(self, fixture_sites, monkeypatch):
        monkeypatch.syspath_prepend(str(fixture_sites.by_dist["gc-fakes"]))


@pytest.mark.dists
def test_the_plugin_contract_catches_a_heavy_registration_module(fixture_sites, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(fixture_sites.by_dist["heavy-import"]))

    class HeavyContract(PluginContract):
        entry_point = "heavy_import"

    with pytest.raises(AssertionError, match="imported torch"):
        HeavyContract().test_registration_imports_nothing_heavy()


def test_the_guard_contract_catches_a_guard_that_fails_a_null_edit(fakes_module, tmp_path):
    from guardchain.core.context import RunContext

    registry = Registry.from_plugins({"fakes": fakes_module})
    adapter = registry.create("adapter", "fake_lm").instance
    context = RunContext(run_id="x", seed=0, out_dir=tmp_path)
    handle = adapter.load("fake:1", context)

    class Contract(GuardContract):
        name = "fake_norm"

    # a tight threshold still passes a null edit; a guard that fails one must fail the contract
    tight = registry.create("guard", "fake_norm", {"max_ratio": 1.0001}).instance
    Contract().test_null_edit_passes(tight, handle, context)

    class AlwaysFails:
        def prepare(self, baseline, context):
            pass

        def after_edit(self, subject, context):
            pass

        def finalize(self, context):
            from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus

            finding = Finding(code="X", severity=GuardStatus.FAIL, message="always")
            return GuardReport(guard="fake_norm", mode=GuardMode.GATE, status=GuardStatus.FAIL, findings=(finding,))

    with pytest.raises(AssertionError):
        Contract().test_null_edit_passes(AlwaysFails(), handle, context)
