"""The conformance kit run against the fake capabilities: every contract class exercised for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    spec = registry.get_spec("guard", "fake_norm")
    tight = registry.create("guard", "fake_norm", {"max_ratio": 1.0001}).instance
    Contract().test_null_edit_passes(tight, handle, context, spec)

    class AlwaysFails:
        def prepare(self, baseline, context):
            pass

        def after_edit(self, subject, context):
            pass

        def finalize(self, context):
            from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus

            finding = Finding(code="X", severity=GuardStatus.FAIL, message="always")
            return GuardReport(guard="fake_norm", mode=GuardMode.GATE, status=GuardStatus.FAIL, findings=(finding,))

    with pytest.raises(AssertionError, match="a null edit gave fail"):
        Contract().test_null_edit_passes(AlwaysFails(), handle, context, spec)


MISFITS_SRC = Path(__file__).resolve().parents[1] / "fixtures" / "dists" / "gc-misfits" / "src"


@pytest.fixture
def misfits_registry(fakes_module, monkeypatch):
    monkeypatch.syspath_prepend(str(MISFITS_SRC))
    import gc_misfits.plugin

    return Registry.from_plugins({"fakes": fakes_module, "misfits": gc_misfits.plugin})


def test_the_guard_contract_rejects_a_report_naming_another_guard(misfits_registry, tmp_path):
    from guardchain.core.context import RunContext

    context = RunContext(run_id="x", seed=0, out_dir=tmp_path, registry=misfits_registry)
    handle = misfits_registry.create("adapter", "fake_lm").instance.load("fake:1", context)
    liar = misfits_registry.create("guard", "misfit_guard", {"report_as": "fake_norm"}).instance

    class Contract(GuardContract):
        name = "misfit_guard"

    spec = misfits_registry.get_spec("guard", "misfit_guard")
    with pytest.raises(AssertionError, match=r"GC-CAPABILITY-RESULT .*whose guard is 'fake_norm', not 'misfit_guard'"):
        Contract().test_null_edit_passes(liar, handle, context, spec)
    honest = misfits_registry.create("guard", "misfit_guard").instance
    Contract().test_null_edit_passes(honest, handle, context, spec)
    assert context.adapter is not None and context.handle is handle  # the lifecycle gets a chain's context


def test_the_capability_contract_rejects_what_the_runtime_rejects(misfits_registry):
    class Contract(GuardContract):
        name = "bad_default_guard"

    spec = misfits_registry.get_spec("guard", "bad_default_guard")
    with pytest.raises(pytest.fail.Exception, match="invalid default: bits"):
        Contract().test_config_model_follows_the_rules(spec)


KIT_WITH_A_MODULE_SCOPED_MODEL = """
import pytest

from guardchain.testing import GuardContract


class TestFakeNormOnAModelLoadedOnce(GuardContract):
    name = "fake_norm"

    @pytest.fixture(scope="module")
    def baseline(self, registry, model_context):
        return registry.create("adapter", "fake_lm").instance.load("fake:2", model_context)
"""


@pytest.mark.dists
def test_a_module_scoped_model_fixture_can_use_the_kits_registry(fixture_sites, tmp_path):
    (tmp_path / "test_kit_user.py").write_text(KIT_WITH_A_MODULE_SCOPED_MODEL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDCHAIN_")}
    env["PYTHONPATH"] = fixture_sites.pythonpath(["gc-fakes"])
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "guardchain.testing.fixtures"]
    done = subprocess.run([*cmd, str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ScopeMismatch" not in done.stdout
    assert " passed" in done.stdout
