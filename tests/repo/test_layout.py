"""The repository's own rules: namespace packages, lockstep versions, entry points, README and CI in step."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

import pytest

from guardchain.core.errors import ERROR_DESCRIPTIONS, ErrorCode
from guardchain.core.registry import ENTRY_POINT_GROUP

REPO = Path(__file__).resolve().parents[2]
ROOT = tomllib.loads((REPO / "pyproject.toml").read_text())


def members() -> dict[str, dict]:
    """Every first-party member distribution: a pyproject.toml in a direct child of the repo or of plugins/."""
    found = {}
    for path in sorted([*REPO.glob("*/pyproject.toml"), *REPO.glob("plugins/*/pyproject.toml")]):
        data = tomllib.loads(path.read_text())
        found[str(path.parent.relative_to(REPO))] = data
    return found


def test_core_is_a_member():
    assert members()["core"]["project"]["name"] == "guardchain-core"


def test_no_member_owns_the_guardchain_namespace():
    offenders = [str(p.relative_to(REPO)) for p in REPO.glob("**/src/guardchain/__init__.py")]
    assert offenders == [], "guardchain/ is a PEP 420 namespace: remove these files"


def test_each_second_level_package_belongs_to_one_member():
    owners: dict[str, str] = {}
    for folder in members():
        for package in (REPO / folder / "src" / "guardchain").iterdir():
            if package.is_dir() and (package / "__init__.py").exists():
                assert package.name not in owners, f"{package.name} in {owners.get(package.name)} and {folder}"
                owners[package.name] = folder


def test_versions_move_in_lockstep():
    root_version = ROOT["project"]["version"]
    pins = {re.split(r"[=<>!~ ]", dep)[0]: dep for dep in ROOT["project"]["dependencies"]}
    for folder, data in members().items():
        name = data["project"]["name"]
        assert data["project"]["version"] == root_version, f"{folder} is at {data['project']['version']}"
        assert pins.get(name) == f"{name}=={root_version}", f"the root must pin {name}=={root_version}"
    from guardchain.core import __version__

    assert __version__ == root_version == version("guardchain-core")


def test_the_root_pins_the_cpu_torch_build_only_on_the_dev_path():
    assert "torch==2.13.0" in ROOT["project"]["optional-dependencies"]["dev"]
    for folder, data in members().items():
        for dep in data["project"].get("dependencies", []):
            assert not dep.startswith("torch=="), f"{folder} pins torch exactly; members ask for torch>=2.1"


def test_installed_entry_points_match_the_pyprojects():
    declared = {}
    for data in members().values():
        for name, value in data["project"].get("entry-points", {}).get(ENTRY_POINT_GROUP, {}).items():
            declared[name] = (value, data["project"]["name"])
    installed = {
        ep.name: (ep.value, ep.dist.name)
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is not None and ep.dist.name.startswith("guardchain")
    }
    installed_dists = {dist for _, dist in installed.values()}
    declared = {name: v for name, v in declared.items() if v[1] in installed_dists or _installed(v[1])}
    assert installed == declared, "re-run the README's install command after editing entry points"


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.members
def test_every_member_is_installed():
    missing = [data["project"]["name"] for data in members().values() if not _installed(data["project"]["name"])]
    assert missing == [], "run the README's install command"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    install_and_run, install_and_test = readme_commands()[:2]
    assert "pip install" in install_and_run and "guardchain" in install_and_run.split("&&")[-1]
    assert "pytest" in install_and_test
    ci = (REPO / ".ci" / "run").read_text()
    assert install_and_test in ci, ".ci/run must run exactly the README's test command"
    assert "ruff check" in ci and "ruff format --check" in ci


def test_the_install_commands_name_every_member():
    for command in readme_commands()[:2]:
        for folder in members():
            assert f"-e ./{folder}" in command, f"README install command misses {folder}"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_described_and_documented(code):
    assert ERROR_DESCRIPTIONS.get(code)
    assert f"`{code.value}`" in (REPO / "docs" / "errors.md").read_text()


def test_error_codes_are_unique():
    values = [c.value for c in ErrorCode]
    assert len(values) == len(set(values))
