"""The run context every step of a chain receives."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardchain.core.handles import ModelHandle
from guardchain.core.results import EditPlan

if TYPE_CHECKING:
    from guardchain.core.registry import Registry


@dataclass
class RunContext:
    """State shared by the steps of one chain run.

    :ivar run_id: unique id of this run (a UUID4 hex string); the only field that differs between two runs of
        the same chain with the same seed.
    :ivar seed: the chain's master seed; capabilities derive their own seeds from it deterministically.
    :ivar out_dir: directory where the run record and artifacts are written.
    :ivar registry: the registry the chain was resolved from (capabilities may look up siblings by name).
    :ivar adapter: the adapter instance that loaded ``handle``, or ``None`` when the chain loads no model.
    :ivar handle: the model being measured; an edit step modifies it in place.
    :ivar data: whatever the chain's dataset returned from ``load``, or ``None``. In ``certify`` it is the
        evaluation windows (:class:`~guardchain.core.windows.TokenWindows`); guards that need activations take
        their calibration windows from its *preview* split, never from the *final* split that decides the verdict.
    :ivar edit_plan: the plan of the edit being gated, set before guards' ``after_edit`` and cleared after the
        edit's guards finished; ``None`` outside an edit and in compare mode (no declared scope: every parameter
        may differ).
    :ivar progress: where :meth:`report_progress` goes (the CLI draws bars from it); ``None`` when nobody listens.
    :ivar results: JSON-ready results of finished steps, keyed by step id.
    :ivar artifacts: files written by steps, as ``name -> path relative to out_dir``.
    :ivar corrected: parameters guards said they changed (:meth:`will_change_weights`) during the current edit;
        cleared when the edit's guards have finished. The invariants guard counts them in the edit's scope.
    :ivar on_artifact: told each artifact name before its file is created (a certification records it as
        guardchain's own in its output folder's manifest); ``None`` when nobody listens.
    :ivar on_weights_change: set by the runner while guards gate an edit; called with the names a guard is about
        to change, before the change, so that only those tensors are copied (for the rollback and for evaluating
        the subject without corrections).
    """

    run_id: str
    seed: int
    out_dir: Path
    registry: Registry | None = None
    adapter: Any = None
    handle: ModelHandle | None = None
    data: Any = None
    edit_plan: EditPlan | None = None
    progress: Callable[[str, int, int], None] | None = None
    results: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    corrected: set[str] = field(default_factory=set)
    on_artifact: Callable[[str], object] | None = None
    on_weights_change: Callable[[tuple[str, ...]], None] | None = None

    def will_change_weights(self, names: Iterable[str]) -> None:
        """Announce that the caller is about to change these parameters of ``handle`` in place.

        A guard that corrects the subject (rescales a matrix, scales a site) calls this *before* writing. The
        runner copies just those tensors — their baseline values for the rollback, their edited values to
        evaluate the subject without corrections — instead of holding a copy of the whole model. A change made
        without this call is still caught: the rollback is verified bit for bit by digest and fails loudly.

        :param names: parameter names as the adapter's :class:`~guardchain.core.handles.ModelStructure` (and
            ``named_parameters()``) spell them.
        """
        fresh = tuple(sorted(set(names) - self.corrected))
        if not fresh:
            return
        if self.on_weights_change is not None:
            self.on_weights_change(fresh)
        self.corrected.update(fresh)

    def artifact_path(self, name: str) -> Path:
        """Reserve ``out_dir / name`` for an artifact, record it, and return the path (parents created)."""
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"artifact name must be a relative path inside the run directory, got {name!r}")
        if self.on_artifact is not None:
            self.on_artifact(name)
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.artifacts[name] = name
        return path

    def report_progress(self, task: str, done: int, total: int) -> None:
        """Say that ``done`` of ``total`` units of ``task`` are finished (windows, matrices, ...).

        Capabilities call it from long loops; it costs nothing when no listener is set. ``task`` is a short label
        (``"ppl: final windows"``); the same label with a growing ``done`` advances one progress bar.
        """
        if self.progress is not None:
            self.progress(task, done, total)
