"""Registration module of guardchain-interventions (entry point ``interventions``): imports no torch.

Config models and the factory are ``"module:attr"`` references, imported only when a chain uses an intervention;
the rows come from the one table, :mod:`guardchain.interventions.table` (torch-free).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardchain.core import PLUGIN_API_VERSION, hookimpl
from guardchain.interventions.table import CONFIG_MODULE, FACTORY, TABLE

if TYPE_CHECKING:
    from pathlib import Path

    from guardchain.core.specs import Registrar
    from guardchain.core.views import ResultView

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

_UNITS = (
    "Units: positions (null = all; list, per-row lists or slice 'a:b'), heads with n_heads. Error codes: "
    "GC-INTERVENTION-SITE, -SHAPE, -UNITS, -SOURCE, -GENERATION, -CONFIG-VERSION, -LOAD, -MODEL-MISMATCH."
)


@hookimpl
def guardchain_register_interventions(registrar: Registrar) -> None:
    """Register every row of :data:`guardchain.interventions.table.TABLE`."""
    for entry in TABLE:
        registrar.register(
            entry.name,
            summary=entry.summary,
            config_model=f"{CONFIG_MODULE}:{entry.config}",
            factory=FACTORY,
            docs=f"{entry.docs} {_UNITS}",
        )


@hookimpl
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any], artifacts: dict[str, Path]
) -> ResultView | None:
    """Draw intervention steps in the HTML report (:mod:`guardchain.interventions.render`)."""
    if kind != "intervention" or distribution not in {"guardchain-interventions", None}:
        return None
    from guardchain.interventions.render import render_intervention  # only when a report is drawn

    return render_intervention(name, result, artifacts)
