"""The chain runner: resolve every capability first, then run the steps in order and write a run record.

Semantics of a chain (all capabilities are created before anything runs, so a chain that names an unavailable
plugin fails up front with the original cause and nothing half-done):

1. ``model``: the adapter (named, or chosen by ``guardchain_resolve_adapter``) loads ``model.ref``.
2. ``data``: the dataset's ``load`` result becomes ``context.data``.
3. each step in order:

   - ``guard``: ``prepare(handle, context)`` on the current model; the guard joins the active guard chain;
   - ``edit``: snapshot the weights (and their digest), ``plan`` on the model's structure, ``apply``; then every
     active guard's ``after_edit`` and ``finalize``, in chain order. If a guard in ``gate`` mode fails, the
     snapshot is restored and the restore is verified bit for bit by digest (the step records
     ``rolled_back``). The active guard chain is then empty;
   - ``metric``: ``compute(handle, data, context)`` must return a ``MetricResult``;
   - ``intervention``: ``attach(handle, sites, context)``; detached in reverse order when the chain ends.

A guard must be followed by an edit (otherwise it would never see one): that is checked before the run.
A step that raises stops the chain: the run record says which step and why, an edit interrupted half-way is
rolled back, and interventions are detached.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from guardchain.core import __version__, conformance
from guardchain.core.config import ValidatedChain
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception, traceback_text
from guardchain.core.files import write_json_atomic
from guardchain.core.guarded_edit import Participant, apply_guarded_edit
from guardchain.core.kinds import CapabilityKind
from guardchain.core.logs import get_logger
from guardchain.core.records import CapabilityRef, ProblemRecord, RunRecord, StepRecord
from guardchain.core.registry import CreatedCapability, Registry
from guardchain.core.results import MetricResult

_log = get_logger("guardchain.runner")


@dataclass(frozen=True)
class PreparedChain:
    """A validated chain with every capability created and checked against its protocol."""

    chain: ValidatedChain
    adapter: CreatedCapability | None
    dataset: CreatedCapability | None
    steps: tuple[CreatedCapability, ...]


class _StepFailed(Exception):
    def __init__(self, problem: Problem, cause: BaseException | None = None) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.cause = cause


class ChainRunner:
    """Runs validated chains against one registry.

    :param registry: where capabilities are resolved and whose observer hooks are called.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def prepare(self, chain: ValidatedChain, *, edit_supplied: bool = False) -> PreparedChain:
        """Resolve and create every capability the chain uses; report every problem at once.

        :param edit_supplied: the caller applies the change the guards gate itself (a certification comparing a
            second checkpoint), so guards need not be followed by an edit step.

        :raises GuardchainError: ``GC-PLUGIN-UNKNOWN`` / ``GC-PLUGIN-UNAVAILABLE`` (with the original cause),
            ``GC-ADAPTER-UNRESOLVED``, ``GC-STEP-ORDER``, config problems, ``GC-CAPABILITY-INVALID``.
        """
        config = chain.config
        problems: list[Problem] = []
        if config.model is None:
            problems.append(
                Problem(
                    ErrorCode.STEP_ORDER,
                    "every step works on a model, but the chain has no 'model' section",
                    path="model",
                    expected="model: {ref: <model reference>}",
                )
            )
        last_edit = max((i for i, s in enumerate(config.steps) if s.kind == CapabilityKind.EDIT), default=-1)
        for index, step in enumerate(config.steps):
            if step.kind == CapabilityKind.GUARD and index > last_edit and not edit_supplied:
                problems.append(
                    Problem(
                        ErrorCode.STEP_ORDER,
                        f"guard {step.capability!r} is not followed by an edit, so it would never see one",
                        path=f"steps[{index}]",
                        expected="guards listed before the edit they gate",
                    )
                )

        adapter = None
        if config.model is not None:
            name = config.model.adapter
            hints = {"is_local_dir": Path(config.model.ref).is_dir()}
            if name is None:
                name, hook_problems = self.registry.resolve_adapter(config.model.ref, hints)
                if name is None:
                    problems.extend(_at(p, "model.ref") if p.details.get("refused") else p for p in hook_problems)
                    if not any(p.details.get("refused") for p in hook_problems):
                        problems.append(
                            Problem(
                                ErrorCode.ADAPTER_UNRESOLVED,
                                f"no adapter claims the model reference {config.model.ref!r}",
                                path="model.adapter",
                                expected="an adapter name: "
                                + (", ".join(self.registry.names(CapabilityKind.ADAPTER)) or "(none registered)"),
                            )
                        )
                for problem in hook_problems if name is not None else ():
                    if not problem.details.get("refused"):  # a refusal by one plugin while another claimed it
                        _log.warning("hook.failed", code=str(problem.code), message=problem.message)
            else:
                problems.extend(self._owner_refusals(name, config.model.ref, hints))
            if name is not None:
                raw = chain.model_config if chain.model_config is not None else config.model.config
                adapter = self._create(CapabilityKind.ADAPTER, name, raw, "model", problems)
        dataset = None
        if config.data is not None:
            raw_data = chain.data_config if chain.data_config is not None else config.data.config
            dataset = self._create(CapabilityKind.DATASET, config.data.dataset, raw_data, "data", problems)
        steps = []
        for index, (step, step_config) in enumerate(zip(config.steps, chain.step_configs, strict=True)):
            created = self._create(step.kind, step.capability, step_config, f"steps[{index}]", problems)
            if created is not None:
                steps.append(created)
        if problems:
            raise GuardchainError(problems)
        return PreparedChain(chain=chain, adapter=adapter, dataset=dataset, steps=tuple(steps))

    def _owner_refusals(self, adapter: str, ref: str, hints: dict[str, Any]) -> list[Problem]:
        """What the plugin of the named ``adapter`` says against ``ref`` in ``guardchain_resolve_adapter`` (a hub
        id while the network is off, a broken checkpoint): found before the run instead of when loading."""
        try:
            owner = self.registry.get_spec(CapabilityKind.ADAPTER, adapter).plugin
        except GuardchainError:
            return []  # _create reports the unknown or ambiguous adapter
        _, hook_problems = self.registry.resolve_adapter(ref, hints)
        return [
            _at(p, "model.ref") for p in hook_problems if p.details.get("refused") and p.details.get("plugin") == owner
        ]

    def _create(
        self, kind: CapabilityKind, name: str, config: Any, path: str, problems: list[Problem]
    ) -> CreatedCapability | None:
        try:
            return self.registry.create(kind, name, config, path=f"{path}.config")
        except GuardchainError as exc:
            for problem in exc.problems:
                where = problem.path or {"model": "model.adapter", "data": "data.dataset"}.get(
                    path, f"{path}.{kind.value}"
                )
                details = dict(problem.details)
                if exc.cause is not None and "cause" not in details:
                    details["cause"] = describe_exception(exc.cause)
                problems.append(Problem(problem.code, problem.message, where, problem.expected, problem.hint, details))
            return None

    def run(
        self, chain: ValidatedChain | PreparedChain, *, out_dir: Path | None = None, run_id: str | None = None
    ) -> RunRecord:
        """Run ``chain`` (prepared here unless it already is); write ``run.json`` into ``out_dir``; return the record.

        A failing step does not raise: the record's ``status`` is ``"failed"`` and its ``problems`` say why. A run
        whose edit was rolled back by a failing gate guard completes with status ``"rolled_back"``.

        :param out_dir: run directory; default ``<output.dir>/<chain name>-<first 8 chars of run id>``.
        :param run_id: default: a fresh UUID4 hex string.
        :raises GuardchainError: if the chain cannot start (see :meth:`prepare`) or the record cannot be
            written (``GC-OUTPUT-WRITE``).
        """
        prepared = chain if isinstance(chain, PreparedChain) else self.prepare(chain)
        chain = prepared.chain
        config = chain.config
        run_id = run_id or uuid.uuid4().hex
        out_dir = out_dir or Path(config.output.dir) / f"{config.name}-{run_id[:8]}"
        ensure_writable_dir(out_dir)  # before any model loads: a run whose record cannot be written never starts
        context = RunContext(run_id=run_id, seed=config.seed, out_dir=out_dir, registry=self.registry)
        log = _log.bind(run_id=run_id, chain=config.name)
        started_at = _now()
        started = time.perf_counter()
        problems: list[Problem] = []
        step_records: list[StepRecord] = []
        detachables: list[tuple[int, Any]] = []
        model_info: dict[str, Any] | None = None
        data_info: dict[str, Any] | None = None
        status: Literal["ok", "rolled_back", "failed"] = "ok"

        problems += self.registry.call_observers("guardchain_chain_started", chain=config, context=context)
        log.info("chain.started", steps=len(config.steps), seed=config.seed)
        seed_everything(config.seed)
        try:
            if prepared.adapter is not None and config.model is not None:
                adapter = prepared.adapter.instance
                adapter_spec = prepared.adapter.spec
                ref = config.model.ref
                context.adapter = adapter
                context.handle = _guarded(
                    "model", f"{adapter_spec.label} failed to load {ref!r}", lambda: adapter.load(ref, context)
                )
                _conform(
                    conformance.handle_problems(
                        context.handle, ref, adapter_spec.accepted_names, adapter_spec.label, "model"
                    )
                )
                model_info = {
                    "ref": ref,
                    "adapter": _ref(prepared.adapter).model_dump(),
                    "provenance": _jsonable(context.handle.provenance),
                }
            if prepared.dataset is not None:
                dataset = prepared.dataset.instance
                data_label = prepared.dataset.spec.label
                context.data = _guarded("data", f"{data_label} failed to load the data", lambda: dataset.load(context))
                if context.data is None:
                    _conform([Problem(ErrorCode.CAPABILITY_RESULT, f"{data_label} loaded nothing (None)", "data")])
                fingerprint = _guarded("data", f"{data_label} failed to fingerprint the data", dataset.fingerprint)
                _conform(conformance.digest_problems(fingerprint, data_label, "fingerprint", "data"))
                data_info = {"dataset": _ref(prepared.dataset).model_dump(), "fingerprint": fingerprint}
            active_guards: list[CreatedCapability] = []
            for index, (step, created) in enumerate(zip(config.steps, prepared.steps, strict=True)):
                step_id = config.step_id(index)
                problems += self.registry.call_observers(
                    "guardchain_step_started", step=step, index=index, context=context
                )
                log.info("step.started", index=index, kind=str(step.kind), capability=created.spec.name)
                t0 = time.perf_counter()
                result: dict[str, Any] | None = None
                rolled_back = False
                error: Problem | None = None
                label, where = created.spec.label, f"steps[{index}]"
                try:
                    if step.kind == CapabilityKind.GUARD:
                        created.instance.prepare(context.handle, context)
                        active_guards.append(created)
                        result = {"prepared": True}
                    elif step.kind == CapabilityKind.EDIT:
                        result, rolled_back = self._run_edit(created, active_guards, context, index)
                        active_guards = []
                        if rolled_back:
                            status = "rolled_back"
                    elif step.kind == CapabilityKind.METRIC:
                        metric_result = created.instance.compute(context.handle, context.data, context)
                        _expect(metric_result, MetricResult, index, "compute")
                        names = created.spec.accepted_names
                        _conform(conformance.metric_result_problems(metric_result, names, label, where))
                        result = metric_result.model_dump(mode="json")
                    else:
                        detachable = created.instance.attach(context.handle, tuple(step.sites), context)
                        _conform(conformance.detachable_problems(detachable, label, where))
                        detachables.append((index, detachable))
                        result = {"attached": list(step.sites)}
                except _StepFailed as exc:
                    error = exc.problem
                    rolled_back = bool(exc.problem.details.get("rolled_back", False))
                except Exception as exc:
                    error = _failure(exc, f"{label} failed in {_METHODS[step.kind]}", where)
                    _log_failure(log, index, error, exc)
                context.results[step_id] = result
                step_record = StepRecord(
                    index=index,
                    id=step_id,
                    kind=str(step.kind),
                    capability=_ref(created),
                    status="failed" if error else "ok",
                    duration_s=time.perf_counter() - t0,
                    result=result,
                    rolled_back=rolled_back,
                    error=_problem_record(error) if error else None,
                )
                step_records.append(step_record)
                log.info(
                    "step.finished", index=index, status=step_record.status, duration_s=round(step_record.duration_s, 4)
                )
                problems += self.registry.call_observers(
                    "guardchain_step_finished", step=step, index=index, context=context, record=step_record
                )
                if error is not None:
                    problems.append(error)
                    status = "failed"
                    break
        except _StepFailed as exc:
            problems.append(exc.problem)
            status = "failed"
        finally:
            for index, detachable in reversed(detachables):
                try:
                    detachable.remove()
                except Exception as exc:
                    problems.append(
                        Problem(
                            ErrorCode.STEP_FAILED,
                            f"detaching the intervention of step {index} raised: {describe_exception(exc)}",
                            path=f"steps[{index}]",
                        )
                    )
                    status = "failed"

        record = RunRecord(
            run_id=run_id,
            chain=config.name,
            chain_digest=chain.digest,
            source=str(chain.source) if chain.source else None,
            seed=config.seed,
            status=status,
            started_at=started_at,
            finished_at=_now(),
            duration_s=time.perf_counter() - started,
            model=model_info,
            data=data_info,
            steps=step_records,
            artifacts=dict(context.artifacts),
            problems=[_problem_record(p) for p in problems],
            environment=_environment(self.registry),
        )
        hook_problems = self.registry.call_observers(
            "guardchain_chain_finished", chain=config, context=context, record=record
        )
        if hook_problems:
            record.problems.extend(_problem_record(p) for p in hook_problems)
        log.info("chain.finished", status=record.status, duration_s=round(record.duration_s, 3))
        write_json_atomic(out_dir / "run.json", record.model_dump(mode="json"))
        return record

    def _run_edit(
        self, created: CreatedCapability, guards: list[CreatedCapability], context: RunContext, index: int
    ) -> tuple[dict[str, Any], bool]:
        """The edit under the active guards (:func:`~guardchain.core.guarded_edit.apply_guarded_edit`), rolled back
        when a gate-mode guard failed."""
        where = f"steps[{index}]"
        try:
            edited = apply_guarded_edit(
                context,
                Participant.of(created, where),
                [Participant.of(guard, where) for guard in guards],
                path=where,
            )
            failing = edited.failed_gate_guards
            if failing:
                edited.rollback()
        except GuardchainError as exc:
            first = exc.problems[0]
            raise _StepFailed(_at(first, where), exc) from exc
        edited.release()
        result = {
            "plan": edited.plan.model_dump(mode="json"),
            "report": edited.report.model_dump(mode="json"),
            "guards": [r.model_dump(mode="json") for r in edited.guard_reports],
            "failed_guards": failing,
            "corrected": list(edited.corrected),
            "weights_digest_before": edited.digest_before,
            "weights_digest_after": context.adapter.weights_digest(context.handle),
        }
        return result, edited.rolled_back


