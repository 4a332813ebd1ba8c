"""What a capability's results must satisfy: the one set of rules that the runtime enforces and the conformance kit
(:mod:`guardchain.testing`) asserts.

Each function returns the problems of one result (empty when it conforms), coded ``GC-CAPABILITY-RESULT`` and
worded from ``label`` (how errors name the capability, e.g. ``"metric 'ppl' (plugin metrics, guardchain-metrics
0.1.0)"``). The kernel runs them on every result it receives; the kit's contract tests assert that they return
nothing, so a plugin that passes the kit is never refused at run time for a rule the kit did not check.

Type checks (a guard returning something that is not a :class:`~guardchain.core.results.GuardReport`) come first
in each function, so that callers need no separate ``isinstance``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from guardchain.core.errors import ErrorCode, Problem
from guardchain.core.handles import ModelHandle, ModelStructure
from guardchain.core.results import EditPlan, EditReport, GuardReport, MetricResult

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _problem(label: str, method: str, what: str, path: str) -> Problem:
    return Problem(ErrorCode.CAPABILITY_RESULT, f"{label} {what} (from {method})", path=path)


def _wrong_type(value: Any, cls: type, label: str, method: str, path: str) -> list[Problem]:
    if isinstance(value, cls):
        return []
    return [_problem(label, method, f"returned {type(value).__name__}, not {cls.__name__}", path)]


def _names(label: str, method: str, field: str, got: str, names: Sequence[str], path: str) -> list[Problem]:
    if got in names:
        return []
    return [_problem(label, method, f"returned a result whose {field} is {got!r}, not {names[0]!r}", path)]


def handle_problems(handle: Any, ref: str, names: Sequence[str], label: str, path: str = "") -> list[Problem]:
    """An adapter's ``load(ref, context)``: a :class:`ModelHandle` for ``ref`` whose ``adapter`` is one of ``names``
    (the registered name first, then other accepted spellings such as the qualified name)."""
    problems = _wrong_type(handle, ModelHandle, label, "load", path)
    if problems:
        return problems
    problems += _names(label, "load", "adapter", handle.adapter, names, path)
    if handle.ref != ref:
        problems.append(_problem(label, "load", f"returned a handle for {handle.ref!r}, not {ref!r}", path))
    return problems


def structure_problems(structure: Any, label: str, path: str = "") -> list[Problem]:
    """An adapter's ``describe(handle)``: at least one block, unique weight names, positive integer dimensions."""
    problems = _wrong_type(structure, ModelStructure, label, "describe", path)
    if problems:
        return problems
    if not structure.blocks:
        problems.append(_problem(label, "describe", "described a model with no block", path))
    names = [w.name for w in structure.weights]
    repeated = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if repeated:
        problems.append(_problem(label, "describe", f"described weights twice: {', '.join(repeated[:5])}", path))
    bad = [w.name for w in structure.weights if not all(isinstance(d, int) and d > 0 for d in w.shape)]
    if bad:
        problems.append(_problem(label, "describe", f"gave non-positive dimensions for {', '.join(bad[:5])}", path))
    return problems


def digest_problems(digest: Any, label: str, method: str, path: str = "") -> list[Problem]:
    """A SHA-256 digest (``weights_digest``, a dataset's ``fingerprint``): 64 lowercase hex characters."""
    if isinstance(digest, str) and _HEX64.match(digest):
        return []
    shown = repr(digest) if len(repr(digest)) <= 80 else repr(digest)[:77] + "..."
    return [_problem(label, method, f"returned {shown}, not a SHA-256 hex digest (64 lowercase hex)", path)]


def edit_plan_problems(
    plan: Any, names: Sequence[str], structure: ModelStructure | None, label: str, path: str = ""
) -> list[Problem]:
    """An edit's ``plan``: an :class:`EditPlan` naming this edit, targeting weights the structure has."""
    problems = _wrong_type(plan, EditPlan, label, "plan", path)
    if problems:
        return problems
    problems += _names(label, "plan", "edit", plan.edit, names, path)
    if structure is not None:
        known = {w.name for w in structure.weights}
        unknown = [t for t in plan.targets if t not in known]
        if unknown:
            problems.append(
                _problem(label, "plan", f"targets weights the model does not have: {', '.join(unknown[:5])}", path)
            )
    return problems


def edit_report_problems(
    report: Any, plan: EditPlan, names: Sequence[str], label: str, path: str = ""
) -> list[Problem]:
    """An edit's ``apply``: an :class:`EditReport` naming this edit, changing only what the plan targets."""
    problems = _wrong_type(report, EditReport, label, "apply", path)
    if problems:
        return problems
    problems += _names(label, "apply", "edit", report.edit, names, path)
    outside = [m for m in report.modules_changed if m not in set(plan.targets)]
    if outside:
        problems.append(
            _problem(
                label, "apply", f"reports changing weights its plan did not target: {', '.join(outside[:5])}", path
            )
        )
    unlisted = [m for m in report.per_module if m not in set(report.modules_changed)]
    if unlisted:
        problems.append(
            _problem(
                label, "apply", f"has per-module statistics for unchanged weights: {', '.join(unlisted[:5])}", path
            )
        )
    return problems


def guard_report_problems(report: Any, names: Sequence[str], label: str, path: str = "") -> list[Problem]:
    """A guard's ``finalize``: a :class:`GuardReport` naming this guard (a report for another guard would be
    counted against the wrong guard)."""
    problems = _wrong_type(report, GuardReport, label, "finalize", path)
    if problems:
        return problems
    return _names(label, "finalize", "guard", report.guard, names, path)


def metric_result_problems(result: Any, names: Sequence[str], label: str, path: str = "") -> list[Problem]:
    """A metric's ``compute``: a :class:`MetricResult` naming this metric, with a finite value and at least one
    unit (a metric that cannot compute a finite value raises a coded error, such as ``GC-MODEL-NONFINITE``,
    instead of returning NaN)."""
    problems = _wrong_type(result, MetricResult, label, "compute", path)
    if problems:
        return problems
    problems += _names(label, "compute", "metric", result.metric, names, path)
    if not math.isfinite(result.value):
        problems.append(_problem(label, "compute", f"returned the non-finite value {result.value}", path))
    if not result.unit_ids:
        problems.append(_problem(label, "compute", "returned a result with no evaluation unit (unit_ids)", path))
    return problems


def detachable_problems(detachable: Any, label: str, path: str = "") -> list[Problem]:
    """An intervention's ``attach``: an object with a callable ``remove()``."""
    if callable(getattr(detachable, "remove", None)):
        return []
    return [_problem(label, "attach", f"returned {type(detachable).__name__}, which has no remove()", path)]
