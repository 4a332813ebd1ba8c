"""An edit applied under guards, restorable bit for bit: the one implementation that the chain runner and
certification both use.

:func:`apply_guarded_edit` runs, on the model of ``context.handle``:

1. the weights digest before anything changes (``adapter.weights_digest``);
2. ``plan = edit.plan(handle, adapter.describe(handle))``, which must be an :class:`EditPlan`;
3. copies of the plan's targets only (``adapter.snapshot(handle, plan.targets)``): the rollback data;
4. ``edit.apply(handle, plan)``, which must return an :class:`EditReport`;
5. every guard's ``after_edit``, in chain order, then every guard's ``finalize``, which must return a
   :class:`GuardReport` naming that guard. A guard that corrects the subject announces it first with
   ``context.will_change_weights(names)``: the tensors' current (edited) values are then copied, so that the
   subject can be evaluated without the corrections, and so are their baseline values when the edit did not
   target them (it left them untouched), so that the rollback stays complete.

If anything in 2–5 raises, the weights are restored at once and the failure is raised as a coded error naming
the capability and its plugin. Otherwise the caller decides: :meth:`GuardedEdit.rollback` restores the targets and
every corrected tensor and verifies the result bit for bit against the digest of step 1 (an edit or a guard that
changed a parameter it did not declare makes that check fail loudly, never silently).

Memory: one model, plus copies of the edit's targets, plus copies of what guards corrected — never a copy of the
whole model unless the edit targets all of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import BaseModel

from guardchain.core import conformance
from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception
from guardchain.core.results import EditPlan, EditReport, GuardMode, GuardReport, GuardStatus


@dataclass(frozen=True)
class Participant:
    """A capability taking part in a guarded edit, with the words that name it in errors.

    :ivar instance: the capability object (an Edit or a Guard).
    :ivar name: its registered name.
    :ivar label: how errors name it, e.g. ``"guard 'spectral' (plugin guards, guardchain-guards 0.1.0)"``.
    :ivar path: where it sits in the chain file or preset (``steps[3]``, ``guards[1]``), for error paths.
    :ivar names: the names its results may carry (registered, then qualified), checked by
        :mod:`guardchain.core.conformance`; ``None`` for a caller's own object that is not a registered capability.
    """

    instance: Any
    name: str
    label: str
    path: str = ""
    names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, created: Any, path: str = "") -> Participant:
        """The participant for a :class:`~guardchain.core.registry.CreatedCapability`."""
        spec = created.spec
        return cls(created.instance, spec.name, spec.label, path, tuple(spec.accepted_names))


@dataclass
class GuardedEdit:
    """The outcome of :func:`apply_guarded_edit`: what the edit and the guards did, and the means to undo it.

    :ivar plan: the edit's plan.
    :ivar report: the edit's report.
    :ivar guard_reports: one report per guard, in chain order.
    :ivar digest_before: weights digest before the edit (the rollback must reproduce it).
    :ivar guard_seconds: wall time of each guard's ``after_edit`` + ``finalize``, in chain order.
    :ivar corrected: parameters the guards announced they changed.
    :ivar rolled_back: true once :meth:`rollback` succeeded.
    """

    plan: EditPlan
    report: EditReport
    guard_reports: list[GuardReport]
    digest_before: str
    guard_seconds: list[float]
    corrected: tuple[str, ...]
    rolled_back: bool = False
    _adapter: Any = field(default=None, repr=False)
    _handle: Any = field(default=None, repr=False)
    _rollback: list[Any] = field(default_factory=list, repr=False)
    _edited: list[Any] = field(default_factory=list, repr=False)
    _path: str = ""

    @property
    def failed_gate_guards(self) -> list[str]:
        """Names of guards in gate mode whose status is ``fail``."""
        return [r.guard for r in self.guard_reports if r.mode == GuardMode.GATE and r.status == GuardStatus.FAIL]

    def rollback(self) -> None:
        """Restore the baseline weights and check the restore bit for bit against :attr:`digest_before`.

        :raises GuardchainError: ``GC-STEP-FAILED`` if there is no rollback data (``keep_rollback=False``) or the
            restored weights differ from the baseline (something changed a parameter it did not declare).
        """
        if self.rolled_back:
            return
        if self._adapter is None:
            raise GuardchainError.single(
                ErrorCode.STEP_FAILED, "this edit was applied without rollback data", path=self._path
            )
        _restore_verified(self._adapter, self._handle, self._rollback, self.digest_before, self._path)
        self.rolled_back = True
        self.release()

    @contextmanager
    def without_corrections(self) -> Iterator[None]:
        """Inside the block the model holds the edited weights *without* the guards' corrections; after it, the
        corrected weights again (bit for bit). A no-op when no guard corrected anything."""
        if not self._edited:
            yield
            return
        corrected = [self._adapter.snapshot(self._handle, tuple(self.corrected))]
        try:
            for saved in self._edited:
                self._adapter.restore(self._handle, saved)
            yield
        finally:
            for saved in corrected:
                self._adapter.restore(self._handle, saved)

    def release(self) -> None:
        """Drop the copies held for rollback and for evaluating without corrections."""
        self._rollback.clear()
        self._edited.clear()


def apply_guarded_edit(
    context: RunContext,
    edit: Participant,
    guards: Sequence[Participant],
    *,
    keep_rollback: bool = True,
    plan: EditPlan | None = None,
    path: str = "",
) -> GuardedEdit:
    """Apply ``edit`` to ``context.handle`` under ``guards`` (see the module docstring).

    The guards' ``prepare`` must already have run on the baseline. ``context.edit_plan`` holds the plan while the
    guards run and is ``None`` afterwards.

    :param keep_rollback: copy the targets so that :meth:`GuardedEdit.rollback` can undo the edit; ``False`` when
        the caller will never roll back (the weights are still restored if something raises, from the copies
        taken for that purpose only when ``True``).
    :param plan: the edit's plan, when the caller already asked for it (to check an edit's settings against the
        model before spending time on evaluations); computed here otherwise.
    :param path: where the edit sits in the chain, for error paths.
    :raises GuardchainError: the plan or report has the wrong type, the edit or a guard raised, or a guard's
        report names another guard — coded, naming the capability; the weights were restored (when
        ``keep_rollback``) before it is raised.
    """
    adapter, handle = context.adapter, context.handle
    digest_before = adapter.weights_digest(handle)
    rollback: list[Any] = []
    edited: list[Any] = []
    covered: set[str] = set()
    corrected: list[str] = []
    restore_on_failure = False

    def before_guard_change(names: tuple[str, ...]) -> None:
        untouched = [n for n in names if n not in covered]
        if keep_rollback and untouched:
            rollback.append(adapter.snapshot(handle, untouched))  # still the baseline values: the edit skipped them
            covered.update(untouched)
        edited.append(adapter.snapshot(handle, names))
        corrected.extend(names)

    try:
        if plan is None:
            plan = plan_edit(context, edit)
        if keep_rollback:
            rollback.append(adapter.snapshot(handle, plan.targets))
            covered.update(plan.targets)
            restore_on_failure = True
        context.edit_plan = plan
        context.corrected = set()
        context.on_weights_change = before_guard_change
        report = _call(edit, "apply", lambda: edit.instance.apply(handle, plan))
        _conform(
            edit,
            report,
            EditReport,
            lambda names: conformance.edit_report_problems(report, plan, names, edit.label, edit.path),
        )
        seconds = [0.0] * len(guards)
        for index, guard in enumerate(guards):
            began = time.perf_counter()
            _call(guard, "after_edit", partial(guard.instance.after_edit, handle, context))
            seconds[index] += time.perf_counter() - began
        reports: list[GuardReport] = []
        for index, guard in enumerate(guards):
            began = time.perf_counter()
            guard_report = _call(guard, "finalize", partial(guard.instance.finalize, context))
            seconds[index] += time.perf_counter() - began
            _conform(
                guard,
                guard_report,
                GuardReport,
                partial(conformance.guard_report_problems, guard_report, label=guard.label, path=guard.path),
            )
            reports.append(guard_report)
    except GuardchainError as exc:
        if restore_on_failure:
            _restore_after_failure(adapter, handle, rollback, digest_before, edit.path or path, exc)
        raise
    except BaseException:  # an interrupt, or an adapter's own bug: put the weights back, then let it through
        if restore_on_failure:
            for snapshot in reversed(rollback):
                adapter.restore(handle, snapshot)
        raise
    finally:
        context.edit_plan = None
        context.on_weights_change = None
        context.corrected = set()
    return GuardedEdit(
        plan=plan,
        report=report,
        guard_reports=reports,
        digest_before=digest_before,
        guard_seconds=seconds,
        corrected=tuple(corrected),
        _adapter=adapter if keep_rollback else None,
        _handle=handle,
        _rollback=rollback,
        _edited=edited,
        _path=edit.path or path,
    )


def plan_edit(context: RunContext, edit: Participant) -> EditPlan:
    """``edit.plan(handle, adapter.describe(handle))`` on ``context.handle``, checked against its contract
    (:func:`guardchain.core.conformance.edit_plan_problems`), failures coded."""
    adapter, handle = context.adapter, context.handle
    structure = adapter.describe(handle)
    plan = _call(edit, "plan", lambda: edit.instance.plan(handle, structure))
    _conform(
        edit,
        plan,
        EditPlan,
        lambda names: conformance.edit_plan_problems(plan, names, structure, edit.label, edit.path),
    )
    return plan  # type: ignore[no-any-return]


def _call(who: Participant, method: str, call: Callable[[], Any]) -> Any:
    """Run a capability's method; anything it raises becomes a coded error naming it."""
    try:
        return call()
    except GuardchainError as exc:
        first = exc.problems[0]
        raise GuardchainError(
            [
                Problem(
                    first.code,
                    f"{who.label} failed in {method}: {first.message}",
                    path=first.path or who.path,
                    expected=first.expected,
                    hint=first.hint,
                    details={**first.details, "capability": who.name},
                ),
                *exc.problems[1:],
            ],
            cause=exc.cause or exc,
        ) from exc
    except Exception as exc:
        raise _failure(who, method, f"raised {describe_exception(exc)}", cause=exc) from exc


