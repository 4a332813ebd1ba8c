"""Reading chain files: bounded and strict, so that no file can hang, exhaust memory or be read ambiguously.

A chain file (or a ``certify --preset``) is parsed by its extension (YAML, TOML or JSON) into plain data, with
these limits and rules, each refused with a stable code instead of a hang or a traceback:

* the path must be a regular file (``GC-CONFIG-NOT-A-FILE`` for a directory, a FIFO, ``/dev/zero``...); it is
  opened without blocking and checked on the open descriptor, so a FIFO cannot stall the command;
* at most :data:`MAX_FILE_BYTES` bytes (``GC-CONFIG-TOO-LARGE``), read with a bounded read;
* at most :data:`MAX_DEPTH` levels of nesting and :data:`MAX_VALUES` values once YAML aliases and merge keys are
  expanded (``GC-CONFIG-TOO-LARGE``): a "billion laughs" alias bomb of a few hundred bytes is refused in
  milliseconds, as is a mapping that contains itself;
* a key repeated in one mapping is ``GC-CONFIG-DUPLICATE-KEY`` (YAML and JSON would otherwise keep the last one;
  TOML already refuses it while parsing);
* text that is not valid Unicode (a lone surrogate such as JSON's ``"\\ud800"``) or holds a NUL character is
  ``GC-CONFIG-PARSE``, with its path.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardchain.core.errors import ErrorCode, GuardchainError, Problem

CHAIN_FILE_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
#: Largest chain file read, in bytes (1 MiB; real chain files are a few hundred bytes).
MAX_FILE_BYTES = 1 << 20
#: Most values (scalars, lists and mappings, counted after YAML aliases are expanded) a chain file may hold.
MAX_VALUES = 100_000
#: Deepest nesting of lists and mappings a chain file may have (the top-level mapping is level 1).
MAX_DEPTH = 64
#: At most this many problems of one kind are listed (the rest are counted).
_MAX_LISTED = 20


class _TooLarge(Exception):
    """Raised inside the YAML loader when a limit is crossed; becomes ``GC-CONFIG-TOO-LARGE``."""


class _DuplicateKeys(dict[Any, Any]):
    """A JSON object that repeated keys (kept so that the tree walk can report them with their paths)."""

    duplicates: list[str]


def read_chain_file(path: str | Path) -> dict[str, Any]:
    """Parse a chain file by its extension, within the limits of this module.

    :raises GuardchainError: ``GC-CONFIG-NOT-FOUND``, ``GC-CONFIG-NOT-A-FILE``, ``GC-CONFIG-FORMAT``,
        ``GC-CONFIG-TOO-LARGE``, ``GC-CONFIG-PARSE`` or ``GC-CONFIG-DUPLICATE-KEY``.
    """
    file = Path(path)
    name = repr(str(file))
    raw = _read_bounded(file, name)
    suffix = file.suffix.lower()
    if suffix not in CHAIN_FILE_SUFFIXES:
        raise GuardchainError.single(
            ErrorCode.CONFIG_FORMAT,
            f"cannot tell the format of {name}",
            expected="a file ending in " + ", ".join(CHAIN_FILE_SUFFIXES),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_NOT_FOUND, f"cannot read {name}: {exc}") from exc
    fmt = suffix.lstrip(".").upper().replace("YML", "YAML")
    try:
        data = _PARSERS[suffix](text)
    except _TooLarge as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_TOO_LARGE, f"{name} {exc}") from exc
    except RecursionError as exc:
        raise GuardchainError.single(
            ErrorCode.CONFIG_TOO_LARGE, f"{name} nests lists or mappings deeper than {MAX_DEPTH} levels"
        ) from exc
    except GuardchainError:
        raise
    except Exception as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_PARSE, f"{name} is not valid {fmt}: {_one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise GuardchainError.single(
            ErrorCode.CONFIG_PARSE, f"{name} must hold a mapping at the top level, not {type(data).__name__}"
        )
    problems = check_tree(data)
    if problems:
        raise GuardchainError(problems)
    return data


def _read_bounded(file: Path, name: str) -> bytes:
    """The file's bytes, refusing what is not a regular file or is larger than :data:`MAX_FILE_BYTES`."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(file, flags)
    except FileNotFoundError as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_NOT_FOUND, f"no such chain file: {name}") from exc
    except IsADirectoryError as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_NOT_A_FILE, f"{name} is a directory, not a file") from exc
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise GuardchainError.single(ErrorCode.CONFIG_NOT_FOUND, f"cannot read {name}: {reason}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise GuardchainError.single(
                ErrorCode.CONFIG_NOT_A_FILE,
                f"{name} is {_file_kind(mode)}, not a regular file",
                expected="a .yaml, .yml, .toml or .json file",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
    except OSError as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_NOT_FOUND, f"cannot read {name}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise GuardchainError.single(
            ErrorCode.CONFIG_TOO_LARGE,
            f"{name} is larger than {MAX_FILE_BYTES} bytes",
            expected="a chain file of at most 1 MiB",
        )
    return raw


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((label for test, label in kinds if test(mode)), "not a regular file")


def _parse_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_json_object)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) == len(keys):
        return dict(pairs)
    out = _DuplicateKeys(pairs)
    seen: set[str] = set()
    out.duplicates = []
    for key in keys:
        if key in seen and key not in out.duplicates:
            out.duplicates.append(key)
        seen.add(key)
    return out


