"""Hook specifications: the contract between the kernel and every plugin.

A plugin is a module (named by an entry point in the ``guardchain.plugins`` group) that sets
``GUARDCHAIN_PLUGIN_API = 1`` and defines functions decorated with :data:`guardchain.core.hookimpl` whose names
are the hooks below. An implementation may accept any subset of a hook's parameters (new parameters are added
over time; existing ones never change meaning). Hooks are always called with keyword arguments.

The kernel calls every implementation on its own, never as a fan-out: one raising implementation is recorded
against its plugin and never hides the others. Implementations run in pluggy's order: last registered first,
``tryfirst`` / ``trylast`` to move earlier or later. ``hookwrapper`` / ``wrapper`` implementations are not
supported and make the plugin invalid.

Every spec's docstring says when it is called, each parameter, the return contract and ``versionadded``; a test
keeps ``docs/plugins/hooks.md`` and the test suite in step with this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardchain.core.markers import hookspec

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from guardchain.core.config import ChainConfig, StepSection
    from guardchain.core.context import RunContext
    from guardchain.core.records import RunRecord, StepRecord
    from guardchain.core.specs import Registrar
    from guardchain.core.views import ResultView

# ---------------------------------------------------------------------------------------------------------------
# Registration: called once per registry, while the plugin is being loaded.
# ---------------------------------------------------------------------------------------------------------------


@hookspec
def guardchain_register_adapters(registrar: Registrar) -> None:
    """Register the adapters (model loaders) this plugin provides.

    Called once, when a :class:`~guardchain.core.registry.Registry` loads this plugin (every CLI call builds one;
    tests build their own). Call ``registrar.register(name, summary=..., config_model=..., factory=...)`` once per
    adapter. ``factory`` should be a ``"module:attr"`` string so that listing plugins imports neither the
    implementation nor torch.

    :param registrar: records capability specs of kind ``adapter`` for this plugin. Specs are kept only if this
        hook (and every other registration hook of the plugin) returns without raising.
    :returns: None. A return value is ignored.
    :raises: anything raised is recorded against the plugin, which then registers nothing at all: an invalid
        spec as ``GC-SPEC-INVALID`` / ``GC-CAPABILITY-INVALID`` (raised by ``registrar.register``), any other
        exception as ``GC-PLUGIN-REGISTER``.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_register_edits(registrar: Registrar) -> None:
    """Register the weight edits (quantization, pruning, ...) this plugin provides.

    Called once, when a registry loads this plugin, like :func:`guardchain_register_adapters`.

    :param registrar: records capability specs of kind ``edit`` for this plugin; kept only if the plugin's
        registration hooks all return without raising.
    :returns: None. A return value is ignored.
    :raises: like :func:`guardchain_register_adapters`: the plugin then registers nothing.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_register_guards(registrar: Registrar) -> None:
    """Register the guards this plugin provides.

    Called once, when a registry loads this plugin, like :func:`guardchain_register_adapters`. A guard's config
    model usually has a ``mode`` field (``monitor`` or ``gate``).

    :param registrar: records capability specs of kind ``guard`` for this plugin; kept only if the plugin's
        registration hooks all return without raising.
    :returns: None. A return value is ignored.
    :raises: like :func:`guardchain_register_adapters`: the plugin then registers nothing.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_register_metrics(registrar: Registrar) -> None:
    """Register the metrics this plugin provides.

    Called once, when a registry loads this plugin, like :func:`guardchain_register_adapters`.

    :param registrar: records capability specs of kind ``metric`` for this plugin; kept only if the plugin's
        registration hooks all return without raising.
    :returns: None. A return value is ignored.
    :raises: like :func:`guardchain_register_adapters`: the plugin then registers nothing.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_register_interventions(registrar: Registrar) -> None:
    """Register the interventions this plugin provides.

    Called once, when a registry loads this plugin, like :func:`guardchain_register_adapters`.

    :param registrar: records capability specs of kind ``intervention`` for this plugin; kept only if the
        plugin's registration hooks all return without raising.
    :returns: None. A return value is ignored.
    :raises: like :func:`guardchain_register_adapters`: the plugin then registers nothing.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_register_datasets(registrar: Registrar) -> None:
    """Register the data sources this plugin provides.

    Called once, when a registry loads this plugin, like :func:`guardchain_register_adapters`.

    :param registrar: records capability specs of kind ``dataset`` for this plugin; kept only if the plugin's
        registration hooks all return without raising.
    :returns: None. A return value is ignored.
    :raises: like :func:`guardchain_register_adapters`: the plugin then registers nothing.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``guardchain`` command line.

    Called by the CLI, once per invocation, the first time it needs its list of commands (``--help``, or a
    command name it does not know). Each implementation receives its own empty :class:`click.Group`; decorate
    functions with ``@cli.command()`` on it. Its commands are then merged into the main group.

    :param cli: a staging ``click.Group`` for this plugin's commands.
    :returns: None. A return value is ignored.
    :raises: anything raised is recorded as ``GC-HOOK-FAILED`` against the plugin; none of its commands are
        added. A command whose name is already taken (by the kernel or another plugin) is refused with
        ``GC-PLUGIN-CONFLICT``.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------------------------------
# Decisions: the first non-None answer wins.
# ---------------------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def guardchain_resolve_adapter(model_ref: str, hints: dict[str, Any]) -> str | None:
    """Choose the adapter for a model reference that names none.

    Called by the chain runner (and ``guardchain doctor``) when a chain's ``model`` section has a ``ref`` but no
    ``adapter``. Stops at the first non-None result: implementations run last-registered first; mark yours
    ``tryfirst=True`` to be asked before the others, ``trylast=True`` for a catch-all fallback.

    :param model_ref: the reference as written in the chain (a local directory, a packaged model name, a hub id).
    :param hints: extra facts the caller knows. The chain runner passes ``{"is_local_dir": bool}``; callers may
        add keys over time. Each implementation gets its own copy.
    :returns: the registered name of an adapter that can load ``model_ref``, or ``None`` for "not mine".
    :raises: anything raised is recorded as ``GC-HOOK-FAILED`` and the next implementation is asked; the
        recorded failure stops a chain only when no implementation answers.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any], artifacts: dict[str, Path]
) -> ResultView | None:
    """Describe how to show one step's result in the HTML report (``guardchain report``).

    Called by the report once per step of a run (and per guard report, metric gate and edit of a certificate),
    first on the plugin that registered the capability, then on the others; the first non-None answer wins: a
    plugin may render its own capabilities and, when it knows how, another's. A step nobody renders gets a
    generic view.

    :param kind: the capability's kind (``"metric"``, ``"guard"``, ``"edit"``, ``"intervention"``).
    :param name: its registered name (bare).
    :param distribution: the distribution that registered it, to tell same-named capabilities apart.
    :param result: the step's JSON result as the run record (or certificate) holds it: a metric's
        ``MetricResult``, a guard's ``GuardReport``, an edit step's plan, report and guard reports, an
        intervention step's ``{"attached": [sites]}``.
    :param artifacts: the files the run wrote, by the name the run record (or the certification's manifest) gives
        them (relative to the run folder, e.g. ``"llc/traces.json"``) -> their path; only existing regular files
        inside the folder are listed. A renderer reads what its result names (the traces of a sampler, a spectrum
        too large for the result) and must treat the content as untrusted input. Empty when the report has no
        folder.
    :returns: a :class:`~guardchain.core.views.ResultView` (title, summary, text, tables and declarative charts:
        the report draws them), or ``None`` for "not mine".
    :raises: anything raised is recorded as ``GC-HOOK-FAILED``, the next implementation is asked, and the report
        says the renderer failed next to the generic view.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------------------------------
# Observers: notifications around a chain run. Return values are ignored.
# ---------------------------------------------------------------------------------------------------------------


@hookspec
def guardchain_chain_started(chain: ChainConfig, context: RunContext) -> None:
    """A chain run is starting.

    Called by the chain runner after every capability of the chain was resolved and created (so a chain that
    cannot run never starts), before the model is loaded.

    :param chain: the validated chain configuration.
    :param context: the run context; ``context.handle`` is still ``None``.
    :returns: None. A return value is ignored.
    :raises: anything raised is recorded in the run record as ``GC-HOOK-FAILED``; the run goes on.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_step_started(step: StepSection, index: int, context: RunContext) -> None:
    """A chain step is about to run.

    Called by the chain runner immediately before each step of ``chain.steps``.

    :param step: the step's validated envelope (kind, name, sites).
    :param index: the step's position in ``chain.steps`` (0-based).
    :param context: the run context, with the results of the steps before this one.
    :returns: None. A return value is ignored.
    :raises: anything raised is recorded in the run record as ``GC-HOOK-FAILED``; the run goes on.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_step_finished(step: StepSection, index: int, context: RunContext, record: StepRecord) -> None:
    """A chain step has finished, successfully or not.

    Called by the chain runner after each step of ``chain.steps`` that was started, including one that failed.

    :param step: the step's validated envelope.
    :param index: the step's position in ``chain.steps`` (0-based).
    :param context: the run context, including this step's result when it succeeded.
    :param record: the step's record as it will appear in the run record (status, duration, result, error).
    :returns: None. A return value is ignored.
    :raises: anything raised is recorded in the run record as ``GC-HOOK-FAILED``; the run goes on.

    .. versionadded:: 0.1
    """


@hookspec
def guardchain_chain_finished(chain: ChainConfig, context: RunContext, record: RunRecord) -> None:
    """A chain run has finished, successfully or not.

    Called by the chain runner once, after the last step and after interventions were detached, just before the
    run record is written.

    :param chain: the validated chain configuration.
    :param context: the run context.
    :param record: the complete run record (it is written to ``run.json`` after this hook returns).
    :returns: None. A return value is ignored.
    :raises: anything raised is recorded in the run record as ``GC-HOOK-FAILED``.

    .. versionadded:: 0.1
    """
