"""The conformance kit run against ppl and accuracy, and the plugin as installed."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry
from guardchain.core.windows import LabeledTexts
from guardchain.metrics.codes import DESCRIPTIONS, MetricErrorCode
from guardchain.testing import MetricContract, PluginContract

MEMBER = Path(__file__).resolve().parents[2] / "plugins" / "metrics"


class MetricFixtures:
    """The registry from the registration module; a context carrying the reference adapter."""

    @pytest.fixture
    def registry(self) -> Registry:
        import guardchain.metrics.plugin

        return Registry.from_plugins({"metrics": guardchain.metrics.plugin})

    @pytest.fixture
    def context(self, tmp_path, registry, adapter, handle) -> RunContext:
        return RunContext(
            run_id="contract-test", seed=0, out_dir=tmp_path / "run", registry=registry, adapter=adapter, handle=handle
        )


class TestPpl(MetricFixtures, MetricContract):
    name = "ppl"

    @pytest.fixture
    def handle(self, causal):
        return causal

    @pytest.fixture
    def data(self, windows):
        return windows


class TestPseudoPpl(TestPpl):
    @pytest.fixture
    def handle(self, masked):
        return masked


class TestAccuracy(MetricFixtures, MetricContract):
    name = "accuracy"

    @pytest.fixture
    def handle(self, classifier):
        return classifier

    @pytest.fixture
    def data(self):
        texts = ("the model is a list", "a token window", "return the mean loss", "import exp and log")
        return LabeledTexts(
            ids=tuple(f"ex{i}" for i in range(4)), texts=texts, labels=(0, 1, 2, 0), dataset_sha256="0" * 64
        )

    @pytest.fixture
    def config(self):
        return {"batch_size": 3, "max_length": 4}


@pytest.mark.skipif(
    not any(ep.name == "metrics" for ep in entry_points(group="guardchain.plugins")),
    reason="guardchain-metrics is not installed (pip install -e ./plugins/metrics)",
)
class TestMetricsPlugin(PluginContract):
    entry_point = "metrics"


def test_the_readme_documents_every_error_code():
    readme = (MEMBER / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(GC-METRIC-[A-Z-]+)`", readme)) == {c.value for c in MetricErrorCode}
    assert set(DESCRIPTIONS) == set(MetricErrorCode)
