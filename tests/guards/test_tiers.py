"""The one tier table: presets, explicit overrides, config validation, and the documents that print the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from guardchain.guards.config_base import GuardConfig, overrides_from
from guardchain.guards.invariants_config import InvariantsConfig
from guardchain.guards.rmt_config import RMTConfig
from guardchain.guards.spectral import SpectralGuard
from guardchain.guards.spectral_config import SpectralConfig
from guardchain.guards.tiers import TIERS, SpectralPreset, markdown_table, preset
from guardchain.guards.variance import VarianceGuard
from guardchain.guards.variance_config import VarianceConfig

REPO = Path(__file__).resolve().parents[2]


def test_every_guard_has_a_preset_in_every_tier() -> None:
    for tier in ("balanced", "conservative", "aggressive"):
        for guard in ("invariants", "spectral", "rmt", "variance"):
            assert preset(guard, tier) == getattr(TIERS[tier], guard)


def test_conservative_is_stricter_and_aggressive_more_permissive() -> None:
    b, c, a = (TIERS[t] for t in ("balanced", "conservative", "aggressive"))
    for family in ("attn", "ffn", "embed", "other"):
        assert c.spectral.kappa[family] < b.spectral.kappa[family] < a.spectral.kappa[family]
        assert c.rmt.epsilon[family] < b.rmt.epsilon[family] < a.rmt.epsilon[family]
    assert c.spectral.max_caps < b.spectral.max_caps < a.spectral.max_caps
    assert c.variance.max_drift < b.variance.max_drift < a.variance.max_drift


def test_explicit_overrides_win_and_per_family_overrides_are_partial() -> None:
    guard = SpectralGuard(SpectralConfig(tier="conservative", kappa={"attn": 3.0}, max_caps=7))
    assert guard.thresholds.kappa["attn"] == 3.0
    assert guard.thresholds.kappa["ffn"] == TIERS["conservative"].spectral.kappa["ffn"]
    assert guard.thresholds.max_caps == 7
    assert guard.thresholds.deadband == TIERS["conservative"].spectral.deadband
    variance = VarianceGuard(VarianceConfig(tier="aggressive", sided="two"))
    assert variance.thresholds.sided == "two"
    assert variance.thresholds.max_drift == TIERS["aggressive"].variance.max_drift


def test_configs_reject_bad_values() -> None:
    with pytest.raises(ValidationError):
        SpectralConfig(mode="enforce")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RMTConfig(margin=0.5)  # below the resolved outlier floor
    with pytest.raises(ValidationError):
        VarianceConfig(max_step=1.5)
    with pytest.raises(ValidationError):
        SpectralConfig(kappa={"mlp": 3.0})  # type: ignore[dict-item]


CONFIGS = {"invariants": InvariantsConfig, "spectral": SpectralConfig, "rmt": RMTConfig, "variance": VarianceConfig}


@pytest.mark.parametrize("guard", sorted(CONFIGS))
def test_each_knob_is_declared_once_and_the_config_derives_its_override(guard: str) -> None:
    config = CONFIGS[guard]
    preset_model = type(getattr(TIERS["balanced"], guard))
    assert config.preset_model is preset_model and config.guard_name == guard
    schema = config.model_json_schema()
    for name, info in preset_model.model_fields.items():
        assert info.description, f"{preset_model.__name__}.{name} has no description"
        override = config.model_fields[name]
        assert override.default is None
        assert override.description and override.description.startswith(info.description)
        assert schema["properties"][name]["description"] == override.description
    assert all(prop.get("description") for prop in schema["properties"].values()), "every field is described"
    assert schema.get("additionalProperties") is False, "extra keys are refused"
    assert config().thresholds() == getattr(TIERS["balanced"], guard)


def test_the_override_keeps_the_preset_bounds_and_a_knob_declared_twice_is_refused() -> None:
    for bad in ({"kappa": {"attn": 0.0}}, {"sigma_scale": {"ffn": -1.0}}, {"deadband": float("inf")}):
        with pytest.raises(ValidationError):
            SpectralConfig(**bad)
    with pytest.raises(TypeError, match="declare it there only"):

        @overrides_from("spectral", SpectralPreset)
        class Twice(GuardConfig):
            kappa: float = 1.0


@pytest.mark.parametrize("path", ["guards/README.md", "docs/guards/calibration.md"])
def test_documents_print_the_tier_table_of_the_code(path: str) -> None:
    text = (REPO / path).read_text(encoding="utf-8")
    assert markdown_table() in text, f"{path} is out of date: rerun bench/calibrate_guards.py or copy markdown_table()"


def test_the_calibration_document_reports_every_rule_satisfied() -> None:
    text = (REPO / "docs" / "guards" / "calibration.md").read_text(encoding="utf-8")
    rules = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and line.rstrip().endswith(("| yes |", "| **NO** |"))
    ]
    assert rules, "the calibration document lists the rules"
    assert all(line.rstrip().endswith("| yes |") for line in rules)
    for model in ("tiny-gpt2", "smollm2-135m"):
        assert f"`{model}`" in text, f"calibrated on {model}"
