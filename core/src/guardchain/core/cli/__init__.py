"""The ``guardchain`` command line.

Exit codes (``EXIT_*`` below; ``docs/chains.md`` lists them): 0 success; 1 a check or run that completed and
found a failure (``plugins check`` with a broken plugin, ``doctor`` with any problem — an unreadable file
included —, ``run`` with a failed step or a rolled-back edit); 2 bad usage or bad input (unknown option; for
``run``, a chain file that is invalid or cannot start); 3 an unexpected error (``GC-INTERNAL``: a bug, never a
verdict); 130 interrupted (``GC-INTERRUPTED``, Ctrl-C); 141 standard output closed early (a broken pipe). Every
error is one coded line on stderr, never a traceback. Logs go to stderr; machine output (``--format json``) to
stdout.

Everything heavy is imported inside the commands: ``guardchain --help`` must stay fast and never import torch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

import click

from guardchain.core import __version__
from guardchain.core.cli.chain_commands import config_group, doctor, run
from guardchain.core.cli.plugin_commands import plugins
from guardchain.core.cli.state import AppState
from guardchain.core.errors import ErrorCode, GuardchainError, Problem, describe_exception
from guardchain.core.process import (
    ALLOCATOR_POLICIES,
    configure_allocator,
    configure_collector,
    configure_threads,
    release_at_exit,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

BUILTIN_COMMANDS = ("plugins", "config", "doctor", "run")

#: Commands first-party members add, and the distribution to install for each: only used to say what to install
#: when a command is missing (the kernel does not provide them; the members register them through the hook).
KNOWN_PLUGIN_COMMANDS = {"certify": "guardchain-certify", "verify": "guardchain-certify", "report": "guardchain-report"}


class GuardchainGroup(click.Group):
    """The root group: built-in commands plus those plugins add through ``guardchain_register_commands``.

    Plugin commands are loaded on first need only: when help lists the commands, or when a command name is not a
    built-in one.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name in KNOWN_PLUGIN_COMMANDS and self.get_command(ctx, name) is None:
            ctx.fail(
                f"No such command {name!r}: it comes from the plugin distribution {KNOWN_PLUGIN_COMMANDS[name]}, "
                f"which is not installed or is disabled (pip install {KNOWN_PLUGIN_COMMANDS[name]}; "
                "'guardchain plugins list' shows "
                "what is)."
            )
        return super().resolve_command(ctx, args)

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        state = AppState.of(ctx)
        if state.plugin_commands_loaded:
            return
        state.plugin_commands_loaded = True
        # click resolves the subcommand before the root callback runs: take --disable-plugin from the parsed
        # options now, or the registry that finds the commands would load a plugin the user disabled
        state.disabled = tuple(ctx.params.get("disabled") or state.disabled)
        # the registry (pluggy, entry points) loads only when a command needs plugins
        from guardchain.core.registry import PluginStatus

        registry = state.registry
        for plugin_name, group, problems in registry.register_commands(click.Group):
            for problem in problems:
                state.warn(problem.render())
            for name, command in group.commands.items():
                if name in self.commands:
                    problem = Problem(
                        ErrorCode.PLUGIN_CONFLICT,
                        f"plugin {plugin_name!r} tried to add command {name!r}, which already exists; refused",
                    )
                    registry.record_problem(plugin_name, PluginStatus.CONFLICT, problem)
                    state.warn(problem.render())
                    continue
                self.add_command(command, name)