def _parse_toml(text: str) -> Any:
    import tomllib  # only a TOML file needs it

    return tomllib.loads(text)


def _parse_yaml(text: str) -> Any:
    loader = _yaml_loader_class()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@functools.cache
def _yaml_loader_class() -> Any:
    """PyYAML's safe loader with a nesting limit, a merge-size limit and duplicate-key detection."""
    import yaml  # only a YAML file needs it

    merge_tag = "tag:yaml.org,2002:merge"

    class ChainLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _TooLarge(f"nests lists or mappings deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def compose_mapping_node(self, anchor: Any) -> Any:
            node = super().compose_mapping_node(anchor)
            first: dict[tuple[str, str], Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == merge_tag:
                    continue
                key = (key_node.tag, key_node.value)
                if key in first:
                    mark = key_node.start_mark
                    earlier = first[key]
                    raise _DuplicateKeyError(
                        f"key {key_node.value!r} is repeated at line {mark.line + 1}, column {mark.column + 1} "
                        f"(first at line {earlier.line + 1}, column {earlier.column + 1})"
                    )
                first[key] = key_node.start_mark
            return node

        def flatten_mapping(self, node: Any) -> None:
            super().flatten_mapping(node)
            if len(node.value) > MAX_VALUES:
                raise _TooLarge(f"expands its merge keys ('<<') to more than {MAX_VALUES} entries")

    return ChainLoader


class _DuplicateKeyError(Exception):
    """A YAML mapping repeats a key (reported with line and column)."""


def _parse_yaml_checked(text: str) -> Any:
    try:
        return _parse_yaml(text)
    except _DuplicateKeyError as exc:
        raise GuardchainError.single(ErrorCode.CONFIG_DUPLICATE_KEY, f"a mapping repeats a key: {exc}") from exc


_PARSERS: dict[str, Callable[[str], Any]] = {
    ".json": _parse_json,
    ".toml": _parse_toml,
    ".yaml": _parse_yaml_checked,
    ".yml": _parse_yaml_checked,
}


def check_tree(data: Any) -> list[Problem]:
    """Problems of parsed chain data: duplicate JSON keys, invalid text, and the size and depth limits.

    Walks the data as it would be expanded (an object reached twice through YAML aliases is counted twice), and
    stops at the first limit crossed, so the walk costs at most :data:`MAX_VALUES` steps.
    """
    problems: list[Problem] = []
    counter = [0]
    try:
        _walk(data, "", 1, set(), counter, problems)
    except _TooLarge as exc:
        return [Problem(ErrorCode.CONFIG_TOO_LARGE, f"the file {exc}", expected=_LIMITS)]
    if len(problems) > _MAX_LISTED:
        extra = len(problems) - _MAX_LISTED
        problems = [*problems[:_MAX_LISTED], Problem(problems[-1].code, f"... and {extra} more like these")]
    return problems


_LIMITS = f"at most {MAX_VALUES} values and {MAX_DEPTH} levels of nesting"


def _walk(value: Any, path: str, depth: int, ancestors: set[int], counter: list[int], problems: list[Problem]) -> None:
    counter[0] += 1
    if counter[0] > MAX_VALUES:
        raise _TooLarge(f"holds more than {MAX_VALUES} values (YAML aliases counted each time they are used)")
    if isinstance(value, str):
        _check_text(value, path, "value", problems)
        return
    if not isinstance(value, dict | list | tuple | set | frozenset):
        return
    if depth > MAX_DEPTH:
        raise _TooLarge(f"nests lists or mappings deeper than {MAX_DEPTH} levels (at {path or 'the top'})")
    if id(value) in ancestors:
        raise _TooLarge(f"refers to itself at {path or 'the top'} (a recursive YAML alias)")
    ancestors.add(id(value))
    try:
        if isinstance(value, dict):
            for key in getattr(value, "duplicates", ()):
                problems.append(
                    Problem(
                        ErrorCode.CONFIG_DUPLICATE_KEY,
                        f"key {key!r} is repeated in one mapping",
                        path=_child(path, key),
                        hint="a repeated key is an error, not 'the last one wins': keep one",
                    )
                )
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, _child(path, key), "key", problems)
                _walk(item, _child(path, key), depth + 1, ancestors, counter, problems)
        else:
            for index, item in enumerate(value):
                _walk(item, f"{path}[{index}]", depth + 1, ancestors, counter, problems)
    finally:
        ancestors.discard(id(value))


def _child(path: str, key: Any) -> str:
    text = key if isinstance(key, str) else repr(key)
    return f"{path}.{text}" if path else text


def _check_text(text: str, path: str, what: str, problems: list[Problem]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        problems.append(
            Problem(
                ErrorCode.CONFIG_PARSE,
                f"the {what} holds {exc.object[exc.start : exc.end]!r}, a lone surrogate, which is not valid Unicode",
                path=path,
                expected="text made of Unicode characters (a \\ud83d\\ude00 escape pair, not half of one)",
            )
        )
        return
    if "\x00" in text:
        problems.append(
            Problem(
                ErrorCode.CONFIG_PARSE,
                f"the {what} holds a NUL character, which no name, path or setting may contain",
                path=path,
            )
        )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."
