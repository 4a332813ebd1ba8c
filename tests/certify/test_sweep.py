"""``guardchain sweep`` on the packaged tiny GPT-2: a 2 x 2 grid run locally and on a real local Ray instance
gives the same table; a killed worker costs one cell, which a re-run finishes alone; Ctrl-C keeps finished
cells."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from guardchain.certify import sweep_worker
from guardchain.certify.backends import LocalPool, RayBackend
from guardchain.certify.cache import BaselineCache
from guardchain.certify.codes import CertifyErrorCode
from guardchain.certify.sweep import SUMMARY_COLUMNS, plan_sweep, run_sweep
from guardchain.certify.sweep_worker import CellWorker, worker_settings
from guardchain.certify.verify import verify_certificate
from guardchain.core.registry import Registry

pytestmark = pytest.mark.members

GRID = """
name: tiny-grid
baselines: [tiny-gpt2]
grid:
  - edit: quant_rtn
    config: {bits: [8, 4], group_size: [null, 32]}
"""
#: What may differ between two runs of the same cells: wall time, and which cell happened to evaluate the baseline.
VOLATILE = ("wall_s", "baseline_cache")


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def sweep_cli(*args: str, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardchain.core", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep-file") / "grid.yaml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def local_run(sweep_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """The 2 x 2 sweep through the CLI: two local workers of one thread each, a fresh cache."""
    root = tmp_path_factory.mktemp("local")
    done = sweep_cli(
        str(sweep_file),
        "--out",
        str(root / "out"),
        "--jobs",
        "2",
        "--format",
        "json",
        env={"GUARDCHAIN_CACHE_DIR": str(root / "cache")},
    )
    assert done.returncode == 1, done.stderr[-3000:]  # every cell certified, the int4 cells FAIL
    return root / "out", json.loads(done.stdout), done.stderr


def test_a_2x2_sweep_runs_locally_every_cell_certified_and_verifiable(local_run, registry) -> None:
    out, result, stderr = local_run
    rows = result["cells"]
    assert "Traceback" not in stderr
    assert [r["status"] for r in rows] == ["done"] * 4
    assert [(r["edit_config"]["bits"], r["verdict"]) for r in rows] == [
        (8, "PASS"),
        (8, "PASS"),
        (4, "FAIL"),
        (4, "FAIL"),
    ]
    assert sorted(r["baseline_cache"] for r in rows) == ["hit", "hit", "hit", "miss"]  # evaluated once, 2 workers
    for row in rows:
        data = json.loads((out / row["folder"] / "certificate.json").read_text())
        assert verify_certificate(data, registry=registry).mismatches == []
        assert row["cell"].endswith(data["provenance"]["config_digest"][:10])
        assert row["ratio"] == data["primary_metric"]["final"]["ratio"] and row["ci_high"] >= row["ratio"]
        assert row["gates"] == {g["name"]: g["passed"] for g in data["gates"]}
    with (out / "summary.csv").open() as handle:
        parsed = list(csv.DictReader(handle))
    assert list(parsed[0]) == list(SUMMARY_COLUMNS) and len(parsed) == 4
    assert [float(r["ratio"]) for r in parsed] == [r["ratio"] for r in rows]
    assert json.loads((out / "summary.json").read_text())["cells"] == rows
    png = (out / "quality_vs_bits.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000 and result["plot"] == "quality_vs_bits.png"
    manifest = json.loads((out / ".guardchain" / "manifest.json").read_text())
    assert {"sweep.json", "summary.json", "summary.csv", "quality_vs_bits.png"} <= set(manifest["files"])


def test_the_same_sweep_on_a_local_ray_instance_gives_the_same_table(local_run, sweep_file, registry, tmp_path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'guardchain-certify[ray]'")
    import ray

    _, local, _ = local_run
    planned = plan_sweep(sweep_file, registry, tmp_path / "ray-out")
    cache = BaselineCache(tmp_path / "ray-cache")
    assert not ray.is_initialized()
    events: list[dict[str, Any]] = []
    result = run_sweep(planned, RayBackend(2, worker_settings(1, cache)), cache=cache, on_event=events.append)
    assert not ray.is_initialized()  # the local instance the backend started is stopped again
    assert table(result.rows) == table(local["cells"])
    assert sorted(r["baseline_cache"] for r in result.rows) == ["hit", "hit", "hit", "miss"]
    pids = {e["pid"] for e in events if e["type"] == "started"}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # the cells ran in the actors' processes


def test_a_killed_worker_costs_one_cell_and_a_rerun_finishes_only_it(local_run, sweep_file, registry, tmp_path) -> None:
    _, local, _ = local_run
    cache = BaselineCache(tmp_path / "cache")
    settings = worker_settings(1, cache)
    started: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []

    def kill_the_second(event: dict[str, Any]) -> None:
        if event["type"] == "finished":
            finished.append(event)
        if event["type"] == "started":
            started.append(event)
            if len(started) == 2:
                os.kill(event["pid"], signal.SIGKILL)

    planned = plan_sweep(sweep_file, registry, tmp_path / "out")
    first = run_sweep(planned, LocalPool(1, settings), cache=cache, on_event=kill_the_second)
    killed = started[1]["cell"]
    statuses = {r["cell"]: r["status"] for r in first.rows}
    assert statuses.pop(killed) == "failed" and set(statuses.values()) == {"done"}
    row = next(r for r in first.rows if r["cell"] == killed)
    assert row["error"]["code"] == CertifyErrorCode.SWEEP_WORKER_DIED and "SIGKILL" in row["error"]["message"]
    assert not (tmp_path / "out" / row["folder"] / "certificate.json").exists()
    assert first.exit_code == 2 and len({e["pid"] for e in started}) >= 2  # a fresh worker took over
    # each worker loads the baseline once: the fresh worker's first cell loads it, its next one reuses it
    assert [(e["status"], e["reused"]) for e in finished] == [
        ("done", False),
        ("failed", False),
        ("done", False),
        ("done", True),
    ]

    events: list[dict[str, Any]] = []
    again = run_sweep(
        plan_sweep(sweep_file, registry, tmp_path / "out"), LocalPool(1, settings), cache=cache, on_event=events.append
    )
    assert [e["cell"] for e in events if e["type"] == "started"] == [killed]
    assert sorted(again.skipped) == sorted(c for c in statuses)
    assert table(again.rows) == table(local["cells"])


def test_ctrl_c_keeps_finished_cells_and_a_rerun_completes_the_rest(sweep_file, registry, tmp_path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "GUARDCHAIN_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "guardchain.core", "sweep", str(sweep_file), "--out", str(out), "--no-cache"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 600
    while not list(out.glob("cells/*/certificate.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    rows = json.loads((out / "summary.json").read_text())["cells"]
    done = [r for r in rows if r["status"] == "done"]
    assert done and len(done) < 4
    assert {r["error"]["code"] for r in rows if r["status"] != "done"} == {CertifyErrorCode.SWEEP_INTERRUPTED}
    for row in done:
        data = json.loads((out / row["folder"] / "certificate.json").read_text())
        assert verify_certificate(data, registry=registry).mismatches == []
        assert row["baseline_cache"] is None  # --no-cache
    again = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 1, again.stderr[-2000:]
    result = json.loads(again.stdout)
    assert [r["status"] for r in result["cells"]] == ["done"] * 4
    kept = [line for line in again.stderr.splitlines() if ": finished before, kept (" in line]
    assert len(kept) == len(done)
    assert not (tmp_path / "cache").exists()  # --no-cache never touched the cache folder


def test_a_cell_that_fails_is_recorded_with_its_error_and_the_others_go_on(registry, tmp_path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "baselines: [tiny-gpt2]\nguards: []\nedits:\n"
        "  - {config: {bits: 8, scope: [nowhere.at.all]}}\n"  # valid settings, but this model has no such weights
        "  - {config: {bits: 8}}\n"
    )
    cache = BaselineCache(tmp_path / "cache")
    events: list[dict[str, Any]] = []
    result = run_sweep(
        plan_sweep(path, registry, tmp_path / "out"),
        LocalPool(1, worker_settings(1, cache)),
        cache=cache,
        on_event=events.append,
    )
    failed, done = result.rows
    assert failed["status"] == "failed" and failed["error"]["code"] == "GC-EDIT-SCOPE-UNKNOWN"
    assert not (tmp_path / "out" / failed["folder"]).exists()  # the failed certification left nothing behind
    assert done["status"] == "done" and done["verdict"] == "PASS" and result.exit_code == 2
    finished = [e for e in events if e["type"] == "finished"]
    assert [e["reused"] for e in finished] == [False, False]  # a failed cell never hands its model on


def test_workers_take_the_allocator_policy_of_the_sweeps_process_and_apply_it_themselves(monkeypatch) -> None:
    # a spawned process or a Ray actor does not inherit the C allocator's settings: each worker applies them
    monkeypatch.setenv("GUARDCHAIN_ALLOCATOR", "system")
    settings = worker_settings(1)
    assert settings["allocator"] == "system"
    applied: list[str | None] = []
    monkeypatch.setattr(sweep_worker, "limit_threads", lambda threads: None)
    monkeypatch.setattr(sweep_worker, "configure_allocator", applied.append)
    monkeypatch.setattr(sweep_worker, "configure_collector", lambda: applied.append("collector"))
    CellWorker(settings)
    assert applied == ["system", "collector"]
