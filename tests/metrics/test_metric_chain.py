"""End to end through the kernel's runner: a text dataset, the reference adapter and ppl in one chain."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from guardchain.core import PLUGIN_API_VERSION, hookimpl
from guardchain.core.config import validate_chain
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner
from guardchain.data.documents import Document, documents_sha256


class NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferencePlugin:
    """Registers the test's reference adapter (an in-memory plugin, as a third party's would be)."""

    GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

    def __init__(self, adapter):
        self.adapter = adapter

    @hookimpl
    def guardchain_register_adapters(self, registrar):
        registrar.register(
            "reference",
            summary="Tiny random-init models for tests.",
            config_model=NoConfig,
            factory=lambda config: self.adapter,
        )


@pytest.fixture
def registry(adapter) -> Registry:
    import guardchain.data.plugin
    import guardchain.metrics.plugin

    plugins = {"data": guardchain.data.plugin, "metrics": guardchain.metrics.plugin, "ref": ReferencePlugin(adapter)}
    return Registry.from_plugins(plugins)


@pytest.fixture
def corpus(tmp_path, adapter):
    words = sorted(w for w in adapter.tokenizer.get_vocab() if not w.startswith("["))
    rng = np.random.default_rng(0)
    texts = {}
    for name in ("a.txt", "b.txt", "c.txt"):
        texts[name] = " ".join(rng.choice(words, size=400))
        (tmp_path / name).write_text(texts[name], encoding="utf-8")
    return texts


def chain(tmp_path, seed=3):
    return {
        "version": 1,
        "name": "ppl-end-to-end",
        "seed": seed,
        "model": {"ref": "tiny-causal:0", "adapter": "reference"},
        "data": {"dataset": "text", "config": {"paths": [str(tmp_path / "*.txt")], "seq_len": 32, "n_final": 6}},
        "steps": [{"metric": "ppl", "id": "final"}, {"metric": "ppl", "id": "preview", "config": {"split": "preview"}}],
    }


def run(registry, raw, out):
    return ChainRunner(registry).run(validate_chain(raw, registry), out_dir=out)


def test_a_chain_loads_the_model_then_the_data_then_measures(registry, corpus, tmp_path):
    record = run(registry, chain(tmp_path), tmp_path / "run1")
    assert record.status == "ok", record.problems
    final, preview = (step.result for step in record.steps)
    assert final["metric"] == preview["metric"] == "ppl"
    assert len(final["unit_ids"]) == 6 and len(preview["unit_ids"]) == 8
    assert not set(final["unit_ids"]) & set(preview["unit_ids"])
    assert all(w == 31.0 for w in final["unit_weights"])
    assert final["details"]["mode"] == "causal"
    assert record.data["fingerprint"] == documents_sha256([Document(n, t) for n, t in sorted(corpus.items())])
    assert final["value"] > 1.0

    again = run(registry, chain(tmp_path), tmp_path / "run2")
    assert [s.result for s in again.steps] == [s.result for s in record.steps]
    other_seed = run(registry, chain(tmp_path, seed=4), tmp_path / "run3")
    assert other_seed.steps[0].result["details"]["windows_digest"] != final["details"]["windows_digest"]
