"""Any metric as a gate: the comparisons from their definitions, and LLC gates in a certification and a chain."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from guardchain.certify.certificate import body_digest, leaf_digests
from guardchain.certify.comparison import compare, summarize
from guardchain.certify.metric_gate import MetricGateConfig, build_report, verify_report
from guardchain.certify.pipeline import certify
from guardchain.certify.request import CertifyPreset, CertifyRequest
from guardchain.certify.statistics import BootstrapSettings
from guardchain.certify.verify import verify_certificate
from guardchain.core.config import validate_chain
from guardchain.core.registry import Registry
from guardchain.core.results import MetricResult, MetricVerdict
from guardchain.core.runner import ChainRunner

SETTINGS = BootstrapSettings(n_resamples=1000, seed=0)


def side(per_unit, *, value=0.0, uncertainty=None, verdict=None, ids=None):
    ids = ids or [f"u{i}" for i in range(len(per_unit))]
    return summarize(
        MetricResult(
            metric="m",
            value=value,
            uncertainty=uncertainty,
            unit_ids=tuple(ids),
            per_unit=tuple(per_unit),
            verdict=verdict,
        )
    )


def test_ratio_is_exp_of_the_mean_difference_and_bounds_apply_to_the_interval_ends():
    base = side([1.0, 2.0, 3.0, 4.0])
    subj = side([1.1, 2.1, 3.1, 4.1])
    result = compare("ratio", base, subj, upper=1.2, lower=None, settings=SETTINGS)
    assert math.isclose(result.estimate, math.exp(0.1), rel_tol=1e-12)
    assert result.ci_low == result.ci_high == pytest.approx(math.exp(0.1))  # identical deltas: a point interval
    assert result.passed
    assert not compare("ratio", base, subj, upper=1.05, lower=None, settings=SETTINGS).passed
    assert not compare("ratio", base, subj, upper=None, lower=1.2, settings=SETTINGS).passed


def test_difference_of_accuracy_is_the_mean_of_per_example_changes():
    base = side([1, 1, 1, 0, 1, 0, 1, 1])
    subj = side([1, 0, 1, 0, 1, 0, 1, 1])
    result = compare("difference", base, subj, upper=None, lower=-0.2, settings=SETTINGS)
    assert result.estimate == pytest.approx(-1 / 8)
    assert result.ci_low <= result.estimate <= result.ci_high
    assert [b.side for b in result.bounds] == ["min"]


def test_z_uses_the_combined_standard_error():
    result = compare(
        "z",
        side([0.0], value=10.0, uncertainty=0.3),
        side([0.0], value=10.5, uncertainty=0.4),
        upper=3.0,
        lower=-3.0,
        settings=SETTINGS,
    )
    assert result.estimate == pytest.approx(0.5 / 0.5) and result.passed
    same = compare(
        "z",
        side([0.0], value=1.0, uncertainty=0.0),
        side([0.0], value=2.0, uncertainty=0.0),
        upper=3.0,
        lower=None,
        settings=SETTINGS,
    )
    assert same.estimate == math.inf and not same.passed


def test_a_verdict_gate_passes_only_on_a_passing_verdict():
    good = MetricVerdict(passed=True, label="trustworthy")
    bad = MetricVerdict(passed=False, label="needs walk-back: x", reasons=("x",))
    assert compare(
        "verdict", side([0.0], verdict=good), side([0.0], verdict=good), upper=None, lower=None, settings=SETTINGS
    ).passed
    assert not compare(
        "verdict", side([0.0], verdict=good), side([0.0], verdict=bad), upper=None, lower=None, settings=SETTINGS
    ).passed


@pytest.mark.parametrize(
    "config",
    [
        {"metric": "ppl", "compare": "ratio"},  # no bound
        {"metric": "ppl", "compare": "verdict", "max": 1.0},  # a verdict takes none
        {"metric": "ppl", "compare": "z", "min": 2.0, "max": 1.0},  # min above max
        {"metric": "ppl", "compare": "z", "max": float("inf")},
        {"metric": "ppl", "compare": "ratio", "max": 1.1, "n_resamples": 10**9},
    ],
)
def test_inconsistent_gate_configs_are_refused(config):
    with pytest.raises(ValidationError):
        MetricGateConfig.model_validate(config)


def test_the_verifier_rebuilds_the_report_and_catches_a_changed_number():
    config = MetricGateConfig(metric="ppl", compare="ratio", max=1.2)
    report = build_report(config, side([1.0, 2.0, 3.0]), side([1.05, 2.0, 3.1]), 0).model_dump(mode="json")
    assert report["status"] == "pass"
    assert verify_report(report, config.model_dump(mode="json")) == []
    for path in (("status",), ("measurements", "estimate"), ("details", "interval", 1)):
        tampered = copy.deepcopy(report)
        target = tampered
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = "fail" if path == ("status",) else 9.0
        assert verify_report(tampered, config.model_dump(mode="json")), path


# -- LLC gates, end to end -----------------------------------------------------------------------------------------

LLC = {
    "split": "final",
    "sites": ["blocks[1].mlp.output"],
    "chains": 2,
    "draws": 20,
    "burnin": 10,
    "batch_size": 8,
    "epsilon": 1.0e-3,
    "gamma": 100.0,
    "plot": False,
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def llc_request(out: Path, **bounds: float) -> CertifyRequest:
    gate = {"metric": "guardchain-metrics:llc", "label": "llc", "compare": "z", "metric_config": LLC, **bounds}
    return CertifyRequest(baseline="tiny-gpt2", preset=CertifyPreset(guards=[], gates=[gate]), out=out)


@pytest.mark.members
def test_an_llc_gate_passes_verifies_and_a_tampered_gate_number_is_caught(tmp_path, registry):
    out = tmp_path / "llc"
    cert = certify(llc_request(out, min=-3.0, max=3.0), registry)
    assert cert.verdict == "PASS"
    names = [g.name for g in cert.gates]
    assert names[-2:] == ["metric:0:llc:max", "metric:0:llc:min"]
    assert (out / "gates" / "llc" / "baseline" / "llc" / "traces.json").exists()  # each side's artifacts apart
    data = json.loads((out / "certificate.json").read_text())
    assert verify_certificate(data, registry=registry).mismatches == []
    for index, gate in enumerate(data["gates"]):
        if gate["name"].startswith("metric:"):
            forged = copy.deepcopy(data)
            forged["gates"][index]["measured"] = 0.123
            forged["digest"], forged["leaf_digests"] = body_digest(forged), leaf_digests(forged)
            fields = {m.field for m in verify_certificate(forged, registry=registry).mismatches}
            assert f"gates[{index}].measured" in fields


@pytest.mark.members
def test_a_tight_llc_gate_fails_and_rolls_the_edit_back_bit_for_bit(tmp_path, registry):
    out = tmp_path / "tight"
    cert = certify(llc_request(out, min=0.0, max=0.0), registry)  # the LLC may not move at all
    assert cert.verdict == "FAIL" and cert.rolled_back
    failed = [g.name for g in cert.gates if not g.passed]
    assert failed and all(name.startswith("metric:0:llc") for name in failed)
    data = json.loads((out / "certificate.json").read_text())
    assert verify_certificate(data, registry=registry).mismatches == []


@pytest.mark.members
def test_a_metric_gate_in_a_chain_file_rolls_the_edit_back(tmp_path, registry):
    raw = {
        "name": "gated",
        "model": {"ref": "tiny-gpt2"},
        "data": {"dataset": "kjv_excerpt", "config": {"seq_len": 64, "n_preview": 4, "n_final": 8}},
        "steps": [
            {"guard": "metric_gate", "config": {"metric": "ppl", "compare": "ratio", "max": 1.0001}},
            {"edit": "quant_rtn", "config": {"bits": 2}},
        ],
    }
    record = ChainRunner(registry).run(validate_chain(raw, registry), out_dir=tmp_path / "run")
    assert record.status == "rolled_back"
    edit = record.steps[1]
    assert edit.rolled_back and edit.result["weights_digest_after"] == edit.result["weights_digest_before"]
