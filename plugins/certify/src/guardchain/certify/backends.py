"""Where a sweep's cells run: a local process pool (default) or a Ray cluster.

Both backends keep ``jobs`` workers, each holding one model at most (:class:`~guardchain.certify.sweep_worker.
CellWorker`), and hand each idle worker the next cell — preferring one against the baseline it already holds, so
a baseline is loaded once per worker. Both report the same events to the sweep (``ready``, ``started``,
``stage``, ``step``, ``finished``) and both survive a worker that dies: its cell is recorded as failed
(``GC-CERT-SWEEP-WORKER-DIED``), a fresh worker takes its place, and the other cells go on.

* :class:`LocalPool` — ``jobs`` processes started with ``spawn`` (a fresh interpreter: no inherited threads or
  locks), each with ``threads`` threads (set before torch loads), one pipe each way per worker.
* :class:`RayBackend` — ``jobs`` Ray actors with ``num_cpus=threads``, on the cluster at ``address`` (or the one
  ``RAY_ADDRESS`` names) or on a local Ray instance started for the sweep. Progress comes back through a
  ``ray.util.queue.Queue``. Workers read and write the sweep folder and the baseline cache by path, so on a
  cluster both must be on a folder every node mounts at the same path.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from guardchain.certify.codes import CertifyErrorCode
from guardchain.core.errors import GuardchainError

Event = dict[str, Any]
Emit = Callable[[Event], None]
#: Seconds a stopping worker is given to exit before it is terminated.
STOP_GRACE_S = 5.0


class Backend(Protocol):
    """Runs cells and reports events (see the module docstring)."""

    name: str

    def run(self, tasks: Sequence[dict[str, Any]], emit: Emit) -> None:
        """Run every task (``{"id", "request", "affinity"}``) and return when each has a ``finished`` event."""
        ...


def died(cell: str, how: str) -> Event:
    """The ``finished`` event of a cell whose worker died."""
    return {
        "type": "finished",
        "cell": cell,
        "status": "failed",
        "verdict": None,
        "error": {
            "code": str(CertifyErrorCode.SWEEP_WORKER_DIED),
            "message": f"the worker running it {how}",
            "path": "",
        },
        "wall_s": None,
        "cache_hit": None,
        "reused": False,
        "pid": None,
    }


def _next_task(pending: deque[dict[str, Any]], affinity: str | None) -> dict[str, Any]:
    """The first pending task against the baseline a worker holds, else the first pending task."""
    if affinity is not None:
        for index, task in enumerate(pending):
            if task["affinity"] == affinity:
                del pending[index]
                return task
    return pending.popleft()


def _signal_name(exitcode: int | None) -> str:
    import signal

    if exitcode is None:
        return "exited"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


@dataclass
class _Deaths:
    """Workers that died with no cell finishing in between: past a few per job, workers cannot run at all (an
    import that fails, a plugin that crashes on start), and restarting them again would never end."""

    jobs: int
    count: int = 0

    def finished(self) -> None:
        self.count = 0

    def died(self, how: str, logs: str = "") -> None:
        self.count += 1
        if self.count > 2 * self.jobs + 1:
            where = f"; see {logs}" if logs else ""
            raise GuardchainError.single(
                CertifyErrorCode.SWEEP_BACKEND,
                f"{self.count} workers in a row died before finishing a cell (the last {how}){where}",
            )


# -- local processes --------------------------------------------------------------------------------------------


@dataclass
class _Process:
    process: Any
    inbox: Any
    outbox: Any
    task: dict[str, Any] | None = None
    affinity: str | None = None
    ready: bool = False


@dataclass
class LocalPool:
    """``jobs`` spawned worker processes on this machine (see the module docstring).

    :ivar settings: the workers' :class:`~guardchain.certify.sweep_worker.CellWorker` settings.
    :ivar log_path: worker number -> the file its stdout and stderr go to (``None``: inherited).
    """

    jobs: int
    settings: dict[str, Any]
    log_path: Callable[[int], str] | None = None
    name: str = "local"
    _workers: list[_Process] = field(default_factory=list)
    _started: int = 0

    def _start(self) -> _Process:
        import multiprocessing

        from guardchain.certify.sweep_worker import local_worker_main

        context = multiprocessing.get_context("spawn")
        inbox_read, inbox_write = context.Pipe(duplex=False)
        outbox_read, outbox_write = context.Pipe(duplex=False)
        self._started += 1
        log = None if self.log_path is None else self.log_path(self._started)
        process = context.Process(
            target=local_worker_main,
            args=(inbox_read, outbox_write, self.settings, log),
            name=f"guardchain-sweep-{self._started}",
            daemon=True,
        )
        try:
            process.start()
        except OSError as exc:
            raise GuardchainError.single(
                CertifyErrorCode.SWEEP_BACKEND, f"cannot start a worker process: {exc}"
            ) from exc
        inbox_read.close()
        outbox_write.close()
        return _Process(process, inbox_write, outbox_read)

    def run(self, tasks: Sequence[dict[str, Any]], emit: Emit) -> None:
        """Run every task on the pool (see :class:`Backend`)."""
        from multiprocessing.connection import wait

        pending = deque(tasks)
        deaths = _Deaths(self.jobs)
        self._workers = [self._start() for _ in range(min(self.jobs, len(pending)))]
        try:
            while pending or any(w.task is not None for w in self._workers):
                for worker in self._workers:
                    if worker.task is None and pending:
                        worker.task = _next_task(pending, worker.affinity)
                        worker.inbox.send(worker.task)
                waiting = [w.outbox for w in self._workers] + [w.process.sentinel for w in self._workers]
                wait(waiting, timeout=1.0)
                alive = []
                for worker in self._workers:
                    self._drain(worker, emit, deaths)
                    if worker.process.is_alive():
                        alive.append(worker)
                        continue
                    self._drain(worker, emit, deaths)  # whatever it said before it died
                    worker.process.join()
                    how = _signal_name(worker.process.exitcode)
                    deaths.died(how, "the worker logs" if self.log_path is not None else "")
                    if worker.task is not None:
                        emit(died(worker.task["id"], how))
                    if pending:
                        alive.append(self._start())
                self._workers = alive
        finally:
            self.stop()

    def _drain(self, worker: _Process, emit: Emit, deaths: _Deaths) -> None:
        while True:
            try:
                if not worker.outbox.poll():
                    return
                event = worker.outbox.recv()
            except (EOFError, OSError):
                return
            if event.get("type") == "finished" and worker.task is not None and event.get("cell") == worker.task["id"]:
                worker.affinity = worker.task["affinity"] if event.get("status") == "done" else None
                worker.task = None
                deaths.finished()
            emit(event)

    def stop(self) -> None:
        """Ask every worker to exit, then terminate those that do not within :data:`STOP_GRACE_S`."""
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.inbox.send(None)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self._workers:
            if worker.task is not None:  # interrupted mid-cell: no point waiting for it
                worker.process.terminate()
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            for end in (worker.inbox, worker.outbox):
                end.close()
        self._workers = []


# -- Ray ---------------------------------------------------------------------------------------------------------


class _RayCellActor:
    """A Ray actor holding a :class:`~guardchain.certify.sweep_worker.CellWorker`."""

    def __init__(self, settings: dict[str, Any], queue: Any) -> None:
        from guardchain.certify.sweep_worker import CellWorker, limit_threads

        limit_threads(int(settings["threads"]))
        self._worker = CellWorker(settings)
        self._queue = queue

    def pid(self) -> int:
        """The actor's process id."""
        return os.getpid()

    def run(self, task: dict[str, Any]) -> Event:
        """Run one cell, sending its progress events to the queue."""

        def emit(event: Event) -> None:
            with contextlib.suppress(Exception):  # a full or gone queue only loses progress, never the cell
                self._queue.put_nowait(event)

        emit({"type": "started", "cell": task["id"], "pid": os.getpid()})
        return self._worker.run(task, emit)


