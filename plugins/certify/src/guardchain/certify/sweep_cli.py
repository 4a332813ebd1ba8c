"""``guardchain sweep`` and ``guardchain cache``, added to the CLI through ``guardchain_register_commands``.

Exit codes of ``sweep``: 0 every cell certified PASS, 1 every cell certified and some FAIL, 2 bad input or some
cell that did not finish (its error is in the summary), 130 interrupted (finished cells are kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from guardchain.core.cli.state import AppState
from guardchain.core.errors import GuardchainError, Problem


def _fail(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(problem.render(), err=True)
    raise SystemExit(2)


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Sweep folder (default runs/sweep-<name>).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--jobs", type=click.IntRange(1, 256), default=1, show_default=True, help="Cells run in parallel.")
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    help="Threads per worker (default: CPU cores // jobs, at least 1), set before torch loads.",
)
@click.option("--ray-address", help="Ray cluster to run on (ray.init(address=...)); default $RAY_ADDRESS or local.")
@click.option("--no-cache", is_flag=True, help="Evaluate every baseline afresh; neither read nor write the cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Baseline cache folder (default $GUARDCHAIN_CACHE_DIR or ~/.cache/guardchain/baseline); on a cluster, "
    "a folder every node mounts at the same path.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def sweep(
    ctx: click.Context,
    sweep_file: str,
    out_dir: str | None,
    backend: str,
    jobs: int,
    threads: int | None,
    ray_address: str | None,
    no_cache: bool,
    cache_dir: str | None,
    fmt: str,
) -> None:
    """Run every certification a sweep file asks for: a grid or list of edits x baselines x tiers x seeds.

    Each cell is a certification in its own folder (OUT/cells/<id>); OUT/summary.csv and summary.json list every
    cell's verdict, ratio and interval, gates, wall time and error; OUT/quality_vs_bits.png plots the ratio's
    upper bound against bits with the Pareto front. A worker loads each baseline once; the baseline cache
    evaluates it once. A re-run skips finished cells and redoes the rest.
    """
    from guardchain.certify.backends import LocalPool, RayBackend
    from guardchain.certify.cache import BaselineCache
    from guardchain.certify.sweep import plan_sweep, run_sweep
    from guardchain.certify.sweep_worker import default_threads, worker_settings

    state = AppState.of(ctx)
    try:
        planned = plan_sweep(sweep_file, state.registry, Path(out_dir) if out_dir else None)
        cache = None if no_cache else BaselineCache.from_env(cache_dir)
        settings = worker_settings(threads or default_threads(jobs), cache, state.disabled)
        runner: Any = RayBackend(jobs, settings, ray_address) if backend == "ray" else LocalPool(jobs, settings)

        def logs(root: Any) -> None:
            if isinstance(runner, LocalPool):
                runner.log_path = lambda n: str(root.reserve(f"logs/worker-{n}.log"))

        labels = {cell.id: f"#{n} {_settings(cell.edit_config)}" for n, cell in enumerate(planned.cells, start=1)}
        with _Progress(labels, planned.file.name) as progress:
            result = run_sweep(planned, runner, cache=cache, on_event=progress.event, on_claim=logs)
    except GuardchainError as exc:
        _fail(exc.problems)
        return
    if fmt == "json":
        click.echo(json.dumps({"out": str(result.out), "plot": result.plot, "cells": result.rows}, indent=2))
    else:
        _table(result)
    ctx.exit(result.exit_code)


class _Progress:
    """One bar for the sweep and one per running cell (rich, on stderr); plain lines when stderr is no terminal."""

    def __init__(self, labels: dict[str, str], name: str) -> None:
        from rich.console import Console
        from rich.progress import Progress

        from guardchain.certify.progress import progress_columns

        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self.bars = Progress(*progress_columns(), console=self.console, disable=not self.live)
        self.sweep = self.bars.add_task(f"sweep {name}", total=len(labels))
        self.labels = labels
        self.cells: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.__exit__(None, None, None)

    def event(self, event: dict[str, Any]) -> None:
        kind, cell = event.get("type"), str(event.get("cell", ""))
        label = self.labels.get(cell, cell)
        label = label if len(label) <= 40 else label[:37] + "..."
        if kind == "skipped":
            self.bars.advance(self.sweep)
            self._say(f"{label}: finished before, kept ({cell})")
        elif kind == "started":
            self.cells[cell] = self.bars.add_task(f"  {label}: starting", total=None)
            self._say(f"{label}: started (worker {event.get('pid')})")
        elif kind == "stage" and cell in self.cells:
            self.bars.update(
                self.cells[cell], description=f"  {label}: {event.get('message')}", total=None, completed=0
            )
        elif kind == "step" and cell in self.cells:
            self.bars.update(self.cells[cell], total=event.get("total"), completed=event.get("done"))
        elif kind == "finished":
            task = self.cells.pop(cell, None)
            if task is not None:
                self.bars.remove_task(task)
            self.bars.advance(self.sweep)
            error = event.get("error")
            outcome = event.get("verdict") or "done" if event.get("status") == "done" else "failed"
            detail = f" — {error['code']}: {error['message']}" if error else ""
            self._say(f"{label}: {outcome}{detail}")

    def _say(self, line: str) -> None:
        if self.live:
            self.bars.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)


def _table(result: Any) -> None:
    """The summary for people: one row per cell, only the columns that vary (the ids are in summary.csv)."""
    from rich.console import Console
    from rich.table import Table

    from guardchain.core import views as fmt

    rows = result.rows
    varying = [key for key in ("baseline", "tier", "seed") if len({str(r[key]) for r in rows}) > 1]
    table = Table(title=f"guardchain sweep: {result.out}", title_justify="left")
    for column in ("#", *varying, "edit settings", "verdict", "ratio [95% CI]", "failed gates / error", "wall s"):
        table.add_column(column, overflow="fold")
    for number, row in enumerate(rows, start=1):
        settings = _settings(row["edit_config"])
        if row["status"] == "done":
            ratio = f"{fmt.number(row['ratio'], 4)} {fmt.interval(row['ci_low'], row['ci_high'])}"
            verdict = row["verdict"] + (" (rolled back)" if row["rolled_back"] else "")
            failed = ", ".join(row["gates_failed"]) or "-"
        else:
            error = row["error"] or {}
            ratio, verdict, failed = "-", f"[red]{row['status']}[/red]", f"{error.get('code')}: {error.get('message')}"
        wall = "-" if row["wall_s"] is None else f"{row['wall_s']:.1f}"
        extra = [str(row[key]) for key in varying]
        table.add_row(str(number), *extra, settings, verdict, ratio, failed, wall)
    console = Console()
    console.print(table)
    skipped = f", {len(result.skipped)} kept from before" if result.skipped else ""
    console.print(f"{len(result.ran)} cell(s) run{skipped} in {result.wall_s:.1f} s", markup=False)
    console.print(f"summary: {result.out / 'summary.csv'}  plot: {result.plot}", markup=False)


def _settings(config: dict[str, Any]) -> str:
    """``bits=4, group_size=32`` (values as JSON), or ``-`` for none."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(config.items())) or "-"


@click.group()
def cache() -> None:
    """The baseline cache: per-window baseline evaluations reused by certify and sweep."""


def _cache(cache_dir: str | None) -> Any:
    """The cache ``--cache-dir`` names (else the environment's); a bad setting exits 2 with its code."""
    from guardchain.certify.cache import BaselineCache

    try:
        return BaselineCache.from_env(cache_dir)
    except GuardchainError as exc:
        _fail(exc.problems)


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


@cache.command("info")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Default $GUARDCHAIN_CACHE_DIR or ~/.cache/...")
def cache_info(cache_dir: str | None) -> None:
    """Where the cache is, how many entries and bytes it holds, and its bound."""
    info = _cache(cache_dir).info()
    bound = f"bound {info.max_bytes} bytes, least recently used go first"
    click.echo(f"{info.root}: {_entries(info.entries)}, {info.bytes} bytes ({bound})")


@cache.command("clear")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Default $GUARDCHAIN_CACHE_DIR or ~/.cache/...")
def cache_clear(cache_dir: str | None) -> None:
    """Remove every cached baseline evaluation."""
    before = _cache(cache_dir).clear()
    click.echo(f"removed {_entries(before.entries)} ({before.bytes} bytes) from {before.root}")
