"""Read a GGUF file's ``general.architecture`` cheaply, in pure Python (no gguf package, no torch).

A GGUF file starts with a header (all integers little-endian)::

    magic   4 bytes  b"GGUF"
    version uint32   1, 2 or 3
    n_tensors        uint32 in version 1, uint64 after
    n_kv             uint32 in version 1, uint64 after
    n_kv times: key (string), value type (uint32), value

where a string is its byte length (uint32 in version 1, uint64 after) followed by UTF-8 bytes, and an array is
its element type (uint32), its length (uint32 / uint64) and the elements. ``general.architecture`` is usually the
first key; this reader skips other values (including the large tokenizer arrays) until it finds it, reading at
most :data:`MAX_HEADER_BYTES` bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAX_HEADER_BYTES = 64 * 1024 * 1024
ARCHITECTURE_KEY = "general.architecture"

# GGUF value types: fixed-size scalars by struct format, plus 8 = string and 9 = array.
_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING = 8
_ARRAY = 9


class _Truncated(Exception):
    """The header ended early or exceeded the byte budget."""


class _Reader:
    def __init__(self, handle: BinaryIO, version: int) -> None:
        self._handle = handle
        self._length_format = "<I" if version == 1 else "<Q"
        self.consumed = 0

    def read(self, n: int) -> bytes:
        self.consumed += n
        if self.consumed > MAX_HEADER_BYTES:
            raise _Truncated
        data = self._handle.read(n)
        if len(data) != n:
            raise _Truncated
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]
        return value

    def length(self) -> int:
        return int(self.unpack(self._length_format))

    def string(self) -> str:
        return self.read(self.length()).decode("utf-8", errors="replace")

    def skip_value(self, value_type: int) -> None:
        if value_type in _SCALARS:
            self.read(struct.calcsize("<" + _SCALARS[value_type]))
        elif value_type == _STRING:
            self.read(self.length())
        elif value_type == _ARRAY:
            element_type = int(self.unpack("<I"))
            count = self.length()
            if element_type in _SCALARS:
                self.read(count * struct.calcsize("<" + _SCALARS[element_type]))
            else:
                for _ in range(count):
                    self.skip_value(element_type)
        else:
            raise _Truncated


def read_gguf_architecture(path: str | Path) -> str | None:
    """``general.architecture`` of the GGUF file at ``path`` (e.g. ``"llama"``), or ``None``.

    ``None`` means "not cheaply readable": not a GGUF file, an unknown version, a malformed or truncated header,
    or the key not found within :data:`MAX_HEADER_BYTES`. Never raises for a readable file.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                return None
            raw_version = handle.read(4)
            if len(raw_version) != 4:
                return None
            version = struct.unpack("<I", raw_version)[0]
            if version not in (1, 2, 3):
                return None
            reader = _Reader(handle, version)
            reader.length()  # number of tensors
            n_kv = reader.length()
            for _ in range(n_kv):
                key = reader.string()
                value_type = int(reader.unpack("<I"))
                if key == ARCHITECTURE_KEY and value_type == _STRING:
                    return reader.string()
                reader.skip_value(value_type)
    except (OSError, _Truncated, struct.error):
        return None
    return None
