"""Writing files so that a reader sees all of a file or none of it, and reading JSON a hostile file cannot turn
into a crash: the one implementation every member uses.

A file is written to a temporary name in its own folder, given the permissions a new file would get (``mkstemp``
makes ``0600``; records, certificates and reports are meant to be shared), and renamed over the target with
``os.replace``, which is atomic on POSIX. An interrupted write leaves at most a hidden ``.<name>.*`` temporary,
which the write removes itself whenever it can.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from guardchain.core.errors import ErrorCode, GuardchainError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (``str`` as UTF-8) to ``path`` atomically, creating its folder.

    :raises GuardchainError: ``GC-OUTPUT-WRITE`` if the folder or file cannot be written.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise GuardchainError.single(ErrorCode.OUTPUT_WRITE, f"cannot write {str(path)!r}: {exc}") from exc


def write_json_atomic(path: Path, payload: Any) -> None:
    """:func:`write_atomic` of ``payload`` as indented, key-sorted JSON with a final newline."""
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, *, code: str, max_bytes: int, max_depth: int = 64) -> Any:
    """Parse the JSON in ``path``, refusing what a tool that reads other people's files should not trust.

    :param code: the caller's stable error code for an unreadable file (``GC-CERT-UNREADABLE``, ...).
    :param max_bytes: the largest file accepted.
    :param max_depth: the deepest nesting accepted (checked without recursion, after parsing).
    :raises GuardchainError: ``code`` for a missing file, something that is not a regular file, a larger one,
        bytes that are not UTF-8 JSON, or deeper nesting.
    """

    def unreadable(why: str) -> GuardchainError:
        return GuardchainError.single(code, f"cannot read {str(path)!r}: {why}")

    try:
        if not path.is_file():
            raise unreadable("no such file" if not path.exists() else "not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise unreadable(exc.strerror or str(exc)) from exc
    if len(raw) > max_bytes:
        raise unreadable(f"larger than {max_bytes >> 20} MiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError as exc:
        raise unreadable("nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise unreadable(f"not JSON ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    if _depth(data, max_depth) > max_depth:
        raise unreadable(f"nested deeper than {max_depth} levels")
    return data


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, up to ``limit + 1`` (iterative: a hostile file cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > limit:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
