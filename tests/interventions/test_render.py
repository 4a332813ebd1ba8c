"""How the report draws intervention steps (guardchain.interventions.render): collected shapes from the safetensors
headers, without loading a tensor."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save_file

from guardchain.core.views import Table
from guardchain.interventions.render import collected, read_header, render_intervention


def test_collected_shapes_are_read_from_the_headers(tmp_path):
    path = tmp_path / "acts.safetensors"
    save_file(
        {
            "blocks[0].output/0": np.zeros((2, 1, 8), np.float32),
            "blocks[0].output/1": np.zeros((4, 1, 8), np.float32),
            "other/0": np.zeros(3, np.float32),
        },
        str(path),
    )
    assert read_header(path)["blocks[0].output/1"]["shape"] == [4, 1, 8]
    records = collected(["blocks[0].output"], {"acts.safetensors": path, "notes.txt": tmp_path / "notes.txt"})
    assert records == {
        "blocks[0].output": [("acts.safetensors", 0, [2, 1, 8], "F32"), ("acts.safetensors", 1, [4, 1, 8], "F32")]
    }
    view = render_intervention("collect", {"attached": ["blocks[0].output"]}, {"acts.safetensors": path})
    table = next(b for b in view.blocks if isinstance(b, Table) and b.title == "Collected activations")
    assert table.rows[0][:3] == ["blocks[0].output", 2, "2×1×8, 4×1×8"]
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:5])
    assert read_header(truncated) is None
    assert render_intervention("zero", {"attached": ["blocks[1].mlp.output"]}, {}).summary == "zero at 1 site(s)"
    assert render_intervention("not_ours", {"attached": []}, {}) is None
