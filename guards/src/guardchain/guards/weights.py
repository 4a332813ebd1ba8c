"""Weight matrices as the spectral guards see them: which ones, and their spectra, memoised per run.

``spectral`` and ``rmt`` both need, for every weight matrix in scope, the top of its singular spectrum
(:func:`guardchain.guards.linalg.top_singular_values`); :func:`measure_all` computes it once per run for a given
matrix value (identified by its sketch) and start vector, so the second guard reads the first one's result.
A subject matrix whose sketch equals its baseline's is not re-measured at all: its spectrum is the baseline's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelStructure
from guardchain.guards.linalg import Spectrum, is_finite, sketch, sketch_is_finite, top_singular_values
from guardchain.guards.runstate import run_state


@dataclass(frozen=True)
class MatrixRecord:
    """One weight matrix measured on one model.

    :ivar name: parameter name.
    :ivar family: weight family (attn, ffn, embed, other).
    :ivar shape: stored shape.
    :ivar sketch: value sketch (:func:`guardchain.guards.linalg.sketch`).
    :ivar finite: whether every element is finite; ``spectrum`` is ``None`` otherwise.
    :ivar spectrum: the measured spectrum.
    :ivar reused: ``True`` when the value equals the baseline's and its spectrum was reused.
    """

    name: str
    family: str
    shape: tuple[int, ...]
    sketch: bytes
    finite: bool
    spectrum: Spectrum | None
    reused: bool = False


def matrices_in(structure: ModelStructure, families: Iterable[str]) -> list[tuple[str, str, tuple[int, ...]]]:
    """``(name, family, shape)`` of every 2-D weight matrix of the given families, in parameter order."""
    wanted = {str(f) for f in families}
    return [
        (w.name, str(w.family), tuple(w.shape))
        for w in structure.weights
        if str(w.family) in wanted and len(w.shape) == 2
    ]


@dataclass(frozen=True)
class MatrixInput:
    """One matrix to measure: its name, family, value, and the baseline record it is compared with (or ``None``)."""

    name: str
    family: str
    tensor: torch.Tensor
    baseline: MatrixRecord | None = None


def measure_all(
    context: RunContext,
    inputs: Sequence[MatrixInput],
    *,
    exact_max_dim: int,
    report: Callable[[int, int], None] | None = None,
) -> list[MatrixRecord]:
    """Measure every matrix (memoised per run), the Lanczos runs spread over a few threads.

    With a ``baseline``: a value equal to the baseline's (same sketch) reuses its spectrum; otherwise Lanczos
    starts from the baseline's top right singular vector (a few steps after a small edit). Each spectrum depends
    only on its matrix and start vector, so the thread count never changes a result. Threads matter: Lanczos is
    many small matrix-vector products, which torch's intra-op parallelism slows down (on two cores, 2.5x slower
    with two intra-op threads than with one), while independent matrices run well side by side.
    """
    memo = run_state(context).memo
    records: list[MatrixRecord | None] = [None] * len(inputs)
    pending: dict[tuple[object, ...], list[int]] = {}
    jobs: list[tuple[tuple[object, ...], torch.Tensor, torch.Tensor | None]] = []
    for index, item in enumerate(inputs):
        value_sketch = sketch(item.tensor)
        shape = tuple(int(d) for d in item.tensor.shape)
        base = item.baseline
        if base is not None and base.sketch == value_sketch and base.spectrum is not None:
            records[index] = MatrixRecord(item.name, item.family, shape, value_sketch, True, base.spectrum, reused=True)
            continue
        if not (sketch_is_finite(value_sketch) or is_finite(item.tensor)):
            records[index] = MatrixRecord(item.name, item.family, shape, value_sketch, False, None)
            continue
        warm = base.spectrum.v1 if base is not None and base.spectrum is not None else None
        key: tuple[object, ...] = (
            item.name,
            value_sketch,
            base.sketch if warm is not None and base is not None else b"",
            exact_max_dim,
        )
        records[index] = MatrixRecord(item.name, item.family, shape, value_sketch, True, memo.get(key))
        if key not in memo:
            if key not in pending:
                jobs.append((key, item.tensor, warm))
            pending.setdefault(key, []).append(index)

    def run(job: tuple[tuple[object, ...], torch.Tensor, torch.Tensor | None]) -> Spectrum:
        with torch.no_grad():
            return top_singular_values(job[1], v0=job[2], exact_max_dim=exact_max_dim)

    workers = max(1, min(4, os.cpu_count() or 1, len(jobs)))
    done = len(inputs) - sum(len(indices) for indices in pending.values())
    if report is not None and done > 0:
        report(done, len(inputs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (job_key, _, _), spectrum in zip(jobs, pool.map(run, jobs), strict=True):
            memo[job_key] = spectrum
            for index in pending[job_key]:
                record = records[index]
                assert record is not None
                records[index] = replace(record, spectrum=spectrum)
            done += len(pending[job_key])
            if report is not None:
                report(done, len(inputs))
    out = [r for r in records if r is not None]
    assert len(out) == len(inputs)
    return out
