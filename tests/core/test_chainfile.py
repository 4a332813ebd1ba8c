"""Reading chain files: hostile files are refused with stable codes, never a hang, a traceback or a silent guess."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from guardchain.core.chainfile import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, read_chain_file
from guardchain.core.config import validate_chain
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.registry import Registry

VALID = "name: ok\nmodel: {ref: 'fake:2'}\nsteps: [{metric: fake_score}]\n"


@contextmanager
def watchdog(seconds: int = 20) -> Iterator[None]:
    """Fail instead of hanging (a FIFO or /dev/zero used to block the command forever)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(path: Path) -> GuardchainError:
    with watchdog(), pytest.raises(GuardchainError) as caught:
        read_chain_file(path)
    return caught.value


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nname: bomb\nsteps: [{{metric: fake_score}}]\nmodel: {{ref: *a{levels - 1}}}\n"


def test_a_valid_file_parses_to_plain_data(tmp_path: Path) -> None:
    assert read_chain_file(write(tmp_path, "c.yaml", VALID))["name"] == "ok"


def test_a_billion_laughs_alias_bomb_is_refused(tmp_path: Path) -> None:
    # 9^9 = 387 million strings once expanded, from a file of a few hundred bytes.
    exc = refused(write(tmp_path, "bomb.yaml", alias_bomb()))
    assert exc.code == ErrorCode.CONFIG_TOO_LARGE
    assert str(MAX_VALUES) in exc.problems[0].message


def test_a_merge_key_bomb_is_refused_or_defused(tmp_path: Path) -> None:
    """PyYAML up to 6.0.3 copies every merged pair (10^8 here), which the loader refuses; 6.0.4 merges without the
    copies, so the same file parses fast into a small mapping. Either way: no hang, nothing large."""
    lines = ["b0: &b0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}"]
    for level in range(1, 9):
        lines.append(f"b{level}: &b{level} {{<<: [" + ", ".join([f"*b{level - 1}"] * 10) + "]}")
    path = write(tmp_path, "merge.yaml", "\n".join(lines) + "\nname: m\nsteps: []\n")
    with watchdog():
        try:
            data = read_chain_file(path)
        except GuardchainError as exc:
            assert exc.code == ErrorCode.CONFIG_TOO_LARGE
            return
    assert all(len(data[f"b{level}"]) == 10 for level in range(9))


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    exc = refused(write(tmp_path, "loop.yaml", "name: x\nsteps: &s [*s]\n"))
    assert exc.code == ErrorCode.CONFIG_TOO_LARGE
    assert "itself" in exc.problems[0].message


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", '{"name": "x", "steps": ' + "[" * 5000 + "]" * 5000 + "}"),
        ("deep.yaml", "name: x\nsteps: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("deep.toml", 'name = "x"\nsteps = ' + "[" * 5000 + "]" * 5000 + "\n"),
        ("deep65.json", '{"steps": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"),
    ],
    ids=["json", "yaml", "toml", "just-over-the-limit"],
)
def test_deep_nesting_is_refused_in_every_format(tmp_path: Path, name: str, text: str) -> None:
    exc = refused(write(tmp_path, name, text))
    assert exc.code == ErrorCode.CONFIG_TOO_LARGE
    assert str(MAX_DEPTH) in exc.problems[0].message


def test_nesting_within_the_limit_is_fine(tmp_path: Path) -> None:
    depth = MAX_DEPTH - 2  # the top-level mapping and 'steps' itself are two levels
    data = read_chain_file(write(tmp_path, "ok.json", '{"steps": ' + "[" * depth + "]" * depth + "}"))
    assert "steps" in data


def test_a_file_over_one_mebibyte_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = write(tmp_path, "big.yaml", VALID + "#" * MAX_FILE_BYTES)
    assert refused(path).code == ErrorCode.CONFIG_TOO_LARGE


@pytest.mark.parametrize(
    ("name", "text", "path"),
    [
        ("dup.json", '{"name": "a", "name": "b", "steps": []}', "name"),
        ("dup-deep.json", '{"name": "a", "steps": [{"metric": "x", "metric": "y"}]}', "steps[0].metric"),
        ("dup.yaml", "name: a\nname: b\nsteps: []\n", ""),
        ("dup-deep.yaml", "name: a\nsteps:\n  - metric: x\n    metric: y\n", ""),
    ],
)
def test_a_repeated_key_is_an_error_not_last_wins(tmp_path: Path, name: str, text: str, path: str) -> None:
    exc = refused(write(tmp_path, name, text))
    assert exc.code == ErrorCode.CONFIG_DUPLICATE_KEY
    if path:
        assert exc.problems[0].path == path
    else:
        assert "line" in exc.problems[0].message  # YAML gives the place


