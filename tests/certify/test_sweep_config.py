"""Sweep files: two-step validation with the sweep file's own paths and stable codes, expansion to cells with
stable ids, and the Pareto front the plot draws. No model is loaded here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from guardchain.certify.codes import DESCRIPTIONS, CertifyErrorCode
from guardchain.certify.sweep import plan_sweep
from guardchain.certify.sweep_config import MAX_CELLS, expand, load_sweep, request_digest
from guardchain.certify.sweep_plot import pareto_front
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.members


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GRID = """
name: grid
baselines: [tiny-gpt2]
grid:
  - edit: quant_rtn
    config: {bits: [8, 4], group_size: [null, 32]}
"""


def problems(exc: pytest.ExceptionInfo[GuardchainError]) -> list[tuple[str, str]]:
    return [(str(p.code), p.path) for p in exc.value.problems]


def test_a_grid_expands_to_every_combination_with_stable_ids(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, GRID))
    cells = expand(sweep, tmp_path / "out")
    settings = [c.edit_config for c in cells]
    assert settings == [
        {"bits": 8, "group_size": None},
        {"bits": 8, "group_size": 32},
        {"bits": 4, "group_size": None},
        {"bits": 4, "group_size": 32},
    ]
    assert [c.id for c in cells] == [c.id for c in expand(sweep, tmp_path / "elsewhere")]  # ids ignore the folder
    assert len({c.id for c in cells}) == 4
    for cell in cells:
        assert cell.digest == request_digest(cell.request) and cell.id.endswith(cell.digest[:10])
        assert cell.request.out == tmp_path / "out" / "cells" / cell.id
        assert re.fullmatch(r"[A-Za-z0-9._=+-]+", cell.id)
    changed = load_sweep(write(tmp_path, GRID.replace("name: grid", "name: grid\nseeds: [1]"), "seed1.yaml"))
    assert not {c.id for c in cells} & {c.id for c in expand(changed, tmp_path / "out")}


def test_the_same_file_in_json_and_toml_gives_the_same_cells(tmp_path: Path) -> None:
    yaml_cells = expand(load_sweep(write(tmp_path, GRID)), tmp_path)
    as_json = {"name": "grid", "baselines": ["tiny-gpt2"], "grid": [{"edit": "quant_rtn", "config": {"bits": [8, 4]}}]}
    as_json["grid"][0]["config"]["group_size"] = [None, 32]  # type: ignore[index]
    json_cells = expand(load_sweep(write(tmp_path, json.dumps(as_json), "sweep.json")), tmp_path)
    assert [c.id for c in yaml_cells] == [c.id for c in json_cells]
    toml = 'name = "grid"\nbaselines = ["tiny-gpt2"]\n[[edits]]\nedit = "quant_rtn"\nconfig = {bits = 8}\n'
    toml_cells = expand(load_sweep(write(tmp_path, toml, "sweep.toml")), tmp_path)
    assert toml_cells[0].edit_config == {"bits": 8}


def test_envelope_problems_have_paths_codes_and_suggestions(tmp_path: Path) -> None:
    path = write(tmp_path, "baselines: [tiny-gpt2]\ngird: []\ntiers: [balanced, lenient]\nseeds: [-1]\n")
    with pytest.raises(GuardchainError) as caught:
        load_sweep(path)
    found = problems(caught)
    assert ("GC-CONFIG-UNKNOWN-KEY", "gird") in found
    assert ("GC-CONFIG-VALUE", "tiers[1]") in found
    assert ("GC-CONFIG-VALUE", "seeds") in found
    assert "did you mean 'grid'?" in next(p.hint for p in caught.value.problems if p.path == "gird")
    with pytest.raises(GuardchainError) as caught:
        load_sweep(write(tmp_path, "grid: []\n", "nobase.yaml"))
    assert problems(caught) == [("GC-CONFIG-MISSING", "baselines")]
    with pytest.raises(GuardchainError) as caught:
        load_sweep(write(tmp_path, "baselines: [a]\nbaselines: [b]\n", "dup.yaml"))
    assert caught.value.code == "GC-CONFIG-DUPLICATE-KEY"


def test_plugin_problems_of_cells_are_reported_at_the_sweep_files_paths(tmp_path: Path, registry: Registry) -> None:
    text = """
