"""From a folder to a page: :func:`build_page` draws, :func:`write_report` checks, locks, draws and writes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from guardchain.core.files import write_atomic
from guardchain.report import __version__
from guardchain.report.blocks import Ids
from guardchain.report.page import document
from guardchain.report.source import CERTIFICATE, open_folder
from guardchain.report.write import (
    check_target,
    folder_lock,
    is_certification_folder,
    register,
    relative_inside,
)

if TYPE_CHECKING:
    from guardchain.core.registry import Registry

DEFAULT_NAME = "report.html"


def build_page(run_dir: Path, registry: Registry | None) -> str:
    """The HTML page of a certification or chain run folder (``registry``: whose renderers to ask; ``None`` draws
    every result with the generic view).

    :raises GuardchainError: ``GC-REPORT-NOT-A-RUN`` or ``GC-REPORT-UNREADABLE``.
    """
    folder = open_folder(run_dir)
    ids = Ids()
    if folder.kind == "certification":
        from guardchain.report.certificate_view import certificate_page

        title, banner, sections = certificate_page(folder, registry, ids)
    else:
        from guardchain.report.run_view import run_page

        title, banner, sections = run_page(folder, registry, ids)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = (
        f"Written by guardchain-report {__version__} on {stamp} from {folder.path.name}/ "
        f"({'certificate.json' if folder.kind == 'certification' else 'run.json'}). Self-contained: no script, no "
        "network; numbers are rounded for reading — hover a value, or open a JSON block, for full precision."
    )
    return document(title, banner, sections, footer)


def write_report(run_dir: Path, out: Path | None, registry: Registry | None) -> Path:
    """Draw the report of ``run_dir`` and write it to ``out`` (default ``run_dir/report.html``); see
    :mod:`guardchain.report.write` for what may be overwritten and how a certification folder records it.

    :returns: the path written.
    :raises GuardchainError: the ``GC-REPORT-*`` codes and ``GC-OUTPUT-WRITE``.
    """
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / DEFAULT_NAME
    check_target(target)
    certification = (run_dir / CERTIFICATE).exists() and is_certification_folder(run_dir)
    lock = folder_lock(run_dir) if certification else contextlib.nullcontext()
    with lock:
        page = build_page(run_dir, registry)
        check_target(target)  # again, just before writing: nothing appeared there meanwhile
        name = relative_inside(run_dir, target) if certification else None
        if name is not None:
            register(run_dir, name)
        write_atomic(target, page)
    return target