@click.group(cls=GuardchainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="guardchain", message="%(prog)s %(version)s")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "pretty", "json"]),
    default="auto",
    show_default=True,
    help="Log format on stderr: pretty on a terminal, JSON lines otherwise (auto).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Minimum level of log events.",
)
@click.option(
    "--disable-plugin",
    "disabled",
    multiple=True,
    metavar="NAME",
    help="Do not load this plugin (entry point or distribution name). Repeatable; adds to GUARDCHAIN_DISABLE_PLUGINS.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="GUARDCHAIN_THREADS",
    help="CPU threads for the numerical libraries (sets OMP_NUM_THREADS and MKL_NUM_THREADS before any plugin "
    "loads them). Default: theirs (one per core). Env: GUARDCHAIN_THREADS.",
)
@click.option(
    "--allocator",
    type=click.Choice(ALLOCATOR_POLICIES),
    default=ALLOCATOR_POLICIES[0],
    show_default=True,
    envvar="GUARDCHAIN_ALLOCATOR",
    help="C allocator policy: retain keeps large freed buffers for reuse (faster forward passes on glibc Linux); "
    "system keeps the C library's defaults. Env: GUARDCHAIN_ALLOCATOR.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    log_format: str,
    log_level: str,
    disabled: tuple[str, ...],
    threads: int | None,
    allocator: str,
) -> None:
    """Measure and certify what happens inside transformer models when their weights are edited.

    Every capability (adapters, edits, guards, metrics, interventions, datasets) is a plugin found through the
    `guardchain.plugins` entry-point group: `guardchain plugins list` shows them.

    Environment: GUARDCHAIN_ALLOW_NETWORK=1 allows downloading hub models and datasets (guardchain is offline
    by default); GUARDCHAIN_PLUGINS=a,b loads only those plugins (empty: none);
    GUARDCHAIN_DISABLE_PLUGINS=a,b skips those; GUARDCHAIN_TRACE_PLUGINS=1 logs every hook call;
    GUARDCHAIN_THREADS and GUARDCHAIN_ALLOCATOR set --threads and --allocator.

    Exit codes: 0 ok; 1 a check or run found a failure; 2 bad usage or input; 3 unexpected error
    (GC-INTERNAL); 130 interrupted (GC-INTERRUPTED).
    """
    configure_threads(threads)
    configure_allocator(allocator)
    state = AppState.of(ctx)
    state.log_format = log_format
    state.log_level = log_level
    state.disabled = disabled


for _command in (plugins, config_group, doctor, run):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the CLI and return its exit code; every error is one coded line.

    Click's own handling is replaced (``standalone_mode=False``) because it prints ``Aborted!`` and exits 1 on
    Ctrl-C, and lets any other exception through as a traceback; 1 means "a check failed" here, never a crash.
    """
    try:
        code = cli.main(args=argv, prog_name="guardchain", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _fail(Problem(ErrorCode.INTERRUPTED, "interrupted; no further step ran"), EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except GuardchainError as exc:  # commands catch their own; this is the last net
        for problem in exc.problems:
            click.echo(problem.render(), err=True)
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _silence_broken_pipe()
            return EXIT_BROKEN_PIPE
        return _internal(exc)
    except Exception as exc:
        return _internal(exc)
    return code if isinstance(code, int) else EXIT_OK


def console_main(argv: list[str] | None = None) -> int:
    """The ``guardchain`` console script and ``python -m guardchain.core``: :func:`main` in a process it owns.

    The collector is tuned for a command that loads thousands of long-lived modules, and what is still alive when
    the command returns is frozen so that the interpreter's teardown skips it (:mod:`guardchain.core.process`).
    Only here, never in :func:`main`, which tests and programs call in a process that goes on.
    """
    configure_collector()
    code = main(argv)
    release_at_exit()
    return code


def _fail(problem: Problem, code: int) -> int:
    with contextlib.suppress(OSError):
        click.echo(problem.render(), err=True)
    return code


def _internal(exc: Exception) -> int:
    """``GC-INTERNAL`` on one line; the traceback goes to the debug log only (no locals, so never a model)."""
    from guardchain.core.errors import traceback_text  # only when a command crashed
    from guardchain.core.logs import get_logger  # only when a command crashed

    get_logger("guardchain.cli").debug("internal.error", traceback=traceback_text(exc))
    return _fail(
        Problem(
            ErrorCode.INTERNAL,
            f"unexpected error: {describe_exception(exc)}",
            hint="this is a bug in guardchain or in a plugin; --log-level debug shows the traceback",
        ),
        EXIT_INTERNAL,
    )


def _silence_broken_pipe() -> None:
    """The reader of stdout went away: point stdout at /dev/null so that the interpreter's final flush is quiet."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
