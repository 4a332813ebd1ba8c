"""How the HTML report shows an intervention step (``guardchain_render_result``): what the intervention does (its
row of :data:`guardchain.interventions.table.TABLE`), the sites it was attached at, and — for ``collect`` — the
shape of every recorded activation.

The runner records an intervention step as ``{"attached": [sites]}``; ``collect`` writes its records, when its
``artifact`` is set, as one safetensors file with a tensor ``"<site>/<call>"`` per site and forward pass. The shapes
are read from the files' JSON headers (no tensor is loaded, no torch): a run artifact holding tensors named after
the attached sites is this step's. Torch-free.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guardchain.core.views import Chart, ResultView, Table, Text
from guardchain.interventions.table import TABLE

Block = Chart | Table | Text
#: the largest safetensors header read, in bytes (the format's own limit is 100 MB; records need far less)
MAX_HEADER_BYTES = 16 << 20


def render_intervention(name: str, result: Mapping[str, Any], artifacts: Mapping[str, Path]) -> ResultView | None:
    """The view of one of this member's intervention steps (``None`` for an intervention it does not know)."""
    entry = next((e for e in TABLE if e.name == name), None)
    sites = [str(s) for s in result.get("attached") or []] if isinstance(result.get("attached"), list) else None
    if entry is None or sites is None:
        return None
    blocks: list[Block] = [Text(text=f"{entry.summary} {entry.docs}")]
    blocks.append(Table(title="Sites", columns=["site"], rows=[[s] for s in sites]))
    summary = f"{name} at {len(sites)} site(s)"
    if name == "collect":
        records = collected(sites, artifacts)
        if records:
            calls = sum(len(r) for r in records.values())
            summary += (
                f"; {calls} activation record(s) in {', '.join(sorted({f for r in records.values() for f, *_ in r}))}"
            )
            blocks += _records_blocks(records)
        else:
            blocks.append(Text(text="No records file in the run folder (the step's artifact was not set)."))
    return ResultView(title=f"{name} intervention", summary=summary, blocks=blocks)


def read_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file (tensor name -> dtype, shape, offsets), or ``None`` if it is not one.

    Format: an 8-byte little-endian header length, then that many bytes of JSON.
    """
    try:
        with path.open("rb") as handle:
            size_bytes = handle.read(8)
            if len(size_bytes) != 8:
                return None
            (size,) = struct.unpack("<Q", size_bytes)
            if size > MAX_HEADER_BYTES:
                return None
            header = json.loads(handle.read(size).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


def collected(sites: list[str], artifacts: Mapping[str, Path]) -> dict[str, list[tuple[str, int, list[int], str]]]:
    """Per attached site, ``(file, call, shape, dtype)`` of every record found in the run's safetensors files."""
    out: dict[str, list[tuple[str, int, list[int], str]]] = {}
    wanted = set(sites)
    for name, path in sorted(artifacts.items()):
        if not name.endswith(".safetensors"):
            continue
        header = read_header(path)
        if header is None:
            continue
        for key, info in header.items():
            site, _, call = key.rpartition("/")
            if site not in wanted or not call.isdigit() or not isinstance(info, Mapping):
                continue
            shape = info.get("shape")
            if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
                out.setdefault(site, []).append((name, int(call), shape, str(info.get("dtype"))))
    for records in out.values():
        records.sort(key=lambda r: (r[0], r[1]))
    return out


def _records_blocks(records: Mapping[str, list[tuple[str, int, list[int], str]]]) -> list[Block]:
    rows: list[list[Any]] = []
    for site, items in records.items():
        shapes = sorted({tuple(shape) for _, _, shape, _ in items})
        shown = ", ".join("×".join(map(str, s)) for s in shapes[:4]) + (" …" if len(shapes) > 4 else "")
        dtypes = ", ".join(sorted({d for *_, d in items}))
        rows.append([site, len(items), shown, dtypes, ", ".join(sorted({f for f, *_ in items}))])
    blocks: list[Block] = [
        Table(
            title="Collected activations",
            columns=["site", "forward passes", "shapes (batch × positions × hidden)", "dtype", "file"],
            rows=rows,
        )
    ]
    return blocks
