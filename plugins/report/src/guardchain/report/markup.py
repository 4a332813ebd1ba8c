"""Safe HTML building: every string is escaped unless it is already :class:`Html`.

The page is built with f-strings and this one rule instead of a template engine: text from a result (a finding's
message, a model reference, a plugin's summary) is untrusted and always passes through :func:`esc`; markup this
member wrote is wrapped in :class:`Html` once, where it is made.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping


class Html(str):
    """A string of markup that is already safe to place in the page."""

    __slots__ = ()


def esc(value: object) -> Html:
    """``value`` as safe text: :class:`Html` passes unchanged, anything else is ``str()``-ed and escaped."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Html:
    """Concatenate, escaping every part that is not :class:`Html`."""
    return Html(sep.join(esc(p) for p in parts))


def attrs(values: Mapping[str, object | None]) -> Html:
    """`` key="value"`` pairs (escaped); ``None`` and ``False`` drop the attribute, ``True`` writes it bare."""
    out = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return Html("".join(out))


def el(tag: str, *children: object, **attributes: object | None) -> Html:
    """``<tag attributes>children</tag>``; ``class_`` and ``for_`` name the reserved attributes, ``aria_label``
    is written ``aria-label``."""
    return Html(f"<{tag}{attrs(attributes)}>{join(children)}</{tag}>")