@dataclass
class RayBackend:
    """``jobs`` Ray actors (see the module docstring).

    :ivar address: the cluster (``ray.init(address=...)``); ``None``: ``RAY_ADDRESS`` if set, else a local Ray
        instance started for this sweep (and stopped after it).
    """

    jobs: int
    settings: dict[str, Any]
    address: str | None = None
    name: str = "ray"

    def run(self, tasks: Sequence[dict[str, Any]], emit: Emit) -> None:
        """Run every task on Ray actors (see :class:`Backend`)."""
        ray = _import_ray()
        threads = int(self.settings["threads"])
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError... for an address
                where = f"at {self.address!r}" if self.address else "locally"
                raise GuardchainError.single(
                    CertifyErrorCode.SWEEP_BACKEND, f"cannot start or reach a Ray cluster {where}: {exc}"
                ) from exc
        try:
            self._run(ray, tasks, emit, threads)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any, tasks: Sequence[dict[str, Any]], emit: Emit, threads: int) -> None:
        from ray.util.queue import Queue

        queue = Queue()
        env = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        actor_class = ray.remote(num_cpus=threads, max_restarts=0, runtime_env={"env_vars": env})(_RayCellActor)
        pending = deque(tasks)
        actors: list[dict[str, Any]] = []

        def start() -> dict[str, Any]:
            return {"actor": actor_class.remote(self.settings, queue), "task": None, "ref": None, "affinity": None}

        actors = [start() for _ in range(min(self.jobs, len(pending)))]
        deaths = _Deaths(self.jobs)
        try:
            while pending or any(a["task"] is not None for a in actors):
                for slot in actors:
                    if slot["task"] is None and pending:
                        slot["task"] = _next_task(pending, slot["affinity"])
                        slot["ref"] = slot["actor"].run.remote(slot["task"])
                refs = [a["ref"] for a in actors if a["ref"] is not None]
                done, _ = ray.wait(refs, num_returns=1, timeout=0.5)
                self._drain(queue, emit)
                for index, slot in enumerate(actors):
                    if slot["ref"] is None or slot["ref"] not in done:
                        continue
                    task = slot["task"]
                    try:
                        outcome = ray.get(slot["ref"])
                    except ray.exceptions.RayActorError as exc:
                        self._drain(queue, emit)
                        how = f"(a Ray actor) died: {type(exc).__name__}"
                        emit(died(task["id"], how))
                        deaths.died(how)
                        actors[index] = start()
                        continue
                    deaths.finished()
                    slot["affinity"] = task["affinity"] if outcome.get("status") == "done" else None
                    slot["task"] = slot["ref"] = None
                    emit(outcome)
            self._drain(queue, emit)
        finally:
            for slot in actors:
                ray.kill(slot["actor"])
            queue.shutdown()

    @staticmethod
    def _drain(queue: Any, emit: Emit) -> None:
        while True:
            try:
                events = queue.get_nowait_batch(min(queue.qsize(), 1000))
            except Exception:
                return
            if not events:
                return
            for event in events:
                emit(event)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise GuardchainError.single(
            CertifyErrorCode.SWEEP_BACKEND,
            "--backend ray needs Ray, which is not installed",
            hint="pip install 'guardchain-certify[ray]' (or pip install ray)",
        ) from exc
    return ray
