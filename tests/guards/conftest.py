"""Tiny random-init GPT-2 and Llama checkpoints (built offline, seeded), the packaged tiny GPT-2 with KJV windows,
and run contexts carrying an adapter and token windows, as ``certify`` gives the guards.

The models are the session's shared tiny checkpoints (``tiny_model_dirs`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from guardchain.core.context import RunContext
from guardchain.core.guarded_edit import GuardedEdit, Participant, apply_guarded_edit
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.results import EditPlan, EditReport
from guardchain.core.windows import TokenWindows

pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")

CANONICAL = ("invariants", "spectral", "rmt", "variance", "invariants")


@pytest.fixture(scope="session")
def tiny_dirs(tiny_model_dirs: dict[str, Path]) -> dict[str, Path]:
    """``{"gpt2", "llama"}`` -> a save_pretrained directory (the session's shared tiny causal LMs)."""
    return {kind: tiny_model_dirs[kind] for kind in ("gpt2", "llama")}


@pytest.fixture(scope="session")
def guards_registry() -> Registry:
    """Every installed plugin (the HF adapters, data, metrics, edits and this member)."""
    return Registry.discover(RegistrySettings())


def random_windows(
    vocab: int, *, n_preview: int = 6, n_final: int = 2, seq_len: int = 24, seed: int = 0
) -> TokenWindows:
    """Seeded random token windows (content ids below ``vocab``), tagged preview then final."""
    generator = torch.Generator().manual_seed(seed)
    n = n_preview + n_final
    tokens = tuple(tuple(int(t) for t in torch.randint(0, vocab, (seq_len,), generator=generator)) for _ in range(n))
    return TokenWindows(
        ids=tuple(f"random:{i}" for i in range(n)),
        tokens=tokens,
        splits=("preview",) * n_preview + ("final",) * n_final,
        seq_len=seq_len,
        stride=seq_len,
        seed=seed,
        dataset_sha256="0" * 64,
        tokenizer_sha256="0" * 64,
        source="random test windows",
    )


class Loaded:
    """A loaded model with its adapter and a run context that carries both (and windows)."""

    def __init__(self, adapter: Any, handle: Any, context: RunContext, registry: Registry) -> None:
        self.adapter = adapter
        self.handle = handle
        self.context = context
        self.registry = registry

    @property
    def model(self) -> torch.nn.Module:
        return self.handle.model  # type: ignore[no-any-return]

    def param(self, name: str) -> torch.Tensor:
        return self.model.get_parameter(name)

    def guard(self, name: str, **config: Any) -> Any:
        return self.registry.create("guard", name, config).instance

    def chain(self, names: tuple[str, ...] = CANONICAL, **config: Any) -> list[Any]:
        return [self.guard(n, **config) for n in names]

    def prepare(self, guards: list[Any]) -> None:
        for guard in guards:
            guard.prepare(self.handle, self.context)

    def finish(self, guards: list[Any], targets: tuple[str, ...] | None) -> list[Any]:
        """Declare the edit's plan (None: compare mode), run after_edit in order, then finalize each."""
        self.context.edit_plan = None if targets is None else EditPlan(edit="test", targets=targets)
        for guard in guards:
            guard.after_edit(self.handle, self.context)
        return [guard.finalize(self.context) for guard in guards]

    def quantize(self, bits: int) -> tuple[str, ...]:
        edit = self.registry.create("edit", "quant_rtn", {"bits": bits}).instance
        plan = edit.plan(self.handle, self.adapter.describe(self.handle))
        edit.apply(self.handle, plan)
        return plan.targets


@pytest.fixture
def load(guards_registry: Registry, tiny_dirs: dict[str, Path], tmp_path: Path) -> Callable[..., Loaded]:
    """``load("gpt2")`` / ``load("llama")`` / ``load("tiny-gpt2")``: a fresh model, adapter and context with windows
    (random ids for the random-init models, the KJV excerpt's dev-profile windows for the packaged tiny GPT-2)."""

    def do(kind: str, *, data: bool = True) -> Loaded:
        context = RunContext(run_id="guards-test", seed=0, out_dir=tmp_path / "run", registry=guards_registry)
        adapter = guards_registry.create("adapter", "hf_auto", {}).instance
        ref = kind if kind == "tiny-gpt2" else str(tiny_dirs[kind])
        handle = adapter.load(ref, context)
        context.adapter = adapter
        context.handle = handle
        if data and kind == "tiny-gpt2":
            dataset = guards_registry.create(
                "dataset", "kjv_excerpt", {"seq_len": 128, "n_preview": 8, "n_final": 16, "seed": 0}
            ).instance
            context.data = dataset.load(context)
        elif data:
            context.data = random_windows(len(handle.tokenizer))
        return Loaded(adapter, handle, context, guards_registry)

    return do


class ScaleEdit:
    """A declared edit that multiplies parameters by factors (``nan`` writes one NaN instead); its plan's targets
    are exactly the parameters it changes."""

    def __init__(self, factors: dict[str, float]) -> None:
        self.factors = factors

    def plan(self, handle: Any, structure: Any) -> EditPlan:
        return EditPlan(edit="scale", targets=tuple(self.factors))

    def apply(self, handle: Any, plan: EditPlan) -> EditReport:
        with torch.no_grad():
            for name, factor in self.factors.items():
                tensor = handle.model.get_parameter(name)
                if factor != factor:  # NaN: one element
                    tensor.view(-1)[0] = float("nan")
                else:
                    tensor.mul_(factor)
        return EditReport(edit="scale", modules_changed=plan.targets, parameters_changed=len(plan.targets))


@dataclass
class GuardedRun:
    """An edit applied through the kernel's :func:`apply_guarded_edit` under guards, with each report and config as
    the JSON a certificate stores."""

    loaded: Loaded
    edited: GuardedEdit
    names: list[str]
    reports: list[dict[str, Any]]
    configs: list[dict[str, Any]]


def guarded_run(
    registry: Registry, out: Path, edit: Any, guards: list[tuple[str, dict[str, Any]]], *, model: str = "tiny-gpt2"
) -> GuardedRun:
    """Load ``model`` (the packaged tiny GPT-2 with its KJV windows), prepare ``guards`` on it, apply ``edit`` (an
    edit object, or ``("quant_rtn", {"bits": 2})``) through the kernel under them, and keep the rollback data."""
    context = RunContext(run_id="guarded", seed=0, out_dir=out, registry=registry)
    adapter = registry.create("adapter", "hf_auto", {}).instance
    handle = adapter.load(model, context)
    context.adapter, context.handle = adapter, handle
    dataset = registry.create("dataset", "kjv_excerpt", {"seq_len": 128, "n_preview": 8, "n_final": 16, "seed": 0})
    context.data = dataset.instance.load(context)
    if isinstance(edit, tuple):
        editor = Participant.of(registry.create("edit", edit[0], edit[1]), "edit")
    else:
        editor = Participant(edit, "scale", "edit 'scale' (test)", "edit", names=("scale",))
    created = [registry.create("guard", name, config) for name, config in guards]
    for capability in created:
        capability.instance.prepare(handle, context)
    edited = apply_guarded_edit(context, editor, [Participant.of(c, f"guards[{i}]") for i, c in enumerate(created)])
    as_json = [json.loads(json.dumps(r.model_dump(mode="json"))) for r in edited.guard_reports]
    configs = [json.loads(json.dumps(c.config.model_dump(mode="json"))) for c in created]
    return GuardedRun(
        Loaded(adapter, handle, context, registry), edited, [c.spec.name for c in created], as_json, configs
    )
