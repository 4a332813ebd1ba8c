"""``guardchain --help`` and ``plugins list`` never import torch (nor transformers)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dists

BLOCK_TORCH = "import sys\nsys.modules['torch'] = None\nsys.modules['transformers'] = None\n"
REPORT_HEAVY = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'transformers') "
    "if m in sys.modules) + '\\n'))\n"
)


def member_distributions_with_plugins():
    """Every first-party member of this repository that declares a guardchain.plugins entry point."""
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    names = set()
    for path in [*repo.glob("*/pyproject.toml"), *repo.glob("plugins/*/pyproject.toml")]:
        project = tomllib.loads(path.read_text())["project"]
        if project.get("entry-points", {}).get("guardchain.plugins"):
            names.add(project["name"])
    return names


def first_party(rows):
    return [r for r in rows if (r["distribution"] or "").startswith("guardchain")]


def test_help_and_list_work_with_torch_unimportable(cli, fixture_sites):
    path = fixture_sites.pythonpath(["acme-guard", "gc-fakes", "heavy-import"])
    helped = cli("--help", pythonpath=path, prelude=BLOCK_TORCH)
    assert helped.returncode == 0, helped.stderr
    assert "plugins" in helped.stdout and "fakes-hello" in helped.stdout
    listed = cli("plugins", "list", "--format", "json", pythonpath=path, prelude=BLOCK_TORCH)
    assert listed.returncode == 0, listed.stderr
    rows = listed.json()["plugins"]
    by_name = {r["name"]: r for r in rows}
    assert all(r["status"] == "ok" for r in first_party(rows)), first_party(rows)
    assert {r["distribution"] for r in first_party(rows)} == member_distributions_with_plugins()
    assert by_name["acme"]["status"] == "ok" and by_name["fakes"]["status"] == "ok"
    heavy = by_name["heavy_import"]
    assert heavy["status"] == "error"
    assert heavy["error"]["code"] == "GC-PLUGIN-IMPORT"
    assert heavy["error"]["missing_module"] == "torch"


@pytest.mark.parametrize("args", [("--help",), ("plugins", "list"), ("plugins", "list", "--format", "json")])
def test_torch_is_never_imported_by_listing(cli, fixture_sites, args):
    path = fixture_sites.pythonpath(["acme-guard", "gc-fakes"])
    result = cli(*args, pythonpath=path, prelude=REPORT_HEAVY)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr


def test_the_heavy_fixture_really_imports_torch_when_it_can(cli, fixture_sites):
    pytest.importorskip("torch")
    path = fixture_sites.pythonpath(["heavy-import"])
    result = cli("plugins", "list", pythonpath=path, prelude=REPORT_HEAVY)
    assert "HEAVY=torch" in result.stderr  # so the check above is able to fail
