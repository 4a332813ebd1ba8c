"""The conformance kit on the four guards (tiny random-init GPT-2 and Llama), the ``guards`` plugin distribution,
and the README's lists of codes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from guardchain.core.context import RunContext
from guardchain.guards.codes import DESCRIPTIONS, FINDING_DESCRIPTIONS, FindingCode, GuardErrorCode
from guardchain.testing.contracts import GuardContract, PluginContract

MEMBER = Path(__file__).resolve().parents[2] / "guards"


class _GuardContract(GuardContract):
    """A null edit on a tiny model through each guard, with the context ``certify`` gives guards."""

    model_kind: ClassVar[str]

    @pytest.fixture
    def loaded(self, load: Any) -> Any:
        return load(self.model_kind)

    @pytest.fixture
    def baseline(self, loaded: Any) -> Any:
        return loaded.handle

    @pytest.fixture
    def context(self, loaded: Any) -> RunContext:
        return loaded.context  # type: ignore[no-any-return]


class TestInvariantsGPT2(_GuardContract):
    name = "invariants"
    model_kind = "gpt2"


class TestInvariantsLlama(_GuardContract):
    name = "invariants"
    model_kind = "llama"


class TestSpectralGPT2(_GuardContract):
    name = "spectral"
    model_kind = "gpt2"


class TestSpectralLlama(_GuardContract):
    name = "spectral"
    model_kind = "llama"


class TestRMTGPT2(_GuardContract):
    name = "rmt"
    model_kind = "gpt2"


class TestRMTLlama(_GuardContract):
    name = "rmt"
    model_kind = "llama"


class TestVarianceGPT2(_GuardContract):
    name = "variance"
    model_kind = "gpt2"


class TestVarianceLlama(_GuardContract):
    name = "variance"
    model_kind = "llama"


class TestVarianceMonitorConservative(_GuardContract):
    name = "variance"
    model_kind = "gpt2"

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"mode": "monitor", "tier": "conservative", "max_drift": 0.02}


class TestGuardsPlugin(PluginContract):
    entry_point = "guards"


def test_the_readme_documents_every_code() -> None:
    readme = (MEMBER / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(GC-GUARD-[A-Z-]+)`", readme)) == {c.value for c in GuardErrorCode}
    findings = set(re.findall(r"`((?:INVARIANTS|SPECTRAL|RMT|VARIANCE)-[A-Z-]+)`", readme))
    assert findings == {c.value for c in FindingCode}
    assert set(DESCRIPTIONS) == set(GuardErrorCode)
    assert set(FINDING_DESCRIPTIONS) == set(FindingCode)
