"""Shared fixtures: the fixture plugin distributions, built and installed once per session, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["guardchain.testing.fixtures"]

REPO = Path(__file__).resolve().parents[1]
DISTS = REPO / "tests" / "fixtures" / "dists"
FAKES_SRC = DISTS / "gc-fakes" / "src"


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@dataclass(frozen=True)
class FixtureSites:
    """Per-distribution install directories of the fixture dists (``pip install --target``), split by RECORD."""

    root: Path
    by_dist: dict[str, Path]

    def pythonpath(self, dists: Iterable[str]) -> str:
        return os.pathsep.join(str(self.by_dist[d]) for d in dists)

    @property
    def all(self) -> list[str]:
        return sorted(self.by_dist)


def _split_by_record(site: Path, out: Path) -> dict[str, Path]:
    sites: dict[str, Path] = {}
    for dist_info in site.glob("*.dist-info"):
        meta = (dist_info / "METADATA").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in meta if line.startswith("Name:"))
        target = out / name
        for row in (dist_info / "RECORD").read_text().splitlines():
            rel = row.split(",", 1)[0]
            if not rel or rel.startswith(".."):
                continue
            src = site / rel
            if src.is_file():
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        sites[name] = target
    return sites


@pytest.fixture(scope="session")
def fixture_sites(tmp_path_factory: pytest.TempPathFactory) -> FixtureSites:
    """Build every dist under tests/fixtures/dists with the real backend and install it with pip, once."""
    root = tmp_path_factory.mktemp("fixture-dists")
    site = root / "site"
    dists = sorted(str(p) for p in DISTS.iterdir() if (p / "pyproject.toml").is_file())
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-index", "--disable-pip-version-check", "--target", str(site), *dists]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return FixtureSites(root=root, by_dist=_split_by_record(site, root / "by-dist"))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def run_cli(
    *args: str,
    pythonpath: str = "",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prelude: str = "",
) -> CliResult:
    """Run ``guardchain ARGS`` in a fresh interpreter (optionally after ``prelude`` code) with PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUARDCHAIN_")}
    environ["PYTHONPATH"] = pythonpath
    environ.update(env or {})
    code = f"{prelude}\nimport sys\nfrom guardchain.core.cli import main\nsys.exit(main({list(args)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def fakes_module(monkeypatch: pytest.MonkeyPatch):
    """The gc_fakes registration module imported from source (for in-process registry tests)."""
    monkeypatch.syspath_prepend(str(FAKES_SRC))
    import gc_fakes.plugin

    return gc_fakes.plugin


@pytest.fixture
def cli():
    """``cli(*args, pythonpath=..., env=...)`` runs the guardchain CLI in a subprocess."""
    return run_cli
