"""Chain runner end to end on the fake capabilities of tests/fixtures/dists/gc-fakes (in-process)."""

from __future__ import annotations

import json
import types

import pytest

from guardchain.core import hookimpl
from guardchain.core.config import validate_chain
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner


def chain(steps, **extra):
    raw = {
        "name": "t",
        "seed": 7,
        "model": {"ref": "fake:2"},
        "data": {"dataset": "fake_text", "config": {"n_windows": 5, "seq_len": 6}},
        "steps": steps,
    }
    raw.update(extra)
    return raw


GUARDED_EDIT = [
    {"guard": "fake_norm", "config": {"max_ratio": 1.5}},
    {"edit": "fake_scale", "config": {"factor": 1.2}},
    {"metric": "fake_score"},
]


@pytest.fixture
def registry(fakes_module) -> Registry:
    return Registry.from_plugins({"fakes": fakes_module})


def run(registry, raw, tmp_path, **kwargs):
    validated = validate_chain(raw, registry)
    return ChainRunner(registry).run(validated, out_dir=tmp_path / "run", **kwargs)


def test_a_guarded_edit_runs_every_lifecycle_method_and_writes_the_record(registry, tmp_path):
    record = run(registry, chain(GUARDED_EDIT), tmp_path)
    assert record.status == "ok", record.problems
    assert [s.kind for s in record.steps] == ["guard", "edit", "metric"]
    edit = record.steps[1]
    assert not edit.rolled_back
    guard_report = edit.result["guards"][0]
    assert guard_report["status"] == "pass"
    assert guard_report["details"]["calls"] == ["prepare", "after_edit", "finalize"]
    assert guard_report["measurements"]["max_ratio"] == pytest.approx(1.2)
    assert edit.result["weights_digest_before"] != edit.result["weights_digest_after"]
    assert record.steps[2].result["metric"] == "fake_score"
    assert len(record.steps[2].result["per_unit"]) == 5
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    assert on_disk == record.model_dump(mode="json")
    assert record.model["adapter"]["name"] == "fake_lm"  # chosen by guardchain_resolve_adapter
    assert len(record.data["fingerprint"]) == 64


def test_a_failing_gate_guard_rolls_the_edit_back_bit_for_bit(registry, tmp_path):
    steps = [
        {"metric": "fake_score", "id": "before"},
        {"guard": "fake_norm", "config": {"max_ratio": 1.5}},
        {"edit": "fake_scale", "config": {"factor": 3.0}},
        {"metric": "fake_score", "id": "after"},
    ]
    record = run(registry, chain(steps), tmp_path)
    edit = record.steps[2]
    assert record.status == "rolled_back"
    assert edit.status == "ok" and edit.rolled_back
    assert edit.result["failed_guards"] == ["fake_norm"]
    assert edit.result["weights_digest_after"] == edit.result["weights_digest_before"]
    assert record.steps[3].result["per_unit"] == record.steps[0].result["per_unit"]
    findings = edit.result["guards"][0]["findings"]
    assert {f["code"] for f in findings} == {"FAKE-NORM-GROWTH"}


def test_a_monitor_guard_only_warns(registry, tmp_path):
    steps = [
        {"guard": "fake_norm", "config": {"mode": "monitor"}},
        {"edit": "fake_scale", "config": {"factor": 3.0}},
    ]
    record = run(registry, chain(steps), tmp_path)
    assert not record.steps[1].rolled_back
    assert record.steps[1].result["guards"][0]["status"] == "warn"


def test_an_edit_that_raises_is_rolled_back_and_stops_the_chain(registry, tmp_path):
    steps = [
        {"guard": "fake_norm"},
        {"edit": "fake_scale", "config": {"factor": 2.0, "fail": True}},
        {"metric": "fake_score"},
    ]
    record = run(registry, chain(steps), tmp_path)
    assert record.status == "failed"
    assert len(record.steps) == 2
    assert record.steps[1].status == "failed"
    assert record.steps[1].rolled_back
    assert record.steps[1].error.code == "GC-STEP-FAILED"
    assert "fake edit failed half-way" in record.steps[1].error.message
    assert record.problems[-1].path == "steps[1]"


