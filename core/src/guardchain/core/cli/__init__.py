"""The ``guardchain`` command line.

Exit codes: 0 success; 1 a check or run that completed and found a failure (``plugins check`` with a broken
plugin, ``doctor`` with any problem — an unreadable file included —, ``run`` with a failed step or a rolled-back
edit); 2 bad usage or bad input (unknown option; for ``run``, a chain file that is invalid or cannot start).
Logs go to stderr; machine output (``--format json``) to stdout.

Everything heavy is imported inside the commands: ``guardchain --help`` must stay fast and never import torch.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from guardchain.core import __version__
from guardchain.core.cli.state import AppState
from guardchain.core.errors import GuardchainError

BUILTIN_COMMANDS = ("plugins", "config", "doctor", "run", "certify", "verify")


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

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        state = AppState.of(ctx)
        if state.plugin_commands_loaded:
            return
        state.plugin_commands_loaded = True
        from guardchain.core.errors import ErrorCode, Problem
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
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str, disabled: tuple[str, ...], threads: int | None) -> None:
    """Measure and certify what happens inside transformer models when their weights are edited.

    Every capability (adapters, edits, guards, metrics, interventions, datasets) is a plugin found through the
    `guardchain.plugins` entry-point group: `guardchain plugins list` shows them.

    Environment: GUARDCHAIN_PLUGINS=a,b loads only those plugins (empty: none);
    GUARDCHAIN_DISABLE_PLUGINS=a,b skips those; GUARDCHAIN_TRACE_PLUGINS=1 logs every hook call.
    """
    configure_threads(threads)
    state = AppState.of(ctx)
    state.log_format = log_format
    state.log_level = log_level
    state.disabled = disabled


def configure_threads(threads: int | None, environ: dict[str, str] | None = None) -> None:
    """Set the numerical libraries' threading through the environment, before any of them is loaded.

    ``OMP_WAIT_POLICY=PASSIVE`` (unless set): OpenMP's default is to spin while waiting for work, which on a
    machine where other processes compete for the cores makes multi-threaded torch many times slower than one
    thread (measured: a small Llama's forward took 0.75 s instead of 0.06 s on 2 busy cores); passive waiting
    costs a few microseconds per parallel region. The libraries read these variables once, when loaded, which is
    why the kernel (which never imports torch) sets them here rather than calling ``torch.set_num_threads``.

    :param threads: threads per library, or ``None`` to keep their default.
    :param environ: the environment to change (default ``os.environ``).
    """
    import os

    env = os.environ if environ is None else environ
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)


def _register_builtins() -> None:
    from guardchain.core.cli.certify_commands import certify, verify
    from guardchain.core.cli.chain_commands import config_group, doctor, run
    from guardchain.core.cli.plugin_commands import plugins

    cli.add_command(plugins)
    cli.add_command(config_group)
    cli.add_command(doctor)
    cli.add_command(run)
    cli.add_command(certify)
    cli.add_command(verify)


_register_builtins()


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the CLI, printing expected errors without a traceback."""
    try:
        return cli.main(args=argv, prog_name="guardchain", standalone_mode=True)
    except GuardchainError as exc:  # pragma: no cover - commands catch their own; this is the last net
        for problem in exc.problems:
            click.echo(problem.render(), err=True)
        sys.exit(2)