def test_a_repeated_key_in_toml_is_a_parse_error(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "dup.toml", 'name = "a"\nname = "b"\n')).code == ErrorCode.CONFIG_PARSE


def test_yaml_merge_keys_may_override_without_being_duplicates(tmp_path: Path) -> None:
    text = "base: &b {ref: 'fake:1', adapter: fake_lm}\nname: m\nmodel: {<<: *b, ref: 'fake:2'}\nsteps: []\n"
    assert read_chain_file(write(tmp_path, "merge.yaml", text))["model"] == {"ref": "fake:2", "adapter": "fake_lm"}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"name": "x\\ud800", "steps": []}', "name"),
        ('{"name": "x", "steps": [{"metric": "m", "config": {"k\\udfff": 1}}]}', "steps[0].config.k\udfff"),
    ],
)
def test_a_lone_surrogate_in_json_is_refused_with_its_path(tmp_path: Path, text: str, path: str) -> None:
    exc = refused(write(tmp_path, "s.json", text))
    assert exc.code == ErrorCode.CONFIG_PARSE
    assert exc.problems[0].path == path
    assert "surrogate" in exc.problems[0].message


def test_a_nul_character_is_refused(tmp_path: Path) -> None:
    exc = refused(write(tmp_path, "nul.json", '{"name": "x", "output": {"dir": "a\\u0000b"}, "steps": []}'))
    assert exc.code == ErrorCode.CONFIG_PARSE
    assert exc.problems[0].path == "output.dir"


def test_a_directory_is_not_a_chain_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    assert refused(tmp_path / "dir.yaml").code == ErrorCode.CONFIG_NOT_A_FILE


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    exc = refused(fifo)
    assert exc.code == ErrorCode.CONFIG_NOT_A_FILE
    assert "FIFO" in exc.problems[0].message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused_without_reading_forever(tmp_path: Path) -> None:
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    exc = refused(link)
    assert exc.code == ErrorCode.CONFIG_NOT_A_FILE
    assert "character device" in exc.problems[0].message


def test_a_missing_file_and_an_unknown_extension_keep_their_codes(tmp_path: Path) -> None:
    assert refused(tmp_path / "missing.yaml").code == ErrorCode.CONFIG_NOT_FOUND
    assert refused(write(tmp_path, "chain.txt", VALID)).code == ErrorCode.CONFIG_FORMAT
    assert refused(write(tmp_path, "list.json", "[1, 2]")).code == ErrorCode.CONFIG_PARSE


@pytest.fixture
def registry(fakes_module: object) -> Registry:
    return Registry.from_plugins({"fakes": fakes_module})


@pytest.mark.parametrize("kind", ["guard", "edit", "metric", "intervention"])
def test_an_empty_capability_name_is_a_config_error(registry: Registry, kind: str) -> None:
    step = {kind: "", **({"sites": ["blocks[0].mlp.output"]} if kind == "intervention" else {})}
    with pytest.raises(GuardchainError) as caught:
        validate_chain({"name": "x", "model": {"ref": "fake:2"}, "steps": [step]}, registry)
    assert [(p.code, p.path) for p in caught.value.problems] == [(ErrorCode.CONFIG_VALUE, f"steps[0].{kind}")]


def test_an_empty_adapter_name_is_a_config_error(registry: Registry) -> None:
    raw = {"name": "x", "model": {"ref": "fake:2", "adapter": ""}, "steps": [{"metric": "fake_score"}]}
    with pytest.raises(GuardchainError) as caught:
        validate_chain(raw, registry)
    assert caught.value.problems[0].path == "model.adapter"


def test_the_chain_digest_survives_every_accepted_file(tmp_path: Path, registry: Registry) -> None:
    data = {"name": "x", "model": {"ref": "fake:2"}, "steps": [{"metric": "fake_score", "config": {"scale": 2.0}}]}
    path = write(tmp_path, "c.json", json.dumps(data, ensure_ascii=False))
    chain = validate_chain(read_chain_file(path), registry)
    assert len(chain.digest) == 64


@pytest.mark.dists
@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero")
def test_doctor_exits_1_and_run_exits_2_on_paths_that_are_not_files(cli, fixture_sites, tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    write(tmp_path, "bomb.yaml", alias_bomb())
    path = fixture_sites.pythonpath(["gc-fakes"])
    for name in ("dir.yaml", "pipe.yaml", "zero.yaml", "bomb.yaml"):
        target = str(tmp_path / name)
        doctor = cli("doctor", target, pythonpath=path)
        run = cli("run", target, "--out", str(tmp_path / "out"), pythonpath=path)
        assert (doctor.returncode, run.returncode) == (1, 2), (name, doctor, run)
        for result in (doctor, run):
            assert "Traceback" not in result.stdout + result.stderr
            assert "GC-CONFIG-" in result.stdout + result.stderr
