"""The runner enforces what the conformance kit checks, names the capability and plugin that failed, refuses an
unwritable output folder before anything runs, and reports plugins' refusals of a model reference up front."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from guardchain.core import hookimpl
from guardchain.core.config import validate_chain
from guardchain.core.errors import ErrorCode, GuardchainError, Problem
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner, output_dir_problem

MISFITS_SRC = Path(__file__).resolve().parents[1] / "fixtures" / "dists" / "gc-misfits" / "src"


@pytest.fixture
def misfits_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(MISFITS_SRC))
    import gc_misfits.plugin

    return gc_misfits.plugin


@pytest.fixture
def registry(fakes_module, misfits_module) -> Registry:
    return Registry.from_plugins({"fakes": fakes_module, "misfits": misfits_module})


def run(registry: Registry, steps: list[dict], tmp_path: Path, **extra):
    raw = {"name": "t", "model": {"ref": "fake:2"}, "data": {"dataset": "fake_text"}, "steps": steps, **extra}
    return ChainRunner(registry).run(validate_chain(raw, registry), out_dir=tmp_path / "run")


def test_a_guard_raising_in_prepare_names_guard_plugin_and_method(registry, tmp_path, capsys):
    record = run(
        registry, [{"guard": "misfit_guard", "config": {"raise_in": "prepare"}}, {"edit": "fake_scale"}], tmp_path
    )
    assert record.status == "failed"
    [problem] = record.problems
    assert problem.code == "GC-STEP-FAILED" and problem.path == "steps[0]"
    assert problem.message.startswith("guard 'misfit_guard' (plugin misfits) failed in prepare: RuntimeError:")
    assert "\n" not in problem.message and len(problem.message) < 650  # the model in the cause is cut short
    assert len(record.steps) == 1  # the edit never ran
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "embed.weight" not in captured.err


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"report_as": "ppl"}, "whose metric is 'ppl', not 'misfit_metric'"),
        ({"value": float("nan")}, "non-finite value nan"),
    ],
)
def test_a_metric_result_that_breaks_the_contract_fails_the_step(registry, tmp_path, config, expected):
    record = run(registry, [{"metric": "misfit_metric", "config": config}], tmp_path)
    assert record.status == "failed"
    [problem] = record.problems
    assert problem.code == "GC-CAPABILITY-RESULT" and problem.path == "steps[0]"
    assert "metric 'misfit_metric' (plugin misfits)" in problem.message and expected in problem.message


def _plugin(**hooks):
    return types.SimpleNamespace(GUARDCHAIN_PLUGIN_API=1, **{name: hookimpl(fn) for name, fn in hooks.items()})


def test_an_adapter_whose_handle_names_another_adapter_fails_the_load(fakes_module, tmp_path):
    from gc_fakes.model import FakeAdapter

    class Liar(FakeAdapter):
        def load(self, ref, context):
            return super().load(ref, context)  # labelled "fake_lm", registered as "liar"

    def register(registrar):
        registrar.register(
            "liar", summary="Loads as someone else.", config_model=fakes_module.FakeAdapterConfig, factory=Liar
        )

    registry = Registry.from_plugins({"fakes": fakes_module, "liars": _plugin(guardchain_register_adapters=register)})
    raw = {"name": "t", "model": {"ref": "fake:2", "adapter": "liar"}, "steps": [{"metric": "fake_score"}]}
    record = ChainRunner(registry).run(validate_chain(raw, registry), out_dir=tmp_path / "run")
    assert record.status == "failed"
    assert record.problems[0].code == "GC-CAPABILITY-RESULT" and record.problems[0].path == "model"
    assert "whose adapter is 'fake_lm', not 'liar'" in record.problems[0].message


def test_an_unwritable_output_folder_is_refused_before_the_model_loads(registry, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    loads = []
    validated = validate_chain({"name": "t", "model": {"ref": "fake:2"}, "steps": [{"metric": "fake_score"}]}, registry)
    runner = ChainRunner(registry)
    prepared = runner.prepare(validated)
    original = prepared.adapter.instance.load
    prepared.adapter.instance.load = lambda *a: loads.append(a) or original(*a)
    with pytest.raises(GuardchainError) as caught:
        runner.run(prepared, out_dir=blocker / "run")
    assert caught.value.code == ErrorCode.OUTPUT_WRITE
    assert loads == []
    problem = output_dir_problem(blocker / "deeper" / "run", path="output.dir")
    assert problem is not None and problem.path == "output.dir" and "is a file, not a folder" in problem.message
    assert output_dir_problem(tmp_path / "fresh" / "run") is None  # absent folders under a writable one are fine


def _refuser(code: str = "GC-X-OFFLINE", claim: str | None = None):
    def resolve(model_ref):
        if model_ref.startswith("hub/"):
            raise GuardchainError(Problem(code, f"{model_ref!r} needs the network"))
        return claim

    return resolve


def test_a_refusal_from_the_resolve_hook_is_reported_up_front_with_its_own_code(fakes_module, tmp_path):
    refuser = _plugin(guardchain_resolve_adapter=_refuser())
    registry = Registry.from_plugins({"fakes": fakes_module, "refuser": refuser})
    raw = {"name": "t", "model": {"ref": "hub/model"}, "steps": [{"metric": "fake_score"}]}
    with pytest.raises(GuardchainError) as caught:
        ChainRunner(registry).prepare(validate_chain(raw, registry))
    assert [(p.code, p.path) for p in caught.value.problems] == [("GC-X-OFFLINE", "model.ref")]
    assert caught.value.problems[0].details == {"plugin": "refuser", "refused": True}


def test_a_refusal_does_not_stop_another_plugin_from_claiming_the_reference(fakes_module):
    def claim(model_ref):
        return "fake_lm" if model_ref == "hub/model" else None

    # Pluggy asks the last registered first: the refuser answers before the claimer.
    registry = Registry.from_plugins(
        {
            "claimer": _plugin(guardchain_resolve_adapter=claim),
            "fakes": fakes_module,
            "refuser": _plugin(guardchain_resolve_adapter=_refuser()),
        }
    )
    name, problems = registry.resolve_adapter("hub/model", {})
    assert name == "fake_lm"
    assert [p.code for p in problems] == ["GC-X-OFFLINE"]


def test_a_named_adapter_is_checked_against_its_own_plugins_refusal_only(fakes_module, tmp_path):
    def register(registrar):
        registrar.register(
            "hubby",
            summary="Loads hub models.",
            config_model=fakes_module.FakeAdapterConfig,
            factory="gc_fakes.model:FakeAdapter",
        )

    hub_plugin = _plugin(guardchain_register_adapters=register, guardchain_resolve_adapter=_refuser())
    registry = Registry.from_plugins({"fakes": fakes_module, "hubby": hub_plugin})
    own = {"name": "t", "model": {"ref": "hub/model", "adapter": "hubby"}, "steps": [{"metric": "fake_score"}]}
    with pytest.raises(GuardchainError) as caught:
        ChainRunner(registry).prepare(validate_chain(own, registry))
    assert [p.code for p in caught.value.problems] == ["GC-X-OFFLINE"]
    other = {**own, "model": {"ref": "hub/model", "adapter": "fake_lm"}}
    ChainRunner(registry).prepare(validate_chain(other, registry))  # another plugin's adapter: not its business


def test_a_guard_report_naming_another_guard_fails_the_edit_and_rolls_it_back(registry, tmp_path):
    steps = [
        {"guard": "misfit_guard", "config": {"report_as": "fake_norm"}},
        {"edit": "fake_scale", "config": {"factor": 2}},
    ]
    record = run(registry, steps, tmp_path)
    assert record.status == "failed"
    [problem] = record.problems
    assert problem.code == "GC-CAPABILITY-RESULT" and problem.path == "steps[1]"
    assert "guard 'misfit_guard' (plugin misfits) returned a result whose guard is 'fake_norm'" in problem.message
    assert record.steps[1].rolled_back
