"""What a sweep worker does: run cells one after another, keeping one baseline loaded and sharing the cache.

A worker is a process of its own (a local pool's, or a Ray actor's). :func:`limit_threads` runs first, before
torch is imported, so that ``jobs`` workers with ``threads`` threads each do not oversubscribe the machine. Then
:class:`CellWorker` runs each cell through :func:`guardchain.certify.pipeline.certify` with the worker's
:class:`~guardchain.certify.baseline.BaselineSlot` (the baseline is loaded once per worker, and restored bit for
bit between cells) and the shared :class:`~guardchain.certify.cache.BaselineCache` (evaluated once per sweep).

A cell's outcome is a plain dict (it crosses process boundaries): ``{"type": "finished", "cell", "status":
"done" | "failed", "verdict", "error": {"code", "message", "path"} | None, "wall_s", "cache_hit", "reused",
"pid"}``. A cell that raises is recorded as failed with its coded problem and the worker goes on with the next.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardchain.core.process import ALLOCATOR_VARIABLE, configure_allocator, configure_collector

Event = dict[str, Any]
Emit = Callable[[Event], None]

#: Environment variables that bound the threads of the numeric libraries torch and numpy use.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: Quiet the libraries' own progress bars in workers (the sweep draws its own).
QUIET_VARIABLES = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
#: Seconds between two progress events of one task (the last one is always sent).
STEP_INTERVAL_S = 0.2


def worker_settings(threads: int, cache: Any = None, block: tuple[str, ...] = (), cwd: str | None = None) -> Event:
    """The settings every worker of a sweep gets (plain values: they cross process and machine boundaries).

    The allocator policy is this process's (``GUARDCHAIN_ALLOCATOR``, set by the CLI's ``--allocator``): a spawned
    process or a Ray actor does not inherit the C allocator's settings, so each worker applies it again.

    :param threads: threads per worker (set before torch loads).
    :param cache: the :class:`~guardchain.certify.cache.BaselineCache` to share, or ``None`` for none.
    :param block: plugins to leave out (``--disable-plugin``).
    :param cwd: where relative paths point (default: this process's working directory).
    """
    return {
        "threads": threads,
        "cache_dir": None if cache is None else str(cache.root),
        "cache_max_bytes": None if cache is None else cache.max_bytes,
        "block": list(block),
        "cwd": cwd or os.getcwd(),
        "allocator": os.environ.get(ALLOCATOR_VARIABLE),
    }


def default_threads(jobs: int) -> int:
    """Threads per worker so that ``jobs`` workers use the machine's cores without oversubscribing it."""
    return max(1, (os.cpu_count() or 1) // jobs)


def limit_threads(threads: int) -> None:
    """Set the thread variables (and torch's own count, if torch is already imported) to ``threads``."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.update(QUIET_VARIABLES)
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


class CellWorker:
    """Runs cells in this process (see the module docstring).

    :param settings: ``threads``, ``cache_dir`` (``None``: no cache), ``cache_max_bytes``, ``block`` (plugins to
        leave out, as ``--disable-plugin``), ``cwd`` (the sweep's working directory, where relative paths point).
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        limit_threads(int(settings["threads"]))
        configure_allocator(settings.get("allocator"))
        configure_collector()
        cwd = settings.get("cwd")
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        # imported here, after limit_threads: torch and numpy read the thread variables when they load
        import torch

        torch.set_num_threads(int(settings["threads"]))
        from guardchain.certify.baseline import BaselineSlot
        from guardchain.certify.cache import BaselineCache
        from guardchain.core.registry import Registry, RegistrySettings

        self.registry = Registry.discover(RegistrySettings.from_env(block=tuple(settings.get("block") or ())))
        self.slot = BaselineSlot()
        directory = settings.get("cache_dir")
        self.cache = None
        if directory is not None:
            self.cache = BaselineCache(root=Path(str(directory)), max_bytes=int(settings["cache_max_bytes"]))

    def run(self, task: dict[str, Any], emit: Emit) -> Event:
        """Run one cell; report stages and steps through ``emit``; return its outcome (never raises, except for
        an interrupt)."""
        from guardchain.certify.pipeline import certify
        from guardchain.certify.request import CertifyRequest
        from guardchain.core.errors import GuardchainError, describe_exception

        cell = str(task["id"])
        began = time.perf_counter()
        loads = self.slot.loads
        outcome: Event = {"type": "finished", "cell": cell, "pid": os.getpid(), "error": None, "verdict": None}
        last: dict[str, float] = {}

        def stage(message: str) -> None:
            emit({"type": "stage", "cell": cell, "message": message})

        def step(name: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if done >= total or now - last.get(name, 0.0) >= STEP_INTERVAL_S:
                last[name] = now
                emit({"type": "step", "cell": cell, "task": name, "done": done, "total": total})

        try:
            request = CertifyRequest.model_validate(task["request"])
            certificate = certify(
                request, self.registry, progress=stage, step_progress=step, cache=self.cache, slot=self.slot
            )
        except GuardchainError as exc:
            first = exc.problems[0]
            error = {"code": str(first.code), "message": first.message, "path": first.path}
            outcome |= {"status": "failed", "error": error}
        except Exception as exc:  # a bug in a capability: this cell fails, the sweep goes on
            error = {"code": "GC-INTERNAL", "message": describe_exception(exc), "path": ""}
            outcome |= {"status": "failed", "error": error}
        else:
            record = certificate.baseline_cache
            outcome |= {
                "status": "done",
                "verdict": certificate.verdict,
                "cache_hit": None if record is None else record.hit,
            }
        outcome["reused"] = self.slot.loads == loads
        outcome["wall_s"] = round(time.perf_counter() - began, 3)
        return outcome


def local_worker_main(inbox: Any, outbox: Any, settings: dict[str, Any], log_file: str | None) -> None:
    """Entry point of a local pool's worker process (spawned): cells come in on ``inbox`` (``None`` ends it),
    events and outcomes go out on ``outbox`` — one pipe each way per worker, so a worker that is killed cannot
    take a lock or a message of another with it. Ctrl-C is left to the parent, which stops the workers."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(int(settings["threads"]))
    if log_file:
        _redirect_output(log_file)
    worker = CellWorker(settings)
    outbox.send({"type": "ready", "pid": os.getpid()})
    while True:
        try:
            task = inbox.recv()
        except EOFError:
            return
        if task is None:
            return
        outbox.send({"type": "started", "cell": task["id"], "pid": os.getpid()})
        outbox.send(worker.run(task, outbox.send))


def _redirect_output(log_file: str) -> None:
    """Send this process's stdout and stderr (library warnings, progress bars) to ``log_file``."""
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
