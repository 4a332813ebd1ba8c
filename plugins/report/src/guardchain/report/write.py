"""Writing the report: atomically, never over a file guardchain did not write, and recorded where guardchain keeps
a list of its files.

Rules (each tested):

* the target must be an ``.html`` / ``.htm`` file name; a folder, a symbolic link or another special file is refused
  (``GC-REPORT-OUT-INVALID``);
* an existing file is replaced only if it is a guardchain report — it starts with the page's marker comment
  (:data:`guardchain.report.page.MARKER`); anything else is refused (``GC-REPORT-OUT-NOT-OURS``) and left as it is;
* the page is written to a temporary file in the same folder, then moved over the target (``os.replace``), so a
  reader never sees half a report;
* inside a certification folder (one with ``.guardchain/manifest.json``), the folder's lock ``.guardchain/lock``
  is taken for the whole report (``fcntl.flock``; held by a running certification: ``GC-REPORT-LOCKED``), the
  certificate is read under it, and the report's name is added to the manifest's ``files`` *before* the file is
  created — the same protocol ``guardchain certify`` follows for its own files. So the next certification into
  that folder removes the report with the certificate it describes, and a report never outlives its certificate.

The manifest is a small documented JSON file, ``{"owner": "guardchain", "kind": "certification",
"created_folder": bool, "files": [relative names]}``: this module reads and extends it without importing the
certification member.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.files import write_atomic
from guardchain.report.codes import ReportErrorCode
from guardchain.report.page import MARKER

MARKER_DIR = ".guardchain"
MANIFEST = f"{MARKER_DIR}/manifest.json"
LOCK = f"{MARKER_DIR}/lock"
SUFFIXES = (".html", ".htm")
#: how much of an existing file is read to recognise a guardchain report
HEAD_BYTES = 512


def check_target(target: Path) -> None:
    """Refuse, before any work, a target that is not an HTML file name or is a file guardchain did not write.

    :raises GuardchainError: ``GC-REPORT-OUT-INVALID`` or ``GC-REPORT-OUT-NOT-OURS``.
    """
    if target.suffix.lower() not in SUFFIXES:
        raise GuardchainError.single(
            ReportErrorCode.OUT_INVALID, f"{str(target)!r} is not an .html file name", path="--out"
        )
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise GuardchainError.single(
            ReportErrorCode.OUT_INVALID,
            f"{str(target)!r} is {'a symbolic link' if target.is_symlink() else 'not a regular file'}",
            path="--out",
        )
    if target.exists() and not is_report(target):
        raise GuardchainError.single(
            ReportErrorCode.OUT_NOT_OURS,
            f"{str(target)!r} exists and is not a guardchain report; it was left as it is",
            hint="choose another --out, or remove the file yourself",
            path="--out",
        )


def is_report(path: Path) -> bool:
    """Whether ``path`` is a file ``guardchain report`` wrote (its first bytes hold the marker comment)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return False
    return MARKER.encode() in head


def is_certification_folder(folder: Path) -> bool:
    """Whether ``folder`` keeps a guardchain manifest (a certification folder)."""
    return (folder / MANIFEST).is_file()


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the certification folder's lock (``.guardchain/lock``) for the block.

    :raises GuardchainError: ``GC-REPORT-LOCKED`` when a certification holds it, ``GC-OUTPUT-WRITE`` when it
        cannot be opened.
    """
    import fcntl

    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GuardchainError.single(ErrorCode.OUTPUT_WRITE, f"cannot open the lock of {str(folder)!r}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise GuardchainError.single(
                ReportErrorCode.LOCKED,
                f"a certification is writing into {str(folder)!r} right now",
                hint="run the report when it has finished",
            ) from exc
        yield
    finally:
        os.close(fd)


def register(folder: Path, name: str) -> None:
    """Add ``name`` (relative to ``folder``) to the folder's manifest, before the file is written; call it under
    :func:`folder_lock`.

    :raises GuardchainError: ``GC-REPORT-MANIFEST`` when the manifest is not guardchain's.
    """
    manifest = folder / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("owner") != "guardchain" or not isinstance(files, list):
            raise ValueError("not a guardchain manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GuardchainError.single(
            ReportErrorCode.MANIFEST, f"{str(manifest)!r} is not a manifest guardchain wrote; nothing was written"
        ) from exc
    if name not in files:
        data["files"] = [*files, name]
        write_atomic(manifest, json.dumps(data, indent=2) + "\n")


def relative_inside(folder: Path, target: Path) -> str | None:
    """``target`` relative to ``folder`` (POSIX form) when it lies inside it (outside ``.guardchain``), else None."""
    try:
        relative = target.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    if not relative.parts or relative.parts[0] == MARKER_DIR:
        return None
    return relative.as_posix()
