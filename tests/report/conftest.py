"""Fixtures of the report's tests: real runs on the committed tiny GPT-2 (made once per session) and a headless
Chromium from the system packages, driven by Playwright's Python API (never ``playwright install``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from guardchain.report.browser import CHROMIUM_ARGS, chromium_path

REPO = Path(__file__).resolve().parents[2]
#: every renderer of the first-party members in one chain: two metrics before, guards, an edit (kept: int8),
#: metrics after, a collecting intervention, the FA diagnostics
EVERYTHING_CHAIN = """
version: 1
name: report-everything
seed: 0
model: {ref: tiny-gpt2}
data: {dataset: kjv_excerpt, config: {seq_len: 64, n_preview: 8, n_final: 16}}
steps:
  - {metric: ppl, id: ppl_before}
  - {metric: geometry, id: geometry_before}
  - intervention: collect
    id: collect
    sites: ["blocks[0].output"]
    config: {positions: [-1], artifact: acts.safetensors}
  - {guard: invariants}
  - {guard: spectral}
  - {guard: rmt}
  - {guard: variance}
  - {edit: quant_rtn, config: {bits: 8}}
  - {metric: ppl, id: ppl_after}
  - {metric: geometry, id: geometry_after}
  - {metric: fa_diagnostics, id: fa, config: {n_batches: 4, batch_size: 4}}
"""


def guardchain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``guardchain ARGS`` in a fresh interpreter (its exit code and output), with ``env`` added."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUARDCHAIN_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "guardchain.core", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env=environ,
    )


@pytest.fixture(scope="session")
def gc() -> Any:
    """``gc(*args)`` runs the guardchain CLI in a fresh interpreter."""
    return guardchain


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of real runs: certifications int8 (PASS) and int2 conservative (FAIL, rolled back), the quick LLC
    example chain and the every-renderer chain."""
    root = tmp_path_factory.mktemp("report-runs")
    out = {name: root / name for name in ("int8", "int2", "llc", "everything")}
    done = guardchain("certify", "--baseline", "tiny-gpt2", "--out", str(out["int8"]))
    assert done.returncode == 0, done.stderr[-3000:]
    done = guardchain(
        "certify",
        "--baseline",
        "tiny-gpt2",
        "--edit-config",
        "bits=2",
        "--tier",
        "conservative",
        "--out",
        str(out["int2"]),
    )
    assert done.returncode == 1, done.stderr[-3000:]
    done = guardchain("run", "examples/llc_tiny_gpt2_quick.yaml", "--out", str(out["llc"]))
    assert done.returncode == 0, done.stderr[-3000:]
    chain = root / "everything.yaml"
    chain.write_text(EVERYTHING_CHAIN)
    done = guardchain("run", str(chain), "--out", str(out["everything"]))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@dataclass
class Opened:
    """A report opened in the browser, with what it logged and requested."""

    page: Any
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, or a skip saying why there is none."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine (CI installs it with: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; it drives the system Chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        yield launched
        launched.close()


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    """``open_report(path, color_scheme="light")`` -> :class:`Opened` (the page loaded, listeners attached)."""
    contexts = []

    def open_(path: Path, color_scheme: str = "light") -> Opened:
        context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1200, "height": 900})
        contexts.append(context)
        page = context.new_page()
        opened = Opened(page)
        page.on(
            "console",
            lambda m: opened.console.append(f"{m.type}: {m.text}") if m.type in {"error", "warning"} else None,
        )
        page.on("pageerror", lambda e: opened.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: opened.requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        return opened

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$GUARDCHAIN_REPORT_SHOTS`` when set (to look at them), else a temporary folder."""
    chosen = os.environ.get("GUARDCHAIN_REPORT_SHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("report-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
