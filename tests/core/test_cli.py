"""The CLI for real: fixture distributions built with hatchling, installed with pip, CLI run in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import pytest

from guardchain.core import __version__

pytestmark = pytest.mark.dists

GOOD = ["acme-guard", "gc-fakes"]
BROKEN = {
    "broken_import": ("error", "GC-PLUGIN-IMPORT"),
    "raising_import": ("error", "GC-PLUGIN-IMPORT-ERROR"),
    "broken_hook": ("error", "GC-PLUGIN-REGISTER"),
    "bad_api": ("incompatible", "GC-PLUGIN-API"),
    "bad_hook": ("invalid", "GC-PLUGIN-HOOK"),
    "dup_a": ("conflict", "GC-PLUGIN-CONFLICT"),
    "dup_b": ("conflict", "GC-PLUGIN-CONFLICT"),
}


def rows(result):
    """Plugin rows of the fixture distributions only (first-party members are installed too)."""
    return {row["name"]: row for row in result.json()["plugins"] if not _first_party(row["distribution"])}


def _first_party(distribution):
    return (distribution or "").startswith("guardchain")


def fixture_capabilities(result):
    return [c for c in result.json()["capabilities"] if not _first_party(c["distribution"])]


def test_the_fixture_plugin_is_listed_only_when_installed(cli, fixture_sites):
    without = cli("plugins", "list", "--format", "json")
    assert without.returncode == 0, without.stderr
    assert "acme" not in rows(without)
    with_it = cli("plugins", "list", "--format", "json", pythonpath=fixture_sites.pythonpath(["acme-guard"]))
    acme = rows(with_it)["acme"]
    assert acme["status"] == "ok"
    assert acme["distribution"] == "acme-guard" and acme["version"] == "1.2.3"
    assert acme["provides"] == {"guard": ["acme_guard"]}
    caps = fixture_capabilities(with_it)
    assert {"kind": "guard", "name": "acme_guard", "distribution": "acme-guard"}.items() <= caps[0].items()


def test_broken_plugins_show_their_status_and_code_beside_healthy_ones(cli, fixture_sites):
    dists = [d for d in fixture_sites.all if d != "heavy-import"]
    result = cli("plugins", "list", "--format", "json", pythonpath=fixture_sites.pythonpath(dists))
    assert result.returncode == 0, result.stderr
    listed = rows(result)
    for name, (status, code) in BROKEN.items():
        assert listed[name]["status"] == status, listed[name]
        assert listed[name]["error"]["code"] == code
    assert "gc_definitely_missing_module" in listed["broken_import"]["error"]["message"]
    assert listed["broken_hook"]["provides"] == {}
    assert listed["acme"]["status"] == "ok" and listed["fakes"]["status"] == "ok"
    assert set(listed["fakes"]["provides"]) == {"adapter", "dataset", "edit", "guard", "metric", "intervention"}
    table = cli("plugins", "list", pythonpath=fixture_sites.pythonpath(dists))
    assert table.returncode == 0
    assert "GC-PLUGIN-IMPORT" in table.stdout and "acme_guard" in table.stdout


def test_plugins_check_exits_1_when_any_plugin_is_broken(cli, fixture_sites):
    bad = cli("plugins", "check", pythonpath=fixture_sites.pythonpath(["acme-guard", "broken-import"]))
    assert bad.returncode == 1
    assert "GC-PLUGIN-IMPORT [broken_import]" in bad.stdout
    good = cli("plugins", "check", "--load", pythonpath=fixture_sites.pythonpath(GOOD))
    assert good.returncode == 0, good.stdout + good.stderr
    blocked = cli(
        "--disable-plugin",
        "broken_import",
        "plugins",
        "check",
        pythonpath=fixture_sites.pythonpath(["acme-guard", "broken-import"]),
    )
    assert blocked.returncode == 0, blocked.stdout


def test_allow_list_block_list_and_all(cli, fixture_sites):
    path = fixture_sites.pythonpath(GOOD)
    only_acme = cli("plugins", "list", "--format", "json", pythonpath=path, env={"GUARDCHAIN_PLUGINS": "acme"})
    assert set(rows(only_acme)) == {"acme"}
    with_blocked = cli(
        "plugins", "list", "--format", "json", "--all", pythonpath=path, env={"GUARDCHAIN_PLUGINS": "acme"}
    )
    assert rows(with_blocked)["fakes"]["status"] == "blocked"
    by_dist = cli(
        "plugins", "list", "--format", "json", pythonpath=path, env={"GUARDCHAIN_DISABLE_PLUGINS": "gc-fakes"}
    )
    assert set(rows(by_dist)) == {"acme"}
    none = cli("plugins", "list", "--format", "json", pythonpath=path, env={"GUARDCHAIN_PLUGINS": ""})
    assert rows(none) == {}
    kind = cli("plugins", "list", "--format", "json", "--kind", "metric", pythonpath=path)
    assert [c["name"] for c in fixture_capabilities(kind)] == ["fake_score"]
    requirements = cli("plugins", "list", "--requirements", pythonpath=path)
    fixture_lines = [line for line in requirements.stdout.split() if not _first_party(line)]
    assert fixture_lines == ["acme-guard==1.2.3", "gc-fakes==0.3.0"]


def test_trace_logs_hook_calls_to_stderr_only(cli, fixture_sites):
    result = cli(
        "--log-format",
        "json",
        "--log-level",
        "info",
        "plugins",
        "list",
        "--format",
        "json",
        pythonpath=fixture_sites.pythonpath(["acme-guard"]),
        env={"GUARDCHAIN_TRACE_PLUGINS": "1"},
    )
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"hook.call", "hook.result"} <= {e["event"] for e in events}
    assert rows(result)["acme"]["status"] == "ok"  # stdout is still pure JSON


def test_plugins_show(cli, fixture_sites):
    path = fixture_sites.pythonpath([*GOOD, "dup-name-a", "dup-name-b"])
    shown = cli("plugins", "show", "acme_guard", "--format", "json", pythonpath=path)
    assert shown.returncode == 0, shown.stderr
    item = shown.json()
    assert item["config_schema"]["properties"]["threshold"]["exclusiveMinimum"] == 0
    assert item["docs"] == "An example of a third-party guard package."
    text = cli("plugins", "show", "acme_guard", pythonpath=path)
    assert "config schema:" in text.stdout and "acme-guard:acme_guard" in text.stdout
    both = cli("plugins", "show", "dup_guard", "--format", "json", pythonpath=path)
    assert {i["distribution"] for i in both.json()} == {"dup-name-a", "dup-name-b"}
    one = cli("plugins", "show", "dup-name-b:dup_guard", "--format", "json", pythonpath=path)
    assert one.json()["distribution"] == "dup-name-b"
    plugin = cli("plugins", "show", "fakes", "--format", "json", pythonpath=path)
    assert plugin.json()["plugin"]["distribution"] == "gc-fakes"
    missing = cli("plugins", "show", "nothing_here", pythonpath=path)
    assert missing.returncode == 2 and "no capability or plugin named" in missing.stderr


def test_config_schema_includes_every_plugin_config(cli, fixture_sites):
    result = cli("config", "schema", pythonpath=fixture_sites.pythonpath(GOOD))
    schema = result.json()
    assert "guard.acme-guard:acme_guard" in schema["$defs"]
    assert "edit.gc-fakes:fake_scale" in schema["$defs"]
    step_variants = schema["properties"]["steps"]["items"]["oneOf"]
    assert {"acme_guard", "fake_norm", "fake_scale", "fake_score", "fake_tap"} <= {
        v["properties"][k]["enum"][0]
        for v in step_variants
        for k in ("guard", "edit", "metric", "intervention")
        if k in v["properties"]
    }


BAD_CHAIN = """
name: bad
model: {ref: "fake:2"}
steps:
  - guard: fake_norm
    config: {max_ratoi: 2.0}
  - edit: fake_scale
    config: {factor: lots}
  - metric: fake_scroe
