"""What a report is drawn from: a certification folder (``certificate.json``) or a chain run folder (``run.json``).

Both files are read bounded (64 MiB, 64 levels of nesting) and checked for the schema this guardchain writes. The
run's files are listed for the renderers (``artifacts``: name -> path): for a chain run the names its record lists
(``RunRecord.artifacts``), for a certification the names its manifest lists (``.guardchain/manifest.json``), in
both cases only regular files that resolve inside the folder — a name from the JSON never reaches outside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from guardchain.core import files
from guardchain.core.errors import GuardchainError
from guardchain.report.codes import ReportErrorCode

MAX_BYTES = 64 << 20
MAX_DEPTH = 64
CERTIFICATE = "certificate.json"
RUN_RECORD = "run.json"
MANIFEST = ".guardchain/manifest.json"
CERTIFICATE_SCHEMA = 2
#: top-level fields of a certificate the report reads (the certificate's JSON Schema has them all)
CERTIFICATE_FIELDS = ("verdict", "rolled_back", "mode", "gates", "guards", "provenance", "timing", "policy")


@dataclass(frozen=True)
class RunFolder:
    """A folder to report on.

    :ivar path: the folder.
    :ivar kind: ``certification`` or ``chain``.
    :ivar data: the parsed ``certificate.json`` or ``run.json``.
    :ivar artifacts: files the run wrote, by name (relative to the folder) -> path.
    """

    path: Path
    kind: Literal["certification", "chain"]
    data: dict[str, Any]
    artifacts: dict[str, Path] = field(default_factory=dict)


def open_folder(path: Path) -> RunFolder:
    """Read a certification or chain run folder.

    :raises GuardchainError: ``GC-REPORT-NOT-A-RUN`` (no folder, or neither file) or ``GC-REPORT-UNREADABLE``.
    """
    path = Path(path)
    if not path.is_dir():
        raise GuardchainError.single(
            ReportErrorCode.NOT_A_RUN,
            f"{str(path)!r} is not a folder" if path.exists() else f"{str(path)!r} does not exist",
            hint="give the folder of a certification (guardchain certify --out) or of a chain run "
            "(guardchain run --out)",
        )
    if (path / CERTIFICATE).exists():
        data = read_json(path / CERTIFICATE)
        _check_certificate(path / CERTIFICATE, data)
        return RunFolder(path, "certification", data, _listed(path, _manifest_files(path)))
    if (path / RUN_RECORD).exists():
        raw = read_json(path / RUN_RECORD)
        from pydantic import ValidationError

        from guardchain.core.records import RunRecord  # pydantic's validation, only for a chain run

        try:
            record = RunRecord.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _unreadable(
                path / RUN_RECORD, f"not a run record of this guardchain ({where}: {first['msg']})"
            ) from exc
        names = list(record.artifacts.values())
        return RunFolder(path, "chain", raw, _listed(path, names))
    raise GuardchainError.single(
        ReportErrorCode.NOT_A_RUN,
        f"{str(path)!r} holds neither {CERTIFICATE} (a certification) nor {RUN_RECORD} (a chain run)",
    )


def _unreadable(path: Path, why: str) -> GuardchainError:
    return GuardchainError.single(ReportErrorCode.UNREADABLE, f"cannot read {str(path)!r}: {why}")


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object from ``path``, bounded in size and depth.

    :raises GuardchainError: ``GC-REPORT-UNREADABLE``.
    """
    data = files.read_json(path, code=ReportErrorCode.UNREADABLE, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    if not isinstance(data, dict):
        raise _unreadable(path, "not a JSON object")
    return data


def _check_certificate(path: Path, data: dict[str, Any]) -> None:
    version = data.get("schema_version")
    if version != CERTIFICATE_SCHEMA:
        raise _unreadable(
            path, f"certificate schema version {version!r}; this report reads version {CERTIFICATE_SCHEMA}"
        )
    missing = [name for name in CERTIFICATE_FIELDS if name not in data]
    if missing:
        raise _unreadable(path, f"not a certificate: no {', '.join(missing)}")
    if data["verdict"] not in {"PASS", "FAIL"} or not isinstance(data["gates"], list):
        raise _unreadable(path, "not a certificate: its verdict or gates are malformed")
    for name in ("guards",):
        if not isinstance(data[name], list):
            raise _unreadable(path, f"not a certificate: {name} is not a list")
    for name in ("provenance", "timing", "policy"):
        if not isinstance(data[name], dict):
            raise _unreadable(path, f"not a certificate: {name} is not an object")


def _manifest_files(path: Path) -> list[str]:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return []
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    files = data.get("files") if isinstance(data, dict) else None
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _listed(root: Path, names: list[str]) -> dict[str, Path]:
    """``names`` that are regular files inside ``root`` (after resolving links), by name."""
    base = root.resolve()
    out: dict[str, Path] = {}
    for name in names:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            continue
        target = (root / relative).resolve()
        if target.is_relative_to(base) and target.is_file():
            out[name] = target
    return out
