"""Local files: UTF-8 text files (one document each) and JSON Lines records."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardchain.core.errors import GuardchainError
from guardchain.data.codes import DataErrorCode
from guardchain.data.documents import Document


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Files named by ``patterns``, in pattern order (each glob's matches sorted), each file once.

    A pattern with glob characters (``*``, ``?``, ``[``) is expanded with :func:`glob.glob` (``**`` recurses)
    and keeps only regular files; any other pattern must name an existing file.

    :raises GuardchainError: ``GC-DATA-NOT-FOUND`` for a pattern that matches no file, or names a directory.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p)]
        elif os.path.isdir(pattern):
            raise GuardchainError.single(
                DataErrorCode.NOT_FOUND,
                f"{pattern!r} is a directory, not a file",
                hint=f"use a glob such as '{Path(pattern).as_posix()}/**/*.txt'",
            )
        else:
            matches = [Path(pattern)] if os.path.isfile(pattern) else []
        if not matches:
            raise GuardchainError.single(
                DataErrorCode.NOT_FOUND,
                f"no file matches {pattern!r} (working directory {os.getcwd()})",
                hint="paths are relative to the working directory of the guardchain command",
            )
        for match in matches:
            resolved = match.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(resolved)
    return found


def read_text(path: Path) -> str:
    """The file decoded as UTF-8 (a leading byte-order mark is dropped; line ends are kept as they are).

    :raises GuardchainError: ``GC-DATA-READ-FAILED`` if the file cannot be read or is not UTF-8.
    """
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardchainError.single(
            DataErrorCode.READ_FAILED, f"cannot read {str(path)!r} as UTF-8 text: {exc}", cause=exc
        ) from exc


def read_text_files(patterns: Sequence[str]) -> tuple[list[Document], str]:
    """One document per file named by ``patterns`` (see :func:`expand_paths`).

    A document's id is the file's path relative to the deepest directory that holds every matched file, in
    POSIX form (``"notes/a.txt"``), so moving the corpus elsewhere does not change ids or the dataset digest.

    :returns: ``(documents, source description)``.
    """
    files = expand_paths(patterns)
    root = Path(os.path.commonpath([p.parent for p in files]))
    documents = [Document(p.relative_to(root).as_posix(), read_text(p)) for p in files]
    return documents, f"text: {len(files)} file(s) under {root}"


def read_jsonl(path: str) -> list[tuple[str, Any]]:
    """The records of a JSON Lines file, each with where it came from; blank lines are skipped.

    :returns: ``[(where, record), ...]`` with ``where`` like ``"data.jsonl line 3"``; records are not yet checked
        to be objects (see :mod:`guardchain.data.records`).
    :raises GuardchainError: ``GC-DATA-NOT-FOUND``, ``GC-DATA-READ-FAILED``, or ``GC-DATA-INVALID-RECORD`` for a
        line that is not valid JSON.
    """
    file = Path(path)
    if not file.is_file():
        raise GuardchainError.single(
            DataErrorCode.NOT_FOUND, f"no JSONL file at {path!r} (working directory {os.getcwd()})"
        )
    records: list[tuple[str, Any]] = []
    # Split on "\n" only: str.splitlines would also split inside JSON strings holding U+2028 and friends.
    for number, line in enumerate(read_text(file).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{file.name} line {number}"
        try:
            records.append((where, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise GuardchainError.single(
                DataErrorCode.INVALID_RECORD, f"{where} is not valid JSON: {exc.msg}", cause=exc
            ) from exc
    return records
