"""Certification reaches the CLI exactly as a third party's commands do, and names first-party capabilities by
their qualified names so that a third party's same-named guard never silently takes part."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from guardchain.certify.pipeline import prepare
from guardchain.certify.request import CertifyRequest
from guardchain.core import hookimpl
from guardchain.core.errors import GuardchainError
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

pytestmark = pytest.mark.members


def guardchain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardchain.core", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_certify_and_verify_come_from_the_member_through_the_command_hook():
    listed = guardchain("plugins", "list", "--format", "json")
    rows = {row["name"]: row for row in __import__("json").loads(listed.stdout)["plugins"]}
    assert rows["certify"]["distribution"] == "guardchain-certify" and rows["certify"]["status"] == "ok"
    helped = guardchain("--help")
    assert "certify" in helped.stdout and "verify" in helped.stdout
    certify_help = guardchain("certify", "--help")
    assert certify_help.returncode == 0 and "--baseline" in certify_help.stdout
    verify_help = guardchain("verify", "--help")
    assert "unsigned certificate cannot prove" in " ".join(verify_help.stdout.split())


def test_without_the_member_the_commands_are_gone_with_a_hint():
    done = guardchain("certify", "--baseline", "tiny-gpt2", env={"GUARDCHAIN_DISABLE_PLUGINS": "certify"})
    assert done.returncode == 2 and "guardchain-certify" in done.stderr and "Traceback" not in done.stderr
    assert (
        "certify"
        not in guardchain("--help", env={"GUARDCHAIN_DISABLE_PLUGINS": "certify"}).stdout.split("Commands:")[-1]
    )


class Impostor:
    def __init__(self, config: Any) -> None:
        raise AssertionError("a third party's 'spectral' must never be created by the default chain")

    def prepare(self, baseline: Any, context: Any) -> None: ...

    def after_edit(self, subject: Any, context: Any) -> None: ...

    def finalize(self, context: Any) -> Any: ...


@hookimpl
def guardchain_register_guards(registrar: Any) -> None:
    from pydantic import BaseModel, ConfigDict

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    registrar.register(
        "spectral", summary="a third party's guard of the same name", config_model=Config, factory=Impostor
    )


def test_a_third_party_guard_named_spectral_does_not_break_or_join_the_default_chain(tmp_path):
    registry = Registry.discover()
    plugin = types.ModuleType("acme_guards")
    plugin.GUARDCHAIN_PLUGIN_API = 1  # type: ignore[attr-defined]
    plugin.guardchain_register_guards = guardchain_register_guards  # type: ignore[attr-defined]
    registry.add_plugin("acme_guards", plugin)
    assert registry.plugin("acme_guards").status == "conflict"
    prepared = prepare(CertifyRequest(baseline="tiny-gpt2", out=Path(tmp_path / "never")), registry)
    guards = [c for c in prepared.prepared.steps if c.spec.kind == CapabilityKind.GUARD]
    assert {c.spec.distribution for c in guards} == {"guardchain-guards"}
    with pytest.raises(GuardchainError) as caught:
        registry.get_spec(CapabilityKind.GUARD, "spectral")
    problem = caught.value.problems[0]
    assert problem.code == "GC-PLUGIN-CONFLICT" and "distribution:name" in problem.hint


def test_the_readme_documents_every_error_code():
    import re

    from guardchain.certify.codes import DESCRIPTIONS, CertifyErrorCode

    readme = (Path(__file__).resolve().parents[2] / "plugins" / "certify" / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(GC-CERT-[A-Z-]+)`", readme)) == {c.value for c in CertifyErrorCode}
    assert set(DESCRIPTIONS) == set(CertifyErrorCode)
