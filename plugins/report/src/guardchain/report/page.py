"""The page shell: one self-contained HTML document (styles inline, charts as inline SVG, no script, no image file).

A Content-Security-Policy of ``default-src 'none'`` (inline styles and ``data:`` images only) makes the browser
refuse any request the page could make, so a report opened from a ticket never reaches the network, whatever text
a plugin put in it. The first line after the doctype is the :data:`MARKER` comment by which ``guardchain report``
recognises a file it wrote (and may replace).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from guardchain.report import __version__
from guardchain.report.markup import Html, el, esc, join

MARKER = "<!-- guardchain-report: written by `guardchain report`; it may be regenerated or deleted. -->"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class Section:
    """One top-level section of the page (a ``<section>`` with an ``<h2>``, listed in the contents)."""

    id: str
    title: str
    body: Html


def stylesheet() -> str:
    """The page's CSS (light and dark themes, print)."""
    return files("guardchain.report").joinpath("style.css").read_text(encoding="utf-8")


def document(title: str, banner: Html, sections: list[Section], footer: str) -> str:
    """The whole page."""
    toc = el(
        "nav",
        el("ol", *(el("li", el("a", s.title, href=f"#{s.id}")) for s in sections)),
        class_="toc",
        aria_label="Contents",
    )
    body = join(
        el("section", el("h2", s.title, id=f"h-{s.id}"), s.body, id=s.id, aria_labelledby=f"h-{s.id}") for s in sections
    )
    return (
        "<!doctype html>\n"
        f"{MARKER}\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f'<meta name="generator" content="guardchain-report {esc(__version__)}">\n'
        f"<title>{esc(title)}</title>\n<style>\n{stylesheet()}</style>\n</head>\n<body>\n"
        f"<header>{banner}{toc}</header>\n<main>\n{body}\n</main>\n"
        f"{el('footer', footer)}\n</body>\n</html>\n"
    )
