"""Process setup: the numerical libraries' threads, the C allocator's policy and Python's collector."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap

import pytest

from guardchain.core.cli import main
from guardchain.core.process import (
    ALLOCATOR_VARIABLE,
    COLLECTOR_THRESHOLDS,
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    RETAIN_MMAP_THRESHOLD,
    RETAIN_TRIM_THRESHOLD,
    configure_allocator,
    configure_threads,
)

GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc") if hasattr(os, "confstr") else False


def test_threads_are_configured_through_the_environment_before_any_library_loads():
    env: dict[str, str] = {}
    configure_threads(None, env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    configure_threads(3, env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}


class Recorder:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.answer


def test_retain_raises_both_thresholds_and_is_recorded_for_child_processes():
    env: dict[str, str] = {}
    mallopt = Recorder()
    assert configure_allocator("retain", env, mallopt) is True
    assert mallopt.calls == [(M_MMAP_THRESHOLD, RETAIN_MMAP_THRESHOLD), (M_TRIM_THRESHOLD, RETAIN_TRIM_THRESHOLD)]
    assert env == {ALLOCATOR_VARIABLE: "retain"}


def test_system_changes_nothing_and_the_environment_chooses_when_no_policy_is_given():
    mallopt = Recorder()
    env = {ALLOCATOR_VARIABLE: "system"}
    assert configure_allocator(None, env, mallopt) is False
    assert mallopt.calls == []
    assert configure_allocator(None, {}, mallopt) is True  # retain is the default


def test_a_refused_setting_is_reported_and_an_unknown_policy_is_an_error():
    assert configure_allocator("retain", {}, Recorder(answer=0)) is False
    with pytest.raises(ValueError, match="retain, system"):
        configure_allocator("jemalloc", {}, Recorder())


PAGE_FAULTS = textwrap.dedent(
    """
    import ctypes, resource, sys
    from guardchain.core.process import configure_allocator
    configure_allocator(sys.argv[1])
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    size = 64 << 20
    def touch():
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
    touch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    touch()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@pytest.mark.skipif(not GLIBC, reason="the policy changes glibc's allocator only")
def test_retain_reuses_a_freed_64_mib_buffer_without_page_faults_where_the_system_policy_faults_each_page():
    def faults(policy: str) -> int:
        done = subprocess.run([sys.executable, "-c", PAGE_FAULTS, policy], capture_output=True, text=True, check=True)
        return int(done.stdout)

    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert faults("system") >= pages // 2  # a fresh mapping: every page is zeroed on first touch
    assert faults("retain") < pages // 100  # the same heap memory, already mapped


def test_the_cli_option_refuses_an_unknown_policy_with_a_usage_error(capsys):
    assert main(["--allocator", "bogus", "plugins", "list"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_the_console_entry_tunes_the_collector_and_freezes_what_is_alive_once_the_command_returned():
    probe = (
        "import gc, sys\n"
        "from guardchain.core.cli import console_main\n"
        "assert gc.get_freeze_count() == 0\n"
        "code = console_main(['plugins', 'list', '--format', 'json'])\n"
        "print(code, gc.get_threshold(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == f"0 {COLLECTOR_THRESHOLDS} True"
    assert isinstance(json.loads(done.stdout)["plugins"], list)  # the command ran as usual (the kernel alone: none)


def test_main_itself_leaves_the_collector_alone_for_programs_that_go_on(capsys):
    before = gc.get_threshold(), gc.get_freeze_count()
    assert main(["--version"]) == 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
