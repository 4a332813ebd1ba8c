"""Unit addressing and config validation: positions, slices, per-row lists, heads; JSON forms round-trip."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from guardchain.core.errors import GuardchainError
from guardchain.interventions import Units
from guardchain.interventions.codes import DESCRIPTIONS, InterventionErrorCode
from guardchain.interventions.config import AddConfig, InterchangeConfig, RotatedConfig, ZeroConfig
from guardchain.interventions.units import gather, resolve_heads, resolve_positions, scatter

CPU = torch.device("cpu")


def test_position_forms_resolve_like_python_indexing():
    assert resolve_positions(None, 2, 5, CPU).index is None
    assert resolve_positions(-1, 2, 5, CPU).index.tolist() == [4]
    assert resolve_positions([0, -2], 2, 5, CPU).index.tolist() == [0, 3]
    assert resolve_positions(slice(1, None, 2), 2, 5, CPU).index.tolist() == [1, 3]
    assert resolve_positions(torch.tensor([2, 1]), 2, 5, CPU).index.tolist() == [2, 1]
    per_row = resolve_positions([[0, 1], [-1, 2]], 2, 5, CPU)
    assert per_row.per_row and per_row.index.tolist() == [[0, 1], [4, 2]]


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    length=st.integers(1, 9),
    data=st.data(),
    with_heads=st.booleans(),
)
def test_gather_then_scatter_is_the_identity_and_edits_only_the_units(batch, length, data, with_heads):
    positions = data.draw(st.lists(st.integers(0, length - 1), min_size=1, max_size=length, unique=True))
    x = torch.randn(batch, length, 8)
    selection = resolve_positions(positions, batch, length, CPU)
    heads = resolve_heads([1, 3], 4, 8) if with_heads else None
    picked = gather(x, selection, heads)
    assert torch.equal(scatter(x, selection, heads, picked), x)
    edited = scatter(x, selection, heads, torch.full_like(picked, 7.0))
    expected = x.clone()
    view = expected.view(batch, length, 4, 2)
    for p in positions:
        if with_heads:
            view[:, p, [1, 3]] = 7.0
        else:
            expected[:, p] = 7.0
    assert torch.equal(edited, expected)


def test_units_round_trip_through_their_json_form():
    for units in (
        Units(),
        Units(positions=[1, -1], heads=[0, 2], n_heads=4),
        Units(positions=slice(2, None)),
        Units(positions=slice(-4, -1, 2), source_positions=[0, 1]),
        Units(positions=[[0, 1], [2, 3]]),
        Units(positions=torch.tensor([3, 4])),
    ):
        config = InterchangeConfig.model_validate(units.to_config())
        again = Units.from_config(config)
        assert again.to_config() == units.to_config()


def test_configs_reject_malformed_units():
    for bad in ({"positions": "1-3"}, {"positions": []}, {"positions": [[0], []]}, {"positions": "::0"}, {"heads": []}):
        with pytest.raises(ValidationError):
            ZeroConfig.model_validate(bad)
    with pytest.raises(ValidationError):
        AddConfig.model_validate({"vector": []})
    with pytest.raises(ValidationError):
        InterchangeConfig.model_validate({"source_input_ids": [[1, 2], [3]]})
    with pytest.raises(ValidationError):
        InterchangeConfig.model_validate({"source_input_ids": [[1]], "source_text": ["a"]})
    with pytest.raises(ValidationError):
        RotatedConfig.model_validate({"interchange_dim": 0})


def test_empty_slice_is_a_units_error():
    with pytest.raises(GuardchainError) as caught:
        resolve_positions(slice(5, 9), 1, 4, CPU)
    assert caught.value.code == InterventionErrorCode.UNITS


def test_every_code_is_described():
    assert set(DESCRIPTIONS) == set(InterventionErrorCode)
    assert all(code.value.startswith("GC-INTERVENTION-") for code in InterventionErrorCode)


def test_the_readme_lists_every_code():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "plugins" / "interventions" / "README.md").read_text()
    for code in InterventionErrorCode:
        assert f"`{code.value}`" in readme, code