def _failure(
    who: Participant,
    method: str,
    what: str,
    code: ErrorCode = ErrorCode.STEP_FAILED,
    cause: BaseException | None = None,
) -> GuardchainError:
    problem = Problem(code, f"{who.label} {what} in {method}", path=who.path, details={"capability": who.name})
    return GuardchainError(problem, cause=cause)


def _conform(
    who: Participant, value: Any, cls: type[BaseModel], problems_of: Callable[[tuple[str, ...]], list[Problem]]
) -> None:
    """Raise the contract problems of a registered capability's result (:mod:`guardchain.core.conformance`, given
    the names the result may carry); a caller's own object (``names`` is ``None``) is only type-checked."""
    if who.names is not None:
        problems = problems_of(who.names)
    elif isinstance(value, cls):
        problems = []
    else:
        what = f"{who.label} returned {type(value).__name__}, not {cls.__name__}"
        problems = [Problem(ErrorCode.CAPABILITY_RESULT, what, path=who.path)]
    if problems:
        raise GuardchainError(problems)


def _restore_verified(adapter: Any, handle: Any, saved: list[Any], digest_before: str, path: str) -> None:
    for snapshot in reversed(saved):
        adapter.restore(handle, snapshot)
    restored = adapter.weights_digest(handle)
    if restored != digest_before:
        raise GuardchainError.single(
            ErrorCode.STEP_FAILED,
            "the rollback did not restore the weights bit for bit (digest "
            f"{restored[:12]} after the restore, {digest_before[:12]} before the edit): a parameter changed "
            "that neither the edit's plan nor a guard's will_change_weights declared",
            path=path,
        )


def _restore_after_failure(
    adapter: Any, handle: Any, saved: list[Any], digest_before: str, path: str, failure: GuardchainError
) -> None:
    try:
        _restore_verified(adapter, handle, saved, digest_before, path)
    except GuardchainError as exc:
        failure.problems.append(exc.problems[0])
        return
    failure.problems[0] = _with_detail(failure.problems[0], rolled_back=True)


def _with_detail(problem: Problem, **details: Any) -> Problem:
    return Problem(
        problem.code, problem.message, problem.path, problem.expected, problem.hint, {**problem.details, **details}
    )
