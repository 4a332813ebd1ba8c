"""Loading errors say what is wrong: a broken config.json, a missing tokenizer, an unreachable hub, the network off."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from guardchain.adapters import hub
from guardchain.core.config import validate_chain
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.runner import ChainRunner

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


@pytest.fixture
def broken_config(tiny_dirs: dict[str, Path], tmp_path: Path) -> Path:
    directory = tmp_path / "broken"
    shutil.copytree(tiny_dirs["gpt2"], directory)
    text = (directory / "config.json").read_text()
    (directory / "config.json").write_text(text[: len(text) // 2])  # truncated, as by a full disk
    return directory


@pytest.mark.parametrize("adapter", ["hf_gpt2", "hf_auto"])
def test_a_broken_config_json_is_named(
    make_adapter: Any, run_context: RunContext, broken_config: Path, adapter: str
) -> None:
    with pytest.raises(GuardchainError) as caught:
        make_adapter(adapter).load(str(broken_config), run_context)
    problem = caught.value.problems[0]
    assert problem.code == "GC-HF-LOAD-FAILED"
    assert "config.json" in problem.message and "cannot be read" in problem.message
    assert "architecture" not in problem.message


@pytest.fixture
def without_tokenizer(tiny_model_saver: Any, tmp_path: Path) -> Path:
    directory = tiny_model_saver("gpt2", tmp_path / "no-tokenizer")
    for name in TOKENIZER_FILES:
        (directory / name).unlink(missing_ok=True)
    return directory


def test_a_checkpoint_without_tokenizer_files_has_no_tokenizer(
    make_adapter: Any, run_context: RunContext, without_tokenizer: Path
) -> None:
    # transformers builds an empty GPT-2 tokenizer here instead of failing; it must not pass for a tokenizer.
    handle = make_adapter("hf_gpt2").load(str(without_tokenizer), run_context)
    assert handle.tokenizer is None


def test_a_missing_tokenizer_is_named_not_called_zero_windows(without_tokenizer: Path, tmp_path: Path) -> None:
    registry = Registry.discover(RegistrySettings())
    raw = {
        "name": "t",
        "model": {"ref": str(without_tokenizer)},
        "data": {"dataset": "kjv_excerpt", "config": {"seq_len": 16, "n_preview": 2, "n_final": 4}},
        "steps": [{"metric": "ppl"}],
    }
    record = ChainRunner(registry).run(validate_chain(raw, registry), out_dir=tmp_path / "run")
    [problem] = record.problems
    assert problem.code == "GC-DATA-NO-TOKENIZER" and problem.path == "data"
    assert f"the model {str(without_tokenizer)!r} has no tokenizer" in problem.message
    assert "tokenizer.save_pretrained" in problem.hint
    assert "windows" not in problem.message


def test_an_unreachable_hub_is_a_coded_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(GuardchainError) as caught:
        hub.fetch_hub_model("acme/tiny-gpt2", revision="v1", cache_dir=tmp_path / "hub")
    problem = caught.value.problems[0]
    assert problem.code == "GC-HF-LOAD-FAILED"
    assert problem.message.startswith("cannot download 'acme/tiny-gpt2' at revision 'v1' from the Hugging Face hub:")
    assert "GUARDCHAIN_ALLOW_NETWORK" in problem.hint
    assert caught.value.cause is not None


def test_offline_a_hub_id_is_refused_before_anything_runs_whoever_names_the_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GUARDCHAIN_ALLOW_NETWORK", raising=False)
    registry = Registry.discover(RegistrySettings())
    for model in ({"ref": "acme/tiny-gpt2"}, {"ref": "acme/tiny-gpt2", "adapter": "hf_gpt2"}):
        raw = {"name": "t", "model": model, "steps": [{"metric": "ppl"}]}
        with pytest.raises(GuardchainError) as caught:
            ChainRunner(registry).prepare(validate_chain(raw, registry))
        codes = [(str(p.code), p.path) for p in caught.value.problems]
        assert codes == [("GC-HF-NETWORK-DISABLED", "model.ref")], codes


def test_doctor_and_run_on_hub_ids_give_coded_errors(cli: Any, tmp_path: Path) -> None:
    chain = tmp_path / "hub.yaml"
    chain.write_text("name: hub\nmodel: {ref: acme/tiny-gpt2}\nsteps: [{metric: ppl}]\n")
    offline = cli("doctor", str(chain))
    assert offline.returncode == 1
    assert offline.stdout.startswith("GC-HF-NETWORK-DISABLED model.ref: 'acme/tiny-gpt2' is a hub id")
    unreachable = cli(
        "run",
        str(chain),
        "--out",
        str(tmp_path / "o"),
        env={"GUARDCHAIN_ALLOW_NETWORK": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "GUARDCHAIN_CACHE": str(tmp_path)},
    )
    assert unreachable.returncode == 1
    assert "Traceback" not in unreachable.stdout + unreachable.stderr
    assert "GC-HF-LOAD-FAILED model: adapter 'hf_auto' (plugin hf" in unreachable.stdout
    assert "cannot download 'acme/tiny-gpt2'" in unreachable.stdout
