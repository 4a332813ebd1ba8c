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

from guardchain.core.config import ValidatedChain
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception
from guardchain.core.kinds import CapabilityKind
from guardchain.core.logs import get_logger
from guardchain.core.records import CapabilityRef, ProblemRecord, RunRecord, StepRecord
from guardchain.core.registry import CreatedCapability, Registry
from guardchain.core.results import EditPlan, EditReport, GuardMode, GuardReport, GuardStatus, MetricResult

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

    def prepare(self, chain: ValidatedChain) -> PreparedChain:
        """Resolve and create every capability the chain uses; report every problem at once.

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
            if step.kind == CapabilityKind.GUARD and index > last_edit:
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
            if name is None:
                name, hook_problems = self.registry.resolve_adapter(
                    config.model.ref, {"is_local_dir": Path(config.model.ref).is_dir()}
                )
                if name is None:
                    problems.extend(hook_problems)
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
                    _log.warning("hook.failed", code=str(problem.code), message=problem.message)
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
        _seed_everything(config.seed)
        try:
            if prepared.adapter is not None and config.model is not None:
                adapter = prepared.adapter.instance
                ref = config.model.ref
                context.adapter = adapter
                context.handle = _guarded("model", "load the model", lambda: adapter.load(ref, context))
                model_info = {
                    "ref": ref,
                    "adapter": _ref(prepared.adapter).model_dump(),
                    "provenance": _jsonable(context.handle.provenance),
                }
            if prepared.dataset is not None:
                dataset = prepared.dataset.instance
                context.data = _guarded("data", "load the data", lambda: dataset.load(context))
                data_info = {
                    "dataset": _ref(prepared.dataset).model_dump(),
                    "fingerprint": _guarded("data", "fingerprint the data", dataset.fingerprint),
                }
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
                        result = metric_result.model_dump(mode="json")
                    else:
                        detachable = created.instance.attach(context.handle, tuple(step.sites), context)
                        if not callable(getattr(detachable, "remove", None)):
                            raise _StepFailed(
                                Problem(
                                    ErrorCode.STEP_FAILED,
                                    f"attach returned {type(detachable).__name__}, which has no remove()",
                                    path=f"steps[{index}]",
                                )
                            )
                        detachables.append((index, detachable))
                        result = {"attached": list(step.sites)}
                except _StepFailed as exc:
                    error = exc.problem
                    rolled_back = bool(exc.problem.details.get("rolled_back", False))
                except Exception as exc:
                    error = _failure(exc, f"{step.kind} {created.spec.name!r} raised", f"steps[{index}]")
                    log.error("step.failed", index=index, exc_info=True)
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
        adapter = context.adapter
        handle = context.handle
        digest_before = adapter.weights_digest(handle)
        snapshot = adapter.snapshot(handle)
        edit = created.instance
        try:
            plan = edit.plan(handle, adapter.describe(handle))
            _expect(plan, EditPlan, index, "plan")
            context.edit_plan = plan
            report = edit.apply(handle, plan)
            _expect(report, EditReport, index, "apply")
            for guard in guards:
                guard.instance.after_edit(handle, context)
            reports = []
            for guard in guards:
                guard_report = guard.instance.finalize(context)
                _expect(guard_report, GuardReport, index, f"finalize of guard {guard.spec.name!r}")
                reports.append(guard_report)
        except Exception as exc:
            context.edit_plan = None
            self._restore(adapter, handle, snapshot, digest_before, index)
            problem = exc.problem if isinstance(exc, _StepFailed) else None
            message = problem.message if problem else describe_exception(exc)
            raise _StepFailed(
                Problem(
                    ErrorCode.STEP_FAILED,
                    f"edit {created.spec.name!r} failed and was rolled back: {message}",
                    path=f"steps[{index}]",
                    details={"rolled_back": True},
                ),
                exc,
            ) from exc
        context.edit_plan = None
        failing = [r.guard for r in reports if r.mode == GuardMode.GATE and r.status == GuardStatus.FAIL]
        rolled_back = bool(failing)
        if rolled_back:
            self._restore(adapter, handle, snapshot, digest_before, index)
        result = {
            "plan": plan.model_dump(mode="json"),
            "report": report.model_dump(mode="json"),
            "guards": [r.model_dump(mode="json") for r in reports],
            "failed_guards": failing,
            "weights_digest_before": digest_before,
            "weights_digest_after": adapter.weights_digest(handle),
        }
        return result, rolled_back

    @staticmethod
    def _restore(adapter: Any, handle: Any, snapshot: Any, digest_before: str, index: int) -> None:
        adapter.restore(handle, snapshot)
        restored = adapter.weights_digest(handle)
        if restored != digest_before:
            raise _StepFailed(
                Problem(
                    ErrorCode.STEP_FAILED,
                    "rollback did not restore the weights bit for bit "
                    f"(digest {restored[:12]} after restore, {digest_before[:12]} before the edit)",
                    path=f"steps[{index}]",
                )
            )


def _guarded(path: str, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        raise _StepFailed(_failure(exc, f"failed to {what}", path), exc) from exc


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)


def _environment(registry: Registry) -> dict[str, Any]:
    from guardchain.core import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "guardchain_core": __version__,
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "status": str(p.status)}
            for p in registry.plugins
        ],
    }


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temporary file and ``os.replace``: readers see all of it or nothing.

    :raises GuardchainError: ``GC-OUTPUT-WRITE`` if the directory or file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise GuardchainError.single(ErrorCode.OUTPUT_WRITE, f"cannot write {str(path)!r}: {exc}") from exc
