"""Registration module of guardchain-report (entry point ``report``): light, no torch, no numpy at import.

It adds the ``report`` command through ``guardchain_register_commands`` and renders the certification member's
``metric_gate`` reports through ``guardchain_render_result`` — a plugin may draw another's capability when it
knows its result (:mod:`guardchain.report.gate_view`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    import click

    from guardchain.core.views import ResultView

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def guardchain_register_commands(cli: click.Group) -> None:
    """Add ``report``."""
    from guardchain.report.cli import report

    cli.add_command(report)


#: the distribution whose ``metric_gate`` reports this member draws
CERTIFY = "guardchain-certify"


@hookimpl(trylast=True)
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any]
) -> ResultView | None:
    """Draw guardchain-certify's ``metric_gate`` report (baseline vs subject, interval and bounds); nothing else."""
    if kind != "guard" or name != "metric_gate" or distribution not in {CERTIFY, None}:
        return None
    from guardchain.report.gate_view import metric_gate_view

    return metric_gate_view(result)