baselines: [tiny-gpt2, /nonexistent/model]
edits:
  - {edit: quant_rtn, config: {bits: 8}}
grid:
  - edit: quant_rtn
    config: {bits: [4, 1], colour: [blue]}
"""
    with pytest.raises(GuardchainError) as caught:
        plan_sweep(write(tmp_path, text), registry, tmp_path / "out")
    found = problems(caught)
    assert ("GC-CONFIG-VALUE", "grid[0].config.bits") in found  # bits=1 is below quant_rtn's minimum
    assert ("GC-CONFIG-UNKNOWN-KEY", "grid[0].config.colour") in found
    assert any(path == "baselines[1]" and "NOT-FOUND" in code for code, path in found)
    assert len(found) == len(set(found))  # one problem per place, not one per cell
    assert not (tmp_path / "out").exists()  # nothing was written


def test_duplicate_cells_no_edit_and_huge_grids_are_refused(tmp_path: Path) -> None:
    duplicate = "baselines: [tiny-gpt2]\nedits: [{config: {bits: 8}}]\ngrid: [{config: {bits: [8, 4]}}]\n"
    with pytest.raises(GuardchainError) as caught:
        expand(load_sweep(write(tmp_path, duplicate)), tmp_path)
    assert problems(caught) == [(str(CertifyErrorCode.SWEEP_DUPLICATE_CELL), "grid[0]")]
    with pytest.raises(GuardchainError) as caught:
        expand(load_sweep(write(tmp_path, "baselines: [tiny-gpt2]\n", "none.yaml")), tmp_path)
    assert problems(caught) == [("GC-CONFIG-MISSING", "edits")]
    values = list(range(2, 9))
    huge = f"baselines: [tiny-gpt2]\nseeds: {list(range(600))}\ngrid: [{{config: {{bits: {values}}}}}]\n"
    with pytest.raises(GuardchainError) as caught:
        expand(load_sweep(write(tmp_path, huge, "huge.yaml")), tmp_path)
    assert caught.value.code == "GC-CONFIG-VALUE" and str(MAX_CELLS) in caught.value.problems[0].message


def test_a_folder_that_is_not_guardchains_is_refused_before_anything_runs(tmp_path: Path, registry: Registry) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(GuardchainError) as caught:
        plan_sweep(write(tmp_path, GRID), registry, folder)
    assert caught.value.code == "GC-CERT-OUT-NOT-OURS"
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_pareto_front_keeps_exactly_the_non_dominated_points() -> None:
    points = [(8, 1.001), (8, 1.0005), (6, 1.02), (4, 1.3), (4, 1.01), (3, 2.0), (6, 1.02)]
    assert pareto_front(points) == [(3, 2.0), (4, 1.01), (8, 1.0005)]
    assert pareto_front([]) == []


def test_every_sweep_code_is_described_and_documented() -> None:
    docs = (REPO / "docs" / "sweeps.md").read_text()
    sweep_codes = [code for code in CertifyErrorCode if code.value.startswith("GC-CERT-SWEEP-")]
    assert sweep_codes and all(code in DESCRIPTIONS for code in sweep_codes)
    for code in sweep_codes:
        assert f"`{code.value}`" in docs, code


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("sweep_*.yaml")), ids=lambda p: p.name)
def test_the_example_sweep_files_are_valid(example: Path, registry: Registry, tmp_path: Path) -> None:
    planned = plan_sweep(example, registry, tmp_path / "out")
    assert planned.cells and len(set(planned.affinity.values())) == len(planned.file.baselines)
