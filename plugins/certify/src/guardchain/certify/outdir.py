"""The output folder of a certification: claimed, locked, and written only where guardchain owns the files.

Rules (each tested):

* a folder that does not exist is created (and recorded as created by guardchain);
* an empty folder, or one holding an earlier guardchain certification (``.guardchain/manifest.json``, or — from
  before manifests — a ``certificate.json`` that parses as one), is claimed; any other non-empty folder is
  refused with ``GC-CERT-OUT-NOT-OURS`` and nothing in it is touched;
* a claimed folder is locked (``fcntl.flock`` on ``.guardchain/lock``) for the whole run: a second run on the
  same folder fails fast with ``GC-CERT-OUT-LOCKED``;
* every file guardchain writes is listed in the manifest *before* it is created, so that an interrupted run
  never leaves a file guardchain could not later recognise as its own;
* a new run first removes the files the previous run listed (and only those), so a failed run never leaves an
  older certificate behind; files the user put there stay;
* each file is written atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from guardchain.certify.codes import CertifyErrorCode
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.files import write_atomic

MARKER = ".guardchain"
MANIFEST = f"{MARKER}/manifest.json"
LOCK = f"{MARKER}/lock"
#: What a certification folder held before manifests existed: the only files such a folder is known to own.
LEGACY_FILES = ("certificate.json", "certificate.md")


class OwnedDir:
    """A claimed, locked output folder (use as a context manager; see the module docstring).

    :ivar path: the folder.
    :ivar created: whether this run created it.
    """

    def __init__(self, path: Path, created: bool, lock_fd: int, previous: list[str]) -> None:
        self.path = path
        self.created = created
        self._lock_fd = lock_fd
        self._previous = previous
        self._files: list[str] = []

    @classmethod
    def claim(cls, path: Path) -> OwnedDir:
        """Check, create if needed, and lock ``path``.

        :raises GuardchainError: ``GC-CERT-OUT-NOT-DIR``, ``GC-CERT-OUT-NOT-OURS``, ``GC-CERT-OUT-LOCKED``, or
            ``GC-OUTPUT-WRITE`` (the folder cannot be created or written).
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise GuardchainError.single(
                CertifyErrorCode.OUT_NOT_DIR, f"{str(path)!r} exists and is not a folder", path="--out"
            )
        created = not path.exists()
        previous: list[str] = []
        if not created:
            previous = _owned_files(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / MARKER).mkdir(exist_ok=True)
            lock_fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise GuardchainError.single(
                ErrorCode.OUTPUT_WRITE, f"cannot create or write the output folder {str(path)!r}: {exc}", path="--out"
            ) from exc
        import fcntl

        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            raise GuardchainError.single(
                CertifyErrorCode.OUT_LOCKED,
                f"another certification is writing into {str(path)!r} right now",
                hint="wait for it to finish, or choose another --out",
                path="--out",
            ) from exc
        owned = cls(path, created, lock_fd, previous)
        try:
            owned._write_manifest(previous)
        except BaseException:
            owned.release()
            raise
        return owned

    def __enter__(self) -> OwnedDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def retire_previous(self) -> None:
        """Remove the files the previous run listed (only those), so that no older certificate outlives a new run.

        Called once the inputs are checked and before the work starts.
        """
        for name in self._previous:
            target = self.path / name
            if target.is_file() or target.is_symlink():
                target.unlink(missing_ok=True)
        for name in sorted({str(Path(n).parent) for n in self._previous}, key=len, reverse=True):
            folder = self.path / name
            if name not in {".", ""} and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # a folder that only held our files, now empty
        self._previous = []
        self._write_manifest([])

    def reserve(self, name: str) -> Path:
        """Record ``name`` (a path relative to the folder) as guardchain's, before it is created; return its path.

        :raises ValueError: ``name`` is absolute or leaves the folder.
        """
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts or relative.parts[0] == MARKER:
            raise ValueError(f"{name!r} is not a path inside the output folder")
        if name not in self._files:
            self._files.append(name)
            self._write_manifest(self._files)
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` to ``name`` atomically (reserved first)."""
        target = self.reserve(name)
        write_atomic(target, text.encode("utf-8"))
        return target

    def write_json(self, name: str, payload: Any) -> Path:
        """Write ``payload`` as indented, key-sorted JSON to ``name`` atomically."""
        return self.write_text(name, json.dumps(payload, indent=2, sort_keys=True) + "\n")

    def record_failure(self, exc: BaseException) -> None:
        """After a failed run: a folder this run created is removed again (only guardchain's files in it; it
        stays if anything else appeared there); an existing folder gets ``failure.json`` saying what failed."""
        if self.created:
            for name in self._files:
                (self.path / name).unlink(missing_ok=True)
            for name in (MANIFEST, LOCK):
                (self.path / name).unlink(missing_ok=True)
            for folder in sorted({(self.path / n).parent for n in self._files}, key=lambda p: -len(p.parts)):
                if folder != self.path and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                (self.path / MARKER).rmdir()
                self.path.rmdir()  # only succeeds when empty: nothing but ours was ever there
            return
        problems = exc.problems if isinstance(exc, GuardchainError) else []
        self.write_json(
            "failure.json",
            {"problems": [p.to_dict() for p in problems], "interrupted_by": None if problems else type(exc).__name__},
        )

    def release(self) -> None:
        """Unlock (the lock file stays; it is guardchain's)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _write_manifest(self, files: list[str]) -> None:
        payload = {"owner": "guardchain", "kind": "certification", "created_folder": self.created, "files": files}
        write_atomic(self.path / MANIFEST, (json.dumps(payload, indent=2) + "\n").encode())


def _owned_files(path: Path) -> list[str]:
    """The files an earlier certification wrote into ``path``; refuses a folder guardchain does not own."""
    manifest = path / MANIFEST
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            files = data["files"]
            if data.get("owner") != "guardchain" or not all(isinstance(f, str) for f in files):
                raise ValueError("not a guardchain manifest")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GuardchainError.single(
                CertifyErrorCode.OUT_NOT_OURS,
                f"{str(manifest)!r} is not a manifest guardchain wrote; nothing in {str(path)!r} was touched",
                path="--out",
            ) from exc
        return [f for f in files if _inside(path, f)]
    entries = [p.name for p in path.iterdir()]
    if not entries or entries == [MARKER]:
        return []
    if "certificate.json" in entries and _is_certificate(path / "certificate.json"):
        return [name for name in LEGACY_FILES if name in entries]
    raise GuardchainError.single(
        CertifyErrorCode.OUT_NOT_OURS,
        f"{str(path)!r} is not empty and holds no guardchain certification; nothing in it was touched",
        hint="choose a new or empty folder for --out",
        path="--out",
    )


def _inside(root: Path, name: str) -> bool:
    relative = Path(name)
    return not relative.is_absolute() and ".." not in relative.parts and bool(relative.parts)


def _is_certificate(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "verdict" in data and "digest" in data and "schema_version" in data


def check_out_dir(path: Path) -> None:
    """The read-only part of :meth:`OwnedDir.claim`, run before anything else so that bad input writes nothing.

    :raises GuardchainError: ``GC-CERT-OUT-NOT-DIR`` or ``GC-CERT-OUT-NOT-OURS``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GuardchainError.single(
            CertifyErrorCode.OUT_NOT_DIR, f"{str(path)!r} exists and is not a folder", path="--out"
        )
    if path.is_dir():
        _owned_files(path)