data: {config: {}}
"""


def test_doctor_reports_all_four_problems_without_a_traceback(cli, fixture_sites, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CHAIN)
    result = cli("doctor", str(bad), pythonpath=fixture_sites.pythonpath(GOOD))
    assert result.returncode == 1
    out = result.stdout
    for line in (
        "GC-CONFIG-UNKNOWN-KEY steps[0].config.max_ratoi: unknown key 'max_ratoi'",
        "GC-CONFIG-TYPE steps[1].config.factor: got 'lots'",
        "GC-PLUGIN-UNKNOWN steps[2].metric: no metric named 'fake_scroe'",
        "GC-CONFIG-MISSING data.dataset: required key 'dataset' is missing",
    ):
        assert line in out, out
    assert "Traceback" not in out + result.stderr
    as_json = cli("doctor", str(bad), "--json", pythonpath=fixture_sites.pythonpath(GOOD))
    payload = as_json.json()
    assert not payload["ok"] and len(payload["problems"]) == 4


def test_doctor_and_run_on_a_good_chain(cli, fixture_sites, tmp_path):
    chain = tmp_path / "good.yaml"
    chain.write_text(
        textwrap.dedent(
            """
            name: good
            model: {ref: "fake:3"}
            data: {dataset: fake_text}
            steps:
              - guard: acme_guard
              - guard: fake_norm
              - edit: fake_scale
                config: {factor: 1.1}
              - metric: fake_score
            """
        )
    )
    path = fixture_sites.pythonpath(GOOD)
    doctor = cli("doctor", str(chain), pythonpath=path)
    assert doctor.returncode == 0 and doctor.stdout.startswith("ok:"), doctor.stdout + doctor.stderr
    out = tmp_path / "out"
    result = cli("run", str(chain), "--out", str(out), "--format", "json", pythonpath=path)
    assert result.returncode == 0, result.stderr
    record = result.json()
    assert record == json.loads((out / "run.json").read_text())
    assert [s["capability"]["distribution"] for s in record["steps"]] == [
        "acme-guard",
        "gc-fakes",
        "gc-fakes",
        "gc-fakes",
    ]
    edit = record["steps"][2]["result"]
    assert [g["guard"] for g in edit["guards"]] == ["acme_guard", "fake_norm"]
    assert edit["guards"][0]["measurements"] == {"prepared": 1.0, "edited": 1.0}
    table = cli("run", str(chain), "--out", str(tmp_path / "out2"), pythonpath=path)
    assert table.returncode == 0 and "good: ok" in table.stdout


def test_run_exit_codes(cli, fixture_sites, tmp_path):
    path = fixture_sites.pythonpath(GOOD)
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        'name: f\nmodel: {ref: "fake:2"}\nsteps:\n  - edit: fake_scale\n    config: {fail: true, factor: 2}\n'
    )
    result = cli("run", str(failing), "--out", str(tmp_path / "o"), pythonpath=path)
    assert result.returncode == 1
    assert "GC-STEP-FAILED" in result.stdout
    rolled = tmp_path / "rolled.yaml"
    rolled.write_text(
        'name: r\nmodel: {ref: "fake:2"}\nsteps:\n  - guard: fake_norm\n  - edit: fake_scale\n    config: {factor: 3}\n'
    )
    result = cli("run", str(rolled), "--out", str(tmp_path / "r"), pythonpath=path)
    assert result.returncode == 1
    assert "r: rolled_back" in result.stdout and "ok (rolled back)" in result.stdout
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("name: f\nsteps: []\n")
    result = cli("run", str(invalid), pythonpath=path)
    assert result.returncode == 2
    assert "GC-CONFIG-VALUE steps" in result.stderr and "Traceback" not in result.stderr
    missing = cli("run", str(tmp_path / "absent.yaml"), pythonpath=path)
    assert missing.returncode == 2 and "GC-CONFIG-NOT-FOUND" in missing.stderr


def test_a_chain_using_a_broken_plugin_fails_before_running_with_the_cause(cli, fixture_sites, tmp_path):
    chain = tmp_path / "c.yaml"
    chain.write_text(
        'name: c\nmodel: {ref: "fake:2"}\nsteps:\n  - guard: broken_import:anything\n  - edit: fake_scale\n'
    )
    out = tmp_path / "o"
    result = cli("run", str(chain), "--out", str(out), pythonpath=fixture_sites.pythonpath([*GOOD, "broken-import"]))
    assert result.returncode == 2
    assert "GC-PLUGIN-UNAVAILABLE steps[0].guard" in result.stderr
    assert not out.exists()


def test_plugin_commands_join_the_cli(cli, fixture_sites):
    path = fixture_sites.pythonpath(GOOD)
    helped = cli("--help", pythonpath=path)
    assert "fakes-hello" in helped.stdout
    hello = cli("fakes-hello", pythonpath=path)
    assert hello.returncode == 0 and hello.stdout.strip() == "hello from gc-fakes"


def test_version_and_console_script(cli):
    assert cli("--version").stdout.strip() == f"guardchain {__version__}"
    script = shutil.which("guardchain")
    assert script, "the guardchain console script is installed"
    done = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "plugins" in done.stdout


def test_the_documented_example_chain_is_the_fixture_and_runs(cli, fixture_sites, tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    example = repo / "tests" / "fixtures" / "chains" / "example.yaml"
    assert example.read_text() in (repo / "docs" / "chains.md").read_text()
    result = cli(
        "run",
        str(example),
        "--out",
        str(tmp_path / "run"),
        "--format",
        "json",
        pythonpath=fixture_sites.pythonpath(GOOD),
    )
    assert result.returncode == 0, result.stderr
    record = result.json()
    assert [s["id"] for s in record["steps"]] == ["baseline", "1-fake_norm", "2-fake_scale", "edited"]
    doubled = tmp_path / "doubled.yaml"
    doubled.write_text(example.read_text().replace("factor: 1.2", "factor: 2.0"))
    result = cli(
        "run",
        str(doubled),
        "--out",
        str(tmp_path / "run2"),
        "--format",
        "json",
        pythonpath=fixture_sites.pythonpath(GOOD),
    )
    assert result.returncode == 1
    record = result.json()
    assert record["status"] == "rolled_back"
    assert record["steps"][3]["result"]["per_unit"] == record["steps"][0]["result"]["per_unit"]
