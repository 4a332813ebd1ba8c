"""``guardchain config schema``, ``guardchain doctor`` and ``guardchain run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from guardchain.core.cli.state import AppState
from guardchain.core.errors import GuardchainError, Problem


@click.group("config")
def config_group() -> None:
    """Chain-file configuration."""


@config_group.command("schema")
@click.pass_context
def config_schema(ctx: click.Context) -> None:
    """Print the JSON Schema of chain files, including every loaded plugin's config."""
    from guardchain.core.config_schema import chain_json_schema

    click.echo(json.dumps(chain_json_schema(AppState.of(ctx).registry), indent=2))


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(problem.render(), err=True)


def _preflight(ctx: click.Context, chain_file: str) -> tuple[Any, Any, list[Problem]]:
    """Validate and prepare: ``(PreparedChain | ValidatedChain | None, runner, problems)``."""
    from guardchain.core.config import load_chain
    from guardchain.core.runner import ChainRunner

    registry = AppState.of(ctx).registry
    try:
        chain = load_chain(chain_file, registry)
    except GuardchainError as exc:
        return None, None, exc.problems
    runner = ChainRunner(registry)
    try:
        prepared = runner.prepare(chain)
    except GuardchainError as exc:
        return chain, runner, exc.problems
    return prepared, runner, []


@click.command()
@click.argument("chain_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON on stdout.")
@click.pass_context
def doctor(ctx: click.Context, chain_file: str, as_json: bool) -> None:
    """Preflight a chain file: validate it and resolve every capability, without running anything.

    Prints every problem with its path and stable code; exits 1 if there is any.
    """
    prepared, _, problems = _preflight(ctx, chain_file)
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
@click.argument("chain_file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run directory (default: under output.dir).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def run(ctx: click.Context, chain_file: str, out_dir: str | None, fmt: str) -> None:
    """Run a chain file and write its run record (run.json).

    Exits 0 when every step succeeded, 1 when a step failed or a gate guard rolled an edit back, 2 when the chain
    is invalid or cannot start.
    """
    prepared, runner, problems = _preflight(ctx, chain_file)
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
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{record.chain}: {record.status}", title_justify="left")
        for column in ("step", "kind", "capability", "status", "seconds"):
            table.add_column(column)
        for step in record.steps:
            status = step.status + (" (rolled back)" if step.rolled_back else "")
            table.add_row(step.id, step.kind, step.capability.name, status, f"{step.duration_s:.3f}")
        console = Console()
        console.print(table)
        for problem in record.problems:
            console.print(f"{problem.code} {problem.path}: {problem.message}", markup=False)
        console.print(f"run record: {target / 'run.json'}", markup=False)
    ctx.exit(0 if record.status == "ok" else 1)
