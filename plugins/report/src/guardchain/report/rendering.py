"""One result through the renderer hook (``guardchain_render_result``), with the generic view as the fallback.

The capability's own plugin is asked first (found from its registered spec; a capability whose plugin is not
installed is still offered to every other plugin), then the others. A renderer that fails is named next to the
generic view, so a broken plugin never hides a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardchain.core.errors import GuardchainError, Problem
from guardchain.core.kinds import CapabilityKind
from guardchain.core.views import ResultView
from guardchain.report.blocks import Ids, json_details, problem_note, view
from guardchain.report.generic import generic_view
from guardchain.report.markup import Html, join

if TYPE_CHECKING:
    from guardchain.core.registry import Registry


@dataclass(frozen=True)
class Rendered:
    """A result's view and what went wrong while asking for it.

    :ivar view: the plugin's view, or the generic one.
    :ivar generic: whether the generic view is shown (no plugin answered).
    :ivar problems: ``GC-HOOK-FAILED`` per renderer that raised or answered something else.
    """

    view: ResultView
    generic: bool
    problems: list[Problem] = field(default_factory=list)


def render(
    registry: Registry | None,
    kind: str,
    name: str,
    result: Mapping[str, Any],
    artifacts: Mapping[str, Path],
    *,
    distribution: str | None = None,
    plugin: str | None = None,
) -> Rendered:
    """Ask the hook for the view of ``result`` (``name``: bare or ``distribution:name``)."""
    qualifier, _, bare = name.rpartition(":")
    distribution = distribution or qualifier or None
    if registry is None:
        return Rendered(generic_view(kind, bare, result), generic=True)
    if plugin is None:
        plugin, distribution = _owner(registry, kind, bare, distribution)
    answer, problems = registry.render_result(kind, bare, plugin, distribution, result, artifacts)
    if isinstance(answer, ResultView):
        return Rendered(answer, generic=False, problems=problems)
    return Rendered(generic_view(kind, bare, result), generic=True, problems=problems)


def _owner(registry: Registry, kind: str, bare: str, distribution: str | None) -> tuple[str | None, str | None]:
    """The plugin and distribution that registered ``kind`` ``bare`` (``None`` when it is not installed)."""
    try:
        capability = CapabilityKind(kind)
        spec = registry.get_spec(capability, f"{distribution}:{bare}" if distribution else bare)
    except (ValueError, GuardchainError):
        return None, distribution
    return spec.plugin, spec.distribution


def rendered_html(rendered: Rendered, result: Mapping[str, Any], ids: Ids, *, level: int = 3) -> Html:
    """The view, a note per failed renderer, and the result's JSON in a closed ``<details>``."""
    notes = [
        problem_note(f"{p.code}: {p.message}" + (" — showing the generic view." if rendered.generic else ""))
        for p in rendered.problems
    ]
    return join([*notes, view(rendered.view, ids, level=level), json_details(dict(result), "Result as JSON")])