#: The method a step of each kind calls (named in errors).
_METHODS = {
    CapabilityKind.GUARD: "prepare",
    CapabilityKind.EDIT: "plan/apply",
    CapabilityKind.METRIC: "compute",
    CapabilityKind.INTERVENTION: "attach",
}


def _guarded(path: str, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        raise _StepFailed(_failure(exc, what, path), exc) from exc


def _conform(problems: list[Problem]) -> None:
    """Fail the step on the first breach of a capability's result contract (:mod:`guardchain.core.conformance`)."""
    if problems:
        raise _StepFailed(problems[0])


def _at(problem: Problem, path: str) -> Problem:
    """``problem`` placed at ``path`` in the chain file, unless it already has a place."""
    if problem.path:
        return problem
    return Problem(problem.code, problem.message, path, problem.expected, problem.hint, problem.details)


def _log_failure(log: Any, index: int, problem: Problem, exc: BaseException) -> None:
    """An info event with the coded problem (the run record and the CLI carry it already); the traceback only at
    debug level, as plain text.

    Never ``exc_info``: a rich traceback with local variables would print whole models and tensors.
    """
    log.info("step.failed", index=index, code=str(problem.code), message=problem.message)
    log.debug("step.traceback", index=index, traceback=traceback_text(exc))


def _failure(exc: BaseException, what: str, path: str) -> Problem:
    """The problem recorded for an exception raised by a capability.

    A plugin's own :class:`GuardchainError` keeps its stable code (``GC-DATA-TOO-FEW-WINDOWS``, ...) so that users
    can act on it; anything else is ``GC-STEP-FAILED`` with the exception's type and message.
    """
    if isinstance(exc, GuardchainError):
        first = exc.problems[0]
        return Problem(
            first.code,
            f"{what}: {first.message}",
            path=path,
            expected=first.expected,
            hint=first.hint,
            details={**first.details, "step_failed": True},
        )
    return Problem(ErrorCode.STEP_FAILED, f"{what}: {describe_exception(exc)}", path=path)


def _expect(value: Any, cls: type[BaseModel], index: int, method: str) -> None:
    if not isinstance(value, cls):
        raise _StepFailed(
            Problem(
                ErrorCode.STEP_FAILED,
                f"{method} returned {type(value).__name__}, expected {cls.__name__}",
                path=f"steps[{index}]",
            )
        )


def _ref(created: CreatedCapability) -> CapabilityRef:
    spec = created.spec
    return CapabilityRef(
        kind=str(spec.kind), name=spec.name, plugin=spec.plugin, distribution=spec.distribution, version=spec.version
    )


def _problem_record(problem: Problem) -> ProblemRecord:
    data = problem.to_dict()
    data["details"] = _jsonable(data["details"])
    return ProblemRecord(**data)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def seed_everything(seed: int) -> None:
    """Seed Python's and numpy's global generators, and torch's when a plugin has already imported it (the kernel
    never imports torch itself; call again after loading a model to seed torch)."""
    random.seed(seed)
    import numpy as np  # the CLI's listing paths never load numpy

    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def plugin_rows(registry: Registry) -> list[dict[str, Any]]:
    """One row per loaded plugin (name, distribution, version, status), as run records and certificates hold them."""
    return [
        {"name": p.name, "distribution": p.distribution, "version": p.version, "status": str(p.status)}
        for p in registry.plugins
    ]


def _environment(registry: Registry) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "guardchain_core": __version__,
        "plugins": plugin_rows(registry),
    }