def test_interventions_are_detached_at_the_end(registry, tmp_path):
    seen = {}

    def guardchain_chain_finished(context):
        seen["hooks"] = list(context.handle.model["hooks"])

    observer = types.ModuleType("observer")
    observer.GUARDCHAIN_PLUGIN_API = 1
    observer.guardchain_chain_finished = hookimpl(guardchain_chain_finished)
    registry.add_plugin("observer", observer)
    steps = [
        {"intervention": "fake_tap", "sites": ["blocks[*].mlp.output"]},
        {"intervention": "fake_tap", "sites": ["blocks[0].attn.input"], "config": {"label": "second"}},
        {"metric": "fake_score"},
    ]
    record = run(registry, chain(steps), tmp_path)
    assert record.status == "ok"
    assert record.steps[0].result == {"attached": ["blocks[*].mlp.output"]}
    assert seen["hooks"] == []


def test_observer_hooks_see_every_step_and_a_raising_observer_is_recorded(registry, tmp_path, monkeypatch):
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("GC_FAKES_EVENTS", str(events))

    def guardchain_step_started(index):
        raise RuntimeError("observer down")

    bad = types.ModuleType("bad_observer")
    bad.GUARDCHAIN_PLUGIN_API = 1
    bad.guardchain_step_started = hookimpl(guardchain_step_started)
    registry.add_plugin("bad_observer", bad)
    record = run(registry, chain(GUARDED_EDIT), tmp_path)
    assert record.status == "ok"
    names = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert names == ["chain_started"] + ["step_started", "step_finished"] * 3 + ["chain_finished"]
    hook_failures = [p for p in record.problems if p.code == "GC-HOOK-FAILED"]
    assert len(hook_failures) == 3
    assert "observer down" in hook_failures[0].message


def test_same_seed_same_record_but_for_ids_and_times(registry, tmp_path):
    volatile = {"run_id", "started_at", "finished_at", "duration_s"}

    def stable(record):
        data = record.model_dump(mode="json", exclude=volatile)
        for step in data["steps"]:
            step.pop("duration_s")
        return data

    first = run(registry, chain(GUARDED_EDIT), tmp_path / "a")
    second = run(registry, chain(GUARDED_EDIT), tmp_path / "b")
    assert first.run_id != second.run_id
    assert stable(first) == stable(second)
    other_seed = run(registry, chain(GUARDED_EDIT, seed=8), tmp_path / "c")
    assert stable(other_seed)["data"]["fingerprint"] != stable(first)["data"]["fingerprint"]


def test_unknown_or_unavailable_capabilities_fail_before_anything_runs(registry, tmp_path):
    steps = [{"metric": "fake_score"}]
    validated = validate_chain(chain(steps), registry)
    # make the metric's implementation unimportable after validation, as a missing extra would
    spec = registry.get_spec(validated.config.steps[0].kind, "fake_score")
    object.__setattr__(spec, "factory", "gc_fakes.no_such_module:Metric")
    with pytest.raises(GuardchainError) as caught:
        ChainRunner(registry).run(validated, out_dir=tmp_path / "run")
    problem = caught.value.problems[0]
    assert problem.code == ErrorCode.PLUGIN_UNAVAILABLE
    assert "gc_fakes.no_such_module" in problem.message
    assert "ModuleNotFoundError" in problem.details["cause"]
    assert not (tmp_path / "run").exists()


def test_order_problems_are_found_before_running(registry):
    no_model = chain([{"metric": "fake_score"}])
    del no_model["model"]
    guard_last = chain([{"edit": "fake_scale"}, {"guard": "fake_norm"}])
    runner = ChainRunner(registry)
    with pytest.raises(GuardchainError) as caught:
        runner.prepare(validate_chain(no_model, registry))
    assert [(p.code, p.path) for p in caught.value.problems] == [(ErrorCode.STEP_ORDER, "model")]
    with pytest.raises(GuardchainError) as caught:
        runner.prepare(validate_chain(guard_last, registry))
    assert [(p.code, p.path) for p in caught.value.problems] == [(ErrorCode.STEP_ORDER, "steps[1]")]


