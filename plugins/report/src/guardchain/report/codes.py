"""The stable error codes of guardchain-report (documented in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`; ``guardchain report`` exits 2 for every one of them.
"""

from __future__ import annotations

from enum import StrEnum


class ReportErrorCode(StrEnum):
    """Codes of expected failures of ``guardchain report``."""

    NOT_A_RUN = "GC-REPORT-NOT-A-RUN"
    UNREADABLE = "GC-REPORT-UNREADABLE"
    OUT_INVALID = "GC-REPORT-OUT-INVALID"
    OUT_NOT_OURS = "GC-REPORT-OUT-NOT-OURS"
    LOCKED = "GC-REPORT-LOCKED"
    MANIFEST = "GC-REPORT-MANIFEST"


DESCRIPTIONS: dict[ReportErrorCode, str] = {
    ReportErrorCode.NOT_A_RUN: "`RUN_DIR` is not a folder, or holds neither a certification (`certificate.json`) "
    "nor a chain run (`run.json`).",
    ReportErrorCode.UNREADABLE: "`certificate.json` or `run.json` cannot be read: not UTF-8 JSON, larger than 64 "
    "MiB, nested deeper than 64 levels, or not a certificate (schema v2) / run record (schema v1) of this "
    "guardchain.",
    ReportErrorCode.OUT_INVALID: "`--out` does not name an `.html` file, or names a folder, a symbolic link or "
    "something else that is not a regular file.",
    ReportErrorCode.OUT_NOT_OURS: "`--out` names an existing file that is not a guardchain report: the report "
    "never overwrites a file it did not write. Choose another name, or remove the file yourself.",
    ReportErrorCode.LOCKED: "A certification is writing into the folder right now (its lock `.guardchain/lock` is "
    "held); run the report when it has finished.",
    ReportErrorCode.MANIFEST: "The certification folder's `.guardchain/manifest.json` is not a manifest guardchain "
    "wrote, so the report cannot record its file there; nothing was written.",
}
