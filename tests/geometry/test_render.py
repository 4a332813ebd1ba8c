"""How the report draws geometry results (guardchain.geometry.render)."""

from __future__ import annotations

import json

import numpy as np

from guardchain.core.views import Chart
from guardchain.geometry.render import MAX_RANKS, _ranks, render_geometry


def test_ranks_keep_the_head_and_the_last_eigenvalue():
    assert _ranks(10) == list(range(10))
    ranks = _ranks(4096)
    assert ranks[:32] == list(range(32)) and ranks[-1] == 4095 and len(ranks) <= MAX_RANKS
    assert ranks == sorted(set(ranks))


def test_spectra_are_read_from_the_files_the_result_names(tmp_path):
    eigen = tmp_path / "eigenvalues.npz"
    np.savez(eigen, layer_00=np.array([4.0, 2.0, 1.0, 1.0]), layer_01=np.array([1.0, 0.0]))
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"eigenvalue_keys": {"layer_00": "blocks[0].input", "layer_01": "blocks[1].input"}}))
    rows = [{"site": "blocks[0].input", "d_pr": 3.2}, {"site": "blocks[1].input", "d_pr": 1.0}]
    result = {
        "value": 2.1,
        "details": {"metrics": rows, "artifacts": {"eigenvalues": "g/eigenvalues.npz", "metadata": "g/metadata.json"}},
    }
    view = render_geometry(result, {"g/eigenvalues.npz": eigen, "g/metadata.json": metadata})
    charts = {b.title: b for b in view.blocks if isinstance(b, Chart)}
    spectra = charts["Covariance spectrum per site"]
    assert spectra.log_y and spectra.series[0].y == [0.5, 0.25, 0.125, 0.125]  # shares of the total variance
    assert spectra.series[1].y == [1.0, None]  # a zero eigenvalue has no place on a log axis
    assert charts["Effective dimension per site"].series[0].y == [3.2, 1.0]
    assert "Covariance spectrum per site" not in {getattr(b, "title", "") for b in render_geometry(result, {}).blocks}
