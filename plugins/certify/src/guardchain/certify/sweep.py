"""``guardchain sweep``: many certifications against shared baselines, each in its own folder, one summary.

:func:`plan_sweep` reads and validates a sweep file (:mod:`.sweep_config`) and every cell's certification
(plugins, configs, output folders) before anything runs. :func:`run_sweep` then

1. claims the sweep folder (lock, ownership manifest: a second sweep on it fails fast; nothing guardchain did
   not write is ever touched) and writes ``sweep.json`` (the cells, their ids and requests);
2. skips every cell whose folder already holds its certificate — intact (digest) and of the same request
   (``provenance.config_digest`` = the cell's digest) — and runs the others on the backend (:mod:`.backends`):
   each worker loads a baseline once and restores it bit for bit between cells, and the baseline cache
   (:mod:`.cache`) evaluates each baseline once;
3. records every cell as it finishes — a cell that fails or whose worker dies is recorded with its error and the
   others go on — rewriting ``summary.json`` and ``summary.csv`` each time, so an interrupted sweep leaves a
   summary of what finished; finally draws ``quality_vs_bits.png`` (:mod:`.sweep_plot`).

Folder layout::

    OUT/sweep.json  summary.json  summary.csv  quality_vs_bits.png  logs/worker-<n>.log
    OUT/cells/<cell id>/certificate.json  certificate.md

A re-run of the same file skips finished cells and redoes failed, killed and interrupted ones; Ctrl-C stops the
workers and leaves every finished cell's certificate intact.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardchain.certify.backends import Backend
from guardchain.certify.cache import BaselineCache
from guardchain.certify.certificate import body_digest
from guardchain.certify.codes import CertifyErrorCode
from guardchain.certify.outdir import OwnedDir, check_out_dir
from guardchain.certify.pipeline import prepare
from guardchain.certify.sweep_config import Cell, SweepFile, expand, load_sweep
from guardchain.core.config import dedupe_problems
from guardchain.core.errors import GuardchainError, Problem
from guardchain.core.registry import Registry

Event = dict[str, Any]
SUMMARY_COLUMNS = (
    "cell",
    "baseline",
    "edit",
    "edit_config",
    "bits",
    "tier",
    "profile",
    "seed",
    "status",
    "verdict",
    "rolled_back",
    "ratio",
    "ci_low",
    "ci_high",
    "ratio_limit",
    "gates_passed",
    "gates_failed",
    "wall_s",
    "baseline_cache",
    "error",
    "folder",
)
#: A certificate file larger than this is not one guardchain wrote (the cell is then redone).
MAX_CERTIFICATE_BYTES = 64 << 20


@dataclass(frozen=True)
class PlannedSweep:
    """A validated sweep, ready to run.

    :ivar affinity: cell id -> the key of the loaded baseline it can reuse (cells with equal keys share one).
    """

    file: SweepFile
    out: Path
    cells: list[Cell]
    affinity: dict[str, str]


@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    :ivar rows: one summary row per cell, in the sweep file's order (see :data:`SUMMARY_COLUMNS`).
    :ivar ran: ids of the cells run this time; ``skipped``: finished before and kept.
    :ivar interrupted: true when Ctrl-C stopped the sweep.
    :ivar plot: the plot's path, or why there is none.
    """

    out: Path
    rows: list[dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0
    plot: str = ""

    @property
    def exit_code(self) -> int:
        """0 every cell certified PASS, 1 every cell certified and some FAIL, 2 some cell did not finish."""
        if any(row["status"] != "done" for row in self.rows):
            return 2
        return 0 if all(row["verdict"] == "PASS" for row in self.rows) else 1


def plan_sweep(path: str | Path, registry: Registry, out: Path | None = None) -> PlannedSweep:
    """Read, validate and expand a sweep file; validate and create every cell's capabilities (no model loads).

    :param out: the sweep folder (default ``runs/sweep-<name>``).
    :raises GuardchainError: every problem of the file and of its cells, with the sweep file's paths.
    """
    sweep = load_sweep(path)
    folder = Path(out) if out is not None else Path("runs") / f"sweep-{sweep.name}"
    check_out_dir(folder)
    cells = expand(sweep, folder.absolute(), base_dir=Path.cwd())
    problems: list[Problem] = []
    affinity: dict[str, str] = {}
    for cell in cells:
        try:
            affinity[cell.id] = prepare(cell.request, registry).baseline_key()
        except GuardchainError as exc:
            problems += [cell.rename(p) for p in exc.problems]
    if problems:
        raise GuardchainError(dedupe_problems(problems))
    return PlannedSweep(sweep, folder, cells, affinity)


def run_sweep(
    planned: PlannedSweep,
    backend: Backend,
    *,
    cache: BaselineCache | None,
    on_event: Callable[[Event], None] | None = None,
    on_claim: Callable[[OwnedDir], None] | None = None,
) -> SweepResult:
    """Run a planned sweep (see the module docstring). ``KeyboardInterrupt`` is re-raised once the summary of what
    finished is written.

    :param on_event: told every backend event (``started``, ``stage``, ``step``, ``finished``) and a ``skipped``
        event per finished cell kept from before.
    :param on_claim: called with the claimed sweep folder before the backend starts (the CLI points the local
        pool's worker logs into it).
    """
    began = time.perf_counter()
    tell = on_event or (lambda event: None)
    with OwnedDir.claim(planned.out) as root:
        root.retire_previous()  # the previous run's summary, plot and logs (never the cells: they are their own)
        root.write_json("sweep.json", _plan_record(planned, cache, backend))
        if on_claim is not None:
            on_claim(root)
        rows = {cell.id: _pending_row(planned, cell) for cell in planned.cells}
        result = SweepResult(planned.out, [])
        for cell in planned.cells:
            certificate = finished_certificate(cell)
            if certificate is not None:
                rows[cell.id] = _row(planned, cell, certificate)
                result.skipped.append(cell.id)
                tell({"type": "skipped", "cell": cell.id})
        todo = [cell for cell in planned.cells if cell.id not in result.skipped]
        by_id = {cell.id: cell for cell in planned.cells}

        def emit(event: Event) -> None:
            if event.get("type") == "finished" and event.get("cell") in by_id:
                cell = by_id[event["cell"]]
                certificate = finished_certificate(cell) if event.get("status") == "done" else None
                if certificate is not None:
                    rows[cell.id] = _row(planned, cell, certificate)
                else:
                    rows[cell.id] = _failed_row(planned, cell, event)
                result.ran.append(cell.id)
                _write_summary(root, planned, rows)
            tell(event)

        tasks = [
            {"id": c.id, "request": c.request.model_dump(mode="json"), "affinity": planned.affinity[c.id]} for c in todo
        ]
        _write_summary(root, planned, rows)
        stopped: GuardchainError | None = None
        try:
            if tasks:
                backend.run(tasks, emit)
        except KeyboardInterrupt:
            result.interrupted = True
        except GuardchainError as exc:  # the backend itself failed (workers cannot start, the cluster went away)
            stopped = exc
        finally:
            for cell in todo:
                if rows[cell.id]["status"] == "pending":
                    why = None if stopped is None else {"type": "finished", "error": _error(stopped)}
                    rows[cell.id] = _failed_row(planned, cell, why)
            result.rows = [rows[cell.id] for cell in planned.cells]
            _write_summary(root, planned, rows)
            result.plot = _plot(root, planned, result.rows)
            result.wall_s = round(time.perf_counter() - began, 3)
    if result.interrupted:
        raise KeyboardInterrupt
    if stopped is not None:
        raise stopped
    return result


def _error(exc: GuardchainError) -> dict[str, str]:
    first = exc.problems[0]
    return {"code": str(first.code), "message": first.message, "path": first.path}


def finished_certificate(cell: Cell) -> dict[str, Any] | None:
    """The cell's certificate when its folder holds one that is intact (its digest) and of this very request
    (``provenance.config_digest`` = the cell's digest); ``None`` otherwise (the cell is to be run)."""
    path = cell.request.out / "certificate.json"
    try:
        if not path.is_file() or path.stat().st_size > MAX_CERTIFICATE_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("digest") != body_digest(data):
            return None
        if (data.get("provenance") or {}).get("config_digest") != cell.digest:
            return None
    except (OSError, ValueError, RecursionError, TypeError):
        return None
    return data


# -- the summary -------------------------------------------------------------------------------------------------


def _base(planned: PlannedSweep, cell: Cell) -> dict[str, Any]:
    request = cell.request
    config = dict(request.preset.edit_config)
    bits = config.get("bits")
    return {
        "cell": cell.id,
        "baseline": planned.file.baselines[cell.baseline_index],
        "edit": request.preset.edit,
        "edit_config": config,
        "bits": bits if isinstance(bits, int | float) and not isinstance(bits, bool) else None,
        "tier": request.tier,
        "profile": request.profile,
        "seed": request.preset.seed,
        "folder": f"cells/{cell.id}",
    }


def _pending_row(planned: PlannedSweep, cell: Cell) -> dict[str, Any]:
    empty = {"verdict": None, "rolled_back": None, "ratio": None, "ci_low": None, "ci_high": None, "ratio_limit": None}
    return (
        _base(planned, cell)
        | empty
        | {
            "status": "pending",
            "gates": {},
            "gates_failed": [],
            "wall_s": None,
            "baseline_cache": None,
            "error": None,
        }
    )


def _failed_row(planned: PlannedSweep, cell: Cell, event: Event | None) -> dict[str, Any]:
    row = _pending_row(planned, cell)
    if event is None:
        error = {
            "code": str(CertifyErrorCode.SWEEP_INTERRUPTED),
            "message": "the sweep stopped before this cell finished",
        }
        return row | {"status": "interrupted", "error": error}
    error = event.get("error") or {"code": "GC-INTERNAL", "message": "the cell's certificate is missing"}
    return row | {"status": "failed", "error": error, "wall_s": event.get("wall_s")}


def _row(planned: PlannedSweep, cell: Cell, cert: dict[str, Any]) -> dict[str, Any]:
    final = ((cert.get("primary_metric") or {}).get("final")) or {}
    gates = {str(g["name"]): bool(g["passed"]) for g in cert.get("gates") or []}
    limit = next(
        (g.get("threshold") for g in cert.get("gates") or [] if g.get("name") == "primary_ratio_ci_upper"), None
    )
    record = cert.get("baseline_cache")
    return _base(planned, cell) | {
        "status": "done",
        "verdict": cert.get("verdict"),
        "rolled_back": cert.get("rolled_back"),
        "ratio": final.get("ratio"),
        "ci_low": final.get("ci_low"),
        "ci_high": final.get("ci_high"),
        "ratio_limit": limit,
        "gates": gates,
        "gates_failed": [name for name, passed in gates.items() if not passed],
        "wall_s": (cert.get("timing") or {}).get("total_s"),
        "baseline_cache": None if record is None else ("hit" if record.get("hit") else "miss"),
        "error": None,
    }


def summary_csv(rows: list[dict[str, Any]]) -> str:
    """The summary as CSV (:data:`SUMMARY_COLUMNS`): settings as compact JSON, failed gates ``;``-separated."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        gates = row["gates"]
        error = row["error"]
        writer.writerow(
            {
                **{k: row.get(k) for k in SUMMARY_COLUMNS if k in row},
                "edit_config": json.dumps(row["edit_config"], sort_keys=True, separators=(",", ":")),
                "gates_passed": f"{sum(gates.values())}/{len(gates)}" if gates else "",
                "gates_failed": ";".join(row["gates_failed"]),
                "error": f"{error['code']}: {error['message']}" if error else "",
            }
        )
    return buffer.getvalue()


def _write_summary(root: OwnedDir, planned: PlannedSweep, rows: dict[str, dict[str, Any]]) -> None:
    ordered = [rows[cell.id] for cell in planned.cells]
    counts: dict[str, int] = {}
    for row in ordered:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    root.write_json("summary.json", {"name": planned.file.name, "counts": counts, "cells": ordered})
    root.write_text("summary.csv", summary_csv(ordered))


def _plan_record(planned: PlannedSweep, cache: BaselineCache | None, backend: Backend) -> dict[str, Any]:
    return {
        "name": planned.file.name,
        "file": planned.file.model_dump(mode="json"),
        "backend": backend.name,
        "cache": None if cache is None else str(cache.root),
        "cells": [
            {"id": c.id, "digest": c.digest, "source": c.source, "request": c.request.model_dump(mode="json")}
            for c in planned.cells
        ],
    }


def _plot(root: OwnedDir, planned: PlannedSweep, rows: list[dict[str, Any]]) -> str:
    from guardchain.certify.sweep_plot import plot_quality_vs_bits

    return plot_quality_vs_bits(rows, root, title=planned.file.name)
