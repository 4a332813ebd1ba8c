"""``invariants``: facts about the model that an edit must not break, each violation naming the parameter.

Checked after the edit against what ``prepare`` recorded on the baseline:

1. the same parameter names, each with the same **shape** and **dtype**;
2. every parameter and floating buffer **finite** (no NaN, no ±inf);
3. **tied** parameters (the adapter's ``tied`` groups, and any names sharing storage in the baseline) still share
   storage, or at least hold bit-equal values;
4. **no parameter changed outside the declared scope**: the edit plan's targets, names tied to them, and
   parameters an earlier guard of this edit announced it corrects (``context.corrected``, filled by
   ``context.will_change_weights``). Change means a different SHA-256 of the raw bytes. In compare mode
   (``context.edit_plan is None``) there is no declared scope and this check is skipped (``details.scope_checked``);
5. the subject's **log-probabilities on a fixed probe batch** (the first ``probe_tokens`` tokens of the first
   preview window, or seeded ids without data) are finite at every scored position.

Any violation is a ``fail`` in gate mode (``warn`` in monitor mode): there is no statistical threshold, so no
false-positive rate to calibrate; a null edit passes by construction (``calibration.md`` measures it anyway).

Cost: SHA-256 of every distinct storage at ``prepare`` (about 0.3 s for SmolLM2-135M's 540 MB), computed once
per run for the same weights: a second ``invariants`` of the chain reuses the first one's digests through the run
memo (:func:`baseline_digests`); after the edit, SHA-256 of the out-of-scope storages (always fresh: that is the
check); one finite-sum reduction per tensor; one forward pass of ``probe_tokens`` tokens. Nothing is corrected, so
there are never actions.

Measurement and decision are separate: this module records the evidence (what changed, by kind); the findings,
status and counts come from the pure :func:`guardchain.guards.invariants_decide.build_report`, which
``guardchain verify`` re-runs on the recorded evidence.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle
from guardchain.core.results import GuardMode, GuardReport
from guardchain.guards.capture import model_sketch
from guardchain.guards.common import (
    classifier_only,
    model_outputs,
    preview_rows,
    require,
    resolve_adapter,
    torch_model,
)
from guardchain.guards.invariants_config import InvariantsConfig
from guardchain.guards.invariants_decide import InvariantsEvidence, build_report, thresholds
from guardchain.guards.linalg import count_nonfinite, is_finite
from guardchain.guards.runstate import run_state

NAME = "invariants"


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's raw bytes (any dtype, any device), with its dtype and shape."""
    data = tensor.detach()
    if data.device.type != "cpu":
        data = data.cpu()
    raw = data.contiguous().reshape(-1).view(torch.uint8).numpy()
    h = hashlib.sha256(f"{data.dtype}|{tuple(data.shape)}|".encode())
    h.update(memoryview(raw))  # type: ignore[arg-type]
    return h.hexdigest()


def tensor_digests(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """:func:`tensor_digest` of each tensor, hashed on up to 4 threads (hashlib releases the GIL on large buffers,
    so the digests of a model's parameters take about half the time on two free cores)."""
    workers = max(1, min(4, os.cpu_count() or 1))
    if workers == 1 or len(tensors) < 2:
        return {name: tensor_digest(t) for name, t in tensors.items()}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(tensors, pool.map(tensor_digest, tensors.values()), strict=True))


def baseline_digests(
    model: torch.nn.Module, distinct: Mapping[str, torch.Tensor], context: RunContext
) -> dict[str, str]:
    """:func:`tensor_digests` of ``distinct`` (the model's distinct storages), computed once per run for the same
    weights: memoised in the run memo under the model's value sketch (:func:`guardchain.guards.capture.model_sketch`)
    and every parameter's storage address and torch version counter (bumped by every in-place write), so the key
    changes whenever the weights could have changed; the canonical chain's second ``invariants`` reuses the first's.
    """
    versions = tuple(
        (name, p.data_ptr(), int(getattr(p, "_version", -1)), tuple(p.shape), str(p.dtype))
        for name, p in model.named_parameters(remove_duplicate=False)
    )
    key = ("sha256", model_sketch(model), versions, tuple(distinct))
    memo = run_state(context).memo
    if key not in memo:
        memo[key] = tensor_digests(distinct)
    return dict(memo[key])


