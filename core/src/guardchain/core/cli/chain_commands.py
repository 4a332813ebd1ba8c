"""``guardchain config schema``, ``guardchain doctor`` and ``guardchain run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guardchain.core.cli.state import AppState
from guardchain.core.errors import GuardchainError, Problem

if TYPE_CHECKING:
    from guardchain.core.records import RunRecord, StepRecord


@click.group("config")
def config_group() -> None:
    """Chain-file configuration."""


@config_group.command("schema")
@click.pass_context
def config_schema(ctx: click.Context) -> None:
    """Print the JSON Schema of chain files, including every loaded plugin's config.

    A plugin whose config model is broken is left out of the schema and named on stderr (the others' schema is
    still printed); the exit code is then 1.
    """
    from guardchain.core.config_schema import (
        chain_json_schema,  # pydantic models load only when a schema is asked for (--help stays fast)
    )

    problems: list[Problem] = []
    schema = chain_json_schema(AppState.of(ctx).registry, problems)
    click.echo(json.dumps(schema, indent=2))
    for problem in problems:
        first, _, rest = problem.render().partition("\n")
        click.echo(f"{first} [plugin {problem.details.get('plugin', '?')}: left out of the schema]", err=True)
        if rest:
            click.echo(rest, err=True)
    ctx.exit(1 if problems else 0)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(problem.render(), err=True)


def _preflight(ctx: click.Context, chain_file: str, out_dir: str | None) -> tuple[Any, Any, list[Problem]]:
    """Validate and prepare: ``(PreparedChain | ValidatedChain | None, runner, problems)``.

    Also checks that the run's output folder can be written (``GC-OUTPUT-WRITE``), without creating anything.
    """
    from guardchain.core.config import load_chain  # pydantic models load only when a chain is read (--help stays fast)
    from guardchain.core.runner import (  # the runner loads only when a chain runs (--help stays fast)
        ChainRunner,
        output_dir_problem,
    )

    registry = AppState.of(ctx).registry
    try:
        chain = load_chain(chain_file, registry)
    except GuardchainError as exc:
        return None, None, exc.problems
    runner = ChainRunner(registry)
    problems: list[Problem] = []
    prepared: Any = chain
    try:
        prepared = runner.prepare(chain)
    except GuardchainError as exc:
        problems.extend(exc.problems)
    target = Path(out_dir) if out_dir else Path(chain.config.output.dir)
    where = "--out" if out_dir else "output.dir"
    found = output_dir_problem(target, path="" if out_dir else "output.dir", option=where)
    if found is not None:
        problems.append(found)
    return prepared, runner, problems


@click.command()
@click.argument("chain_file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON on stdout.")
@click.pass_context
def doctor(ctx: click.Context, chain_file: str, as_json: bool) -> None:
    """Preflight a chain file: validate it and resolve every capability, without running anything.

    Prints every problem with its path and stable code; exits 1 if there is any (a missing, unreadable or
    invalid file included).
    """
    prepared, _, problems = _preflight(ctx, chain_file, None)
    chain = getattr(prepared, "chain", prepared)
    if as_json:
        payload = {
            "ok": not problems,
            "chain": chain.config.name if chain else None,
            "digest": chain.digest if chain else None,
            "problems": [p.to_dict() for p in problems],
        }
        click.echo(json.dumps(payload, indent=2))
    elif problems:
        for problem in problems:
            click.echo(problem.render())
        click.echo(f"{len(problems)} problem(s) in {chain_file}", err=True)
    else:
        click.echo(f"ok: {chain_file} ({chain.config.name}, {len(chain.config.steps)} step(s))")
    ctx.exit(1 if problems else 0)


@click.command()
@click.argument("chain_file", type=click.Path())
@click.option("--out", "out_dir", type=click.Path(), help="Run directory (default: under output.dir).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def run(ctx: click.Context, chain_file: str, out_dir: str | None, fmt: str) -> None:
    """Run a chain file and write its run record (run.json).

    Exits 0 when every step succeeded, 1 when a step failed or a gate guard rolled an edit back, 2 when the chain
    is invalid or cannot start (an output folder that cannot be written included).
    """
    prepared, runner, problems = _preflight(ctx, chain_file, out_dir)
    if problems:
        _print_problems(problems)
        ctx.exit(2)
    chain = prepared.chain
    try:
        record = runner.run(prepared, out_dir=Path(out_dir) if out_dir else None)
    except GuardchainError as exc:
        _print_problems(exc.problems)
        ctx.exit(2)
    target = Path(out_dir) if out_dir else Path(chain.config.output.dir) / f"{chain.config.name}-{record.run_id[:8]}"
    if fmt == "json":
        click.echo(json.dumps(record.model_dump(mode="json"), indent=2))
    else:
        _print_table(record)
        for problem in record.problems:
            where = f"{problem.path}: " if problem.path else ""
            click.echo(f"{problem.code} {where}{problem.message}")  # one line each: never folded at 80 columns
            if problem.hint:
                click.echo(f"    hint: {problem.hint}")
        click.echo(f"run record: {target / 'run.json'}")
    ctx.exit(0 if record.status == "ok" else 1)


def _print_table(record: RunRecord) -> None:
    """The steps as a table; a guard's row shows its verdict on the edit that followed it (pass, warn, fail)."""
    from rich.console import Console  # rich loads only when a table is printed
    from rich.table import Table  # rich loads only when a table is printed

    table = Table(title=f"{record.chain}: {record.status}", title_justify="left")
    for column in ("step", "kind", "capability", "status", "guard verdict", "seconds"):
        table.add_column(column)
    verdicts = guard_verdicts(record.steps)
    for step in record.steps:
        status = step.status + (" (rolled back)" if step.rolled_back else "")
        table.add_row(
            step.id, step.kind, step.capability.name, status, verdicts.get(step.index, ""), f"{step.duration_s:.3f}"
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped output: do not fold rows at 80 columns
    console.print(table)


def guard_verdicts(steps: list[StepRecord]) -> dict[int, str]:
    """Step index of each guard -> ``"pass"``, ``"warn"`` or ``"fail"`` (with ``(gate)`` / ``(monitor)``).

    The runner gives the edit after a group of guards their reports in the guards' order, so the guard steps since
    the previous edit are matched with that edit's ``result.guards`` in order.
    """
    verdicts: dict[int, str] = {}
    pending: list[int] = []
    for step in steps:
        if step.kind == "guard":
            pending.append(step.index)
        elif step.kind == "edit":
            reports = (step.result or {}).get("guards") or []
            for index, report in zip(pending, reports, strict=False):
                verdicts[index] = f"{report.get('status', '?')} ({report.get('mode', '?')})"
            pending = []
    return verdicts
