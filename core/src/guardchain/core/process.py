"""How a guardchain process sets itself up: the numerical libraries' threads, the C allocator, Python's collector.

The CLI (the owner of its process) calls these before any plugin imports a numerical library; a sweep's worker
processes call them again from the settings they are given. A program that imports guardchain as a library keeps
its own process settings unless it calls these itself. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
from collections.abc import Callable, MutableMapping

#: The policies ``--allocator`` / ``GUARDCHAIN_ALLOCATOR`` accept; the first is the default.
ALLOCATOR_POLICIES = ("retain", "system")
ALLOCATOR_VARIABLE = "GUARDCHAIN_ALLOCATOR"

#: glibc ``mallopt`` parameter numbers (``<malloc.h>``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: ``retain``: blocks below this many bytes come from the heap, and are reused after ``free``.
RETAIN_MMAP_THRESHOLD = 128 << 20
#: ``retain``: free memory at the top of the heap is given back to the system only above this many bytes.
RETAIN_TRIM_THRESHOLD = 256 << 20


#: Python's collector thresholds in a guardchain process (generations 0, 1, 2); Python's defaults: (700, 10, 10).
COLLECTOR_THRESHOLDS = (10_000, 10, 10)


def configure_collector() -> None:
    """Collect young objects every 10,000 net allocations instead of every 700 (:data:`COLLECTOR_THRESHOLDS`).

    A command imports some 3,000 modules (torch, transformers) whose objects all live to the end. With Python's
    defaults the collector runs its full (oldest-generation) pass 7 times while they load, each walking every
    object alive, and frees almost nothing (294 objects in all): on the certify bench's tiny Llama it took 0.95 s of a
    7.7 s command, 0.73 s of it in those passes; with these thresholds 0.30 s, and no full pass (4 interleaved runs
    each, median command 7.8 s -> 7.3 s). Objects in reference cycles are still freed, a little later.
    """
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def release_at_exit() -> None:
    """Freeze every object still alive (``gc.freeze()``) so that the interpreter's last collections skip them.

    At exit the interpreter otherwise walks all of them while it tears the modules down: with torch and
    transformers loaded, 1.05-1.27 s after a tiny model's certify returned, against 0.16-0.22 s frozen. Nothing is
    lost: atexit handlers still run, and files are flushed and closed by reference counting as before. Only for a
    process that is about to end: frozen objects are never collected.
    """
    gc.freeze()


def configure_threads(threads: int | None, environ: MutableMapping[str, str] | None = None) -> None:
    """Set the numerical libraries' threading through the environment, before any of them is loaded.

    ``OMP_WAIT_POLICY=PASSIVE`` (unless set): OpenMP's default is to spin while waiting for work, which on a
    machine where other processes compete for the cores makes multi-threaded torch many times slower than one
    thread (measured: a small Llama's forward took 0.75 s instead of 0.06 s on 2 busy cores); passive waiting
    costs a few microseconds per parallel region. The libraries read these variables once, when loaded, which is
    why the kernel (which never imports torch) sets them here rather than calling ``torch.set_num_threads``.

    :param threads: threads per library, or ``None`` to keep their default.
    :param environ: the environment to change (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)


def configure_allocator(
    policy: str | None = None,
    environ: MutableMapping[str, str] | None = None,
    mallopt: Callable[[int, int], int] | None = None,
) -> bool:
    """Apply an allocator policy to this process, and record it in the environment for the processes it starts.

    ``retain`` (the default) keeps the memory of large, short-lived buffers for reuse. glibc serves every block
    of 32 MiB or more (its dynamic threshold stops there) with a fresh ``mmap`` and unmaps it on ``free``, and it
    gives free memory at the top of its heap back to the system; the next buffer then takes a page fault on every
    4 KiB page it touches while the kernel zeroes it. A forward pass allocates such buffers at every layer (a batch
    of 16 x 128 tokens over a 4,096-token vocabulary is 32 MiB of logits, as much again for their log-softmax).
    Measured on the certify bench's tiny Llama (2 cores): a decoder forward of 16 windows took 47 ms instead of
    32 ms, the head and its log-softmax 38 ms instead of 17 ms. ``retain`` sets ``M_MMAP_THRESHOLD`` to
    :data:`RETAIN_MMAP_THRESHOLD` and ``M_TRIM_THRESHOLD`` to :data:`RETAIN_TRIM_THRESHOLD`: the heap serves
    those blocks and keeps up to that much free memory mapped. Peak memory is what the run uses at once either
    way; the resident size after a peak stays higher until the process ends. ``system`` leaves the C library's
    defaults, as does any platform other than glibc Linux (macOS, musl), where nothing is changed.

    :param policy: ``retain`` or ``system``; ``None``: ``GUARDCHAIN_ALLOCATOR`` from ``environ``, else ``retain``.
    :param environ: where the policy is read from and written to (default ``os.environ``).
    :param mallopt: the C function to call (tests pass a recorder); default glibc's, found at run time.
    :returns: whether the C allocator was changed.
    :raises ValueError: an unknown policy.
    """
    env = os.environ if environ is None else environ
    chosen = policy if policy is not None else env.get(ALLOCATOR_VARIABLE) or ALLOCATOR_POLICIES[0]
    if chosen not in ALLOCATOR_POLICIES:
        raise ValueError(f"allocator policy must be one of {', '.join(ALLOCATOR_POLICIES)}, not {chosen!r}")
    env[ALLOCATOR_VARIABLE] = chosen
    if chosen == "system":
        return False
    setter = mallopt if mallopt is not None else _glibc_mallopt()
    if setter is None:
        return False
    return all(
        setter(parameter, value) == 1
        for parameter, value in ((M_MMAP_THRESHOLD, RETAIN_MMAP_THRESHOLD), (M_TRIM_THRESHOLD, RETAIN_TRIM_THRESHOLD))
    )


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``int mallopt(int, int)`` of this process, or ``None`` on any other C library."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        if (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            function = ctypes.CDLL(None).mallopt
            function.argtypes = (ctypes.c_int, ctypes.c_int)
            function.restype = ctypes.c_int
            return function
    return None
