"""Registration module of guardchain-certify (entry point ``certify``): light, no torch, no pydantic model at import.

It adds the ``certify`` and ``verify`` commands through ``guardchain_register_commands`` — exactly the hook a
third party's commands use — and the ``metric_gate`` guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    import click

    from guardchain.core.specs import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def guardchain_register_commands(cli: click.Group) -> None:
    """Add ``certify`` and ``verify``, ``sweep`` and ``cache``."""
    from guardchain.certify.cli import certify, verify
    from guardchain.certify.sweep_cli import cache, sweep

    cli.add_command(certify)
    cli.add_command(verify)
    cli.add_command(sweep)
    cli.add_command(cache)


@hookimpl
def guardchain_register_guards(registrar: Registrar) -> None:
    """Register ``metric_gate``."""
    registrar.register(
        "metric_gate",
        summary="Any registered metric as a gate: baseline vs subject (paired BCa ratio/difference, z, or verdict).",
        config_model="guardchain.certify.metric_gate:MetricGateConfig",
        factory="guardchain.certify.metric_gate:MetricGate",
        verifier="guardchain.certify.metric_gate:verify_report",
        docs="prepare computes the metric on the baseline, after_edit on the subject, finalize compares: ratio "
        "(per-unit log values: exp of the weighted mean difference, BCa interval), difference (per-unit values), "
        "z ((v_s - v_b) / sqrt(se_b^2 + se_s^2)), verdict (the metric's own). max bounds the interval's upper "
        "end, min its lower end; a violated bound fails the guard (and rolls the edit back). In certify presets: "
        "gates: [{metric: ..., compare: ..., max: ...}].",
    )