@dataclass
class _Snapshot:
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    storage: dict[str, int]
    digests: dict[str, str]
    tied: list[tuple[str, ...]]
    nonfinite: list[str] = field(default_factory=list)


class InvariantsGuard:
    """The ``invariants`` guard (see the module docstring)."""

    def __init__(self, config: InvariantsConfig | None = None) -> None:
        self.config = config if config is not None else InvariantsConfig()
        self.mode = GuardMode(self.config.mode)
        self.thresholds = thresholds(self.config)
        self._baseline: _Snapshot | None = None
        self._report: GuardReport | None = None

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Record names, shapes, dtypes, storage sharing and SHA-256 digests of every parameter of the baseline."""
        model = torch_model(baseline)
        adapter = resolve_adapter(baseline, context)
        structure = adapter.describe(baseline)
        shapes: dict[str, tuple[int, ...]] = {}
        dtypes: dict[str, str] = {}
        storage: dict[str, int] = {}
        first: dict[int, str] = {}
        distinct: dict[str, torch.Tensor] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            shapes[name] = tuple(param.shape)
            dtypes[name] = str(param.dtype)
            ptr = param.data_ptr()
            storage[name] = ptr
            if ptr == 0 or ptr not in first:
                first.setdefault(ptr, name)
                distinct[name] = param
        hashed = baseline_digests(model, distinct, context)
        digests = {name: hashed[name] if name in hashed else hashed[first[storage[name]]] for name in shapes}
        groups: dict[int, list[str]] = {}
        for name, ptr in storage.items():
            if ptr != 0:
                groups.setdefault(ptr, []).append(name)
        tied = {tuple(sorted(g)) for g in structure.tied} | {tuple(sorted(g)) for g in groups.values() if len(g) > 1}
        nonfinite = [name for name, p in model.named_parameters() if not is_finite(p)]
        self._baseline = _Snapshot(shapes, dtypes, storage, digests, sorted(tied), nonfinite)
        self._report = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Check the subject against the baseline record, record what was found and decide
        (:func:`guardchain.guards.invariants_decide.build_report`)."""
        require(self._baseline is not None, "invariants.after_edit called before prepare")
        assert self._baseline is not None
        base = self._baseline
        model = torch_model(subject)
        params = dict(model.named_parameters(remove_duplicate=False))
        shape_changed: list[dict[str, object]] = []
        dtype_changed: list[dict[str, object]] = []
        comparable: list[str] = []
        for name in sorted(set(params) & set(base.shapes)):
            param = params[name]
            if tuple(param.shape) != base.shapes[name]:
                shape_changed.append({"name": name, "base": list(base.shapes[name]), "subject": list(param.shape)})
            elif str(param.dtype) != base.dtypes[name]:
                dtype_changed.append({"name": name, "base": base.dtypes[name], "subject": str(param.dtype)})
            else:
                comparable.append(name)
        scope_checked = context.edit_plan is not None
        scope = self._scope(context) if scope_checked else None
        violations = {
            "missing": sorted(set(base.shapes) - set(params)),
            "added": sorted(set(params) - set(base.shapes)),
            "shape_changed": shape_changed,
            "dtype_changed": dtype_changed,
            "nonfinite": self._nonfinite(model),
            "tie_broken": self._ties(params),
            "out_of_scope": self._out_of_scope(params, comparable, scope) if scope is not None else [],
        }
        probe: dict[str, object] = {"checked": False}
        if self.config.check_logits:
            probe = self._probe(subject, context)
        evidence = InvariantsEvidence.model_validate(
            {
                "parameters": len(params),
                "scope_checked": scope_checked,
                "declared_scope": sorted(scope) if scope is not None else None,
                "tied_groups": [list(g) for g in base.tied],
                "baseline_nonfinite": list(base.nonfinite),
                "violations": violations,
                "probe": probe,
            }
        )
        self._report = build_report(evidence, self.config)

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "invariants.finalize called before after_edit")
        assert self._report is not None
        return self._report

    # -- checks -----------------------------------------------------------------------------------------------

    @staticmethod
    def _nonfinite(model: torch.nn.Module) -> list[dict[str, object]]:
        tensors = [(n, p) for n, p in model.named_parameters()] + [
            (f"buffer:{n}", b) for n, b in model.named_buffers() if b.dtype.is_floating_point
        ]
        return [
            {"name": name, "nonfinite": count_nonfinite(tensor), "numel": tensor.numel()}
            for name, tensor in tensors
            if not is_finite(tensor)
        ]

    def _ties(self, params: Mapping[str, torch.Tensor]) -> list[dict[str, object]]:
        assert self._baseline is not None
        found: list[dict[str, object]] = []
        for group in self._baseline.tied:
            members = [params[n] for n in group if n in params]
            if len(members) < 2:
                continue
            first = members[0]
            for name, other in zip(group[1:], members[1:], strict=False):
                if other.data_ptr() == first.data_ptr() and other.shape == first.shape:
                    continue
                if other.shape == first.shape and other.dtype == first.dtype and torch.equal(other, first):
                    continue
                found.append({"name": name, "tied_to": group[0]})
        return found

    def _scope(self, context: RunContext) -> set[str]:
        """The plan's targets and the parameters guards announced (``context.corrected``), with every name tied to
        them or sharing their storage in the baseline."""
        assert self._baseline is not None and context.edit_plan is not None
        declared = set(context.edit_plan.targets) | set(context.corrected)
        for group in self._baseline.tied:
            if declared & set(group):
                declared |= set(group)
        ptrs = {self._baseline.storage.get(n) for n in declared}
        declared |= {n for n, ptr in self._baseline.storage.items() if ptr in ptrs}
        return declared

    def _out_of_scope(self, params: Mapping[str, torch.Tensor], names: list[str], scope: set[str]) -> list[str]:
        assert self._baseline is not None
        outside = [name for name in names if name not in scope]
        by_ptr: dict[int, str] = {}
        for name in outside:
            by_ptr.setdefault(params[name].data_ptr(), name)
        hashed = tensor_digests({name: params[name] for name in by_ptr.values()})
        changed = {name for name, digest in hashed.items() if digest != self._baseline.digests[name]}
        return [name for name in outside if by_ptr[params[name].data_ptr()] in changed]

    def _probe(self, subject: ModelHandle, context: RunContext) -> dict[str, object]:
        adapter = resolve_adapter(subject, context)
        structure = adapter.describe(subject)
        rows = preview_rows(context, subject, structure, count=1, tokens=self.thresholds.probe_tokens)
        # the second invariants of a chain usually sees the same weights: reuse the count (a pure function of them)
        key = ("probe", model_sketch(torch_model(subject)), rows.digest())
        memo = run_state(context).memo
        if key not in memo:
            batch = {"input_ids": [list(r) for r in rows.rows], "attention_mask": [[1] * len(r) for r in rows.rows]}
            output = "class_logits" if classifier_only(adapter, subject) else "token_logprobs"
            scored = torch.as_tensor(model_outputs(adapter, subject, batch))
            if output == "token_logprobs":
                scored = scored[:, 1:]  # position 0 has no context: NaN by contract
            memo[key] = (int((~torch.isfinite(scored)).sum()), int(scored.numel()), output)
        bad, numel, output = memo[key]
        return {"checked": True, "nonfinite": bad, "scored": numel, "output": output, **rows.describe()}