def test_an_unclaimed_model_reference_is_unresolved(registry):
    raw = chain([{"metric": "fake_score"}])
    raw["model"] = {"ref": "somewhere/else"}
    with pytest.raises(GuardchainError) as caught:
        ChainRunner(registry).prepare(validate_chain(raw, registry))
    problem = caught.value.problems[0]
    assert problem.code == ErrorCode.ADAPTER_UNRESOLVED
    assert problem.path == "model.adapter"
    assert "fake_lm" in problem.expected


def test_a_metric_returning_the_wrong_type_fails_its_step(registry, tmp_path, monkeypatch):
    import gc_fakes.model

    monkeypatch.setattr(gc_fakes.model.FakeScore, "compute", lambda self, handle, data, context: {"value": 1})
    record = run(registry, chain([{"metric": "fake_score"}]), tmp_path)
    assert record.status == "failed"
    assert "expected MetricResult" in record.steps[0].error.message


def test_a_failing_model_load_is_recorded(registry, tmp_path):
    raw = chain([{"metric": "fake_score"}])
    raw["model"] = {"ref": "fake:not-a-number", "adapter": "fake_lm"}
    record = run(registry, raw, tmp_path)
    assert record.status == "failed"
    assert record.steps == []
    assert record.problems[0].path == "model"
    assert "not a fake model reference" in record.problems[0].message


def test_a_second_resolver_answers_when_the_first_raises(registry, tmp_path):
    def broken(model_ref):
        raise RuntimeError("resolver down")

    module = types.ModuleType("broken_resolver")
    module.GUARDCHAIN_PLUGIN_API = 1
    module.guardchain_resolve_adapter = hookimpl(tryfirst=True)(broken)
    registry.add_plugin("broken_resolver", module)
    record = run(registry, chain([{"metric": "fake_score"}]), tmp_path)
    assert record.status == "ok"
    assert record.model["adapter"]["name"] == "fake_lm"


def test_a_prepared_chain_is_not_prepared_again(registry, tmp_path, monkeypatch):
    runner = ChainRunner(registry)
    prepared = runner.prepare(validate_chain(chain([{"metric": "fake_score"}]), registry))
    monkeypatch.setattr(runner, "prepare", lambda chain: pytest.fail("prepared twice"))
    assert runner.run(prepared, out_dir=tmp_path / "run").status == "ok"


def test_a_plugin_error_keeps_its_own_code(registry, tmp_path, monkeypatch):
    import gc_fakes.model

    from guardchain.core.errors import GuardchainError as Error

    def refuse(self, handle, data, context):
        raise Error.single("GC-FAKE-REFUSED", "not today", hint="try tomorrow")

    monkeypatch.setattr(gc_fakes.model.FakeScore, "compute", refuse)
    record = run(registry, chain([{"metric": "fake_score"}]), tmp_path)
    error = record.steps[0].error
    assert (error.code, error.path, error.hint) == ("GC-FAKE-REFUSED", "steps[0]", "try tomorrow")
    assert "not today" in error.message and error.details["step_failed"] is True


def test_guards_see_the_edit_plan_only_while_the_edit_is_gated(registry, tmp_path, monkeypatch, fakes_module):
    from gc_fakes.model import FakeNorm

    seen = []
    original = FakeNorm.after_edit

    def spy(self, subject, context):
        seen.append((context.edit_plan, context.data is not None))
        return original(self, subject, context)

    monkeypatch.setattr(FakeNorm, "after_edit", spy)
    record = run(registry, chain(GUARDED_EDIT), tmp_path)
    assert record.status == "ok", record.problems
    [(plan, has_data)] = seen
    assert plan is not None and plan.edit == "fake_scale" and has_data