def output_dir_problem(directory: Path, *, path: str = "", option: str = "output.dir") -> Problem | None:
    """Why a run could not write into ``directory`` (created when absent), or ``None``; creates nothing.

    Checks the nearest existing folder on the way: it must be a folder, writable and searchable by this user.

    :param path: the problem's place in the chain file (``output.dir``), empty for a command-line option.
    :param option: how the user gave the folder (``--out``, ``output.dir``), for the message.
    """
    try:
        probe = directory.absolute()
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            reason = f"{str(probe)!r} is a file, not a folder"
        elif not os.access(probe, os.W_OK | os.X_OK):
            reason = f"{str(probe)!r} is not writable"
        else:
            return None
    except (OSError, ValueError) as exc:
        reason = describe_exception(exc)
    return Problem(
        ErrorCode.OUTPUT_WRITE,
        f"the output folder {str(directory)!r} ({option}) cannot be written: {reason}",
        path=path,
        hint="choose a writable folder with --out, or change output.dir",
    )


def ensure_writable_dir(directory: Path) -> None:
    """Create ``directory`` and check, with a probe file, that files can be written into it.

    :raises GuardchainError: ``GC-OUTPUT-WRITE``.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as exc:
        found = output_dir_problem(directory)
        message = found.message if found else f"cannot write into {str(directory)!r}: {describe_exception(exc)}"
        raise GuardchainError.single(
            ErrorCode.OUTPUT_WRITE, message, hint="choose a writable folder with --out, or change output.dir"
        ) from exc
