"""``guardchain plugins list | show | check``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from guardchain.core.cli.state import AppState
from guardchain.core.kinds import CapabilityKind

if TYPE_CHECKING:
    from guardchain.core.registry import PluginRecord, Registry
    from guardchain.core.specs import CapabilitySpec

KINDS = [k.value for k in CapabilityKind]


@click.group()
def plugins() -> None:
    """List, inspect and check the installed plugins."""


def _capability_row(spec: CapabilitySpec, record: PluginRecord | None) -> dict[str, Any]:
    return {
        "kind": str(spec.kind),
        "name": spec.name,
        "qualified_name": spec.qualified_name,
        "plugin": spec.plugin,
        "distribution": spec.distribution,
        "version": spec.version,
        "status": str(record.status) if record else "ok",
        "summary": spec.summary,
    }


def _listing(registry: Registry, kind: str | None, include_blocked: bool) -> tuple[list[Any], list[Any]]:
    records = [p for p in registry.plugins if include_blocked or p.status != "blocked"]
    if kind:
        records = [p for p in records if kind in p.provides or not p.ok]
    specs = registry.specs(CapabilityKind(kind) if kind else None)
    return records, specs


@plugins.command("list")
@click.option("--kind", type=click.Choice(KINDS), help="Only capabilities of this kind (and plugins that failed).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--all", "include_blocked", is_flag=True, help="Also show plugins that were blocked or disabled.")
@click.option("--requirements", is_flag=True, help="Print 'distribution==version' lines of the loaded plugins.")
@click.pass_context
def list_plugins(ctx: click.Context, kind: str | None, fmt: str, include_blocked: bool, requirements: bool) -> None:
    """List every plugin and the capabilities it provides; exits 0 even when some are broken."""
    registry = AppState.of(ctx).registry
    records, specs = _listing(registry, kind, include_blocked)
    if requirements:
        lines = sorted({f"{p.distribution}=={p.version}" for p in records if p.ok and p.distribution})
        for line in lines:
            click.echo(line)
        return
    if fmt == "json":
        by_name = {p.name: p for p in registry.plugins}
        payload = {
            "plugins": [p.to_dict() for p in records],
            "capabilities": [_capability_row(s, by_name.get(s.plugin)) for s in specs],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console  # rich loads only when a table is printed
    from rich.table import Table  # rich loads only when a table is printed

    table = Table(title="guardchain plugins", title_justify="left")
    for column in ("name", "kind", "distribution", "version", "status", "summary"):
        table.add_column(column, overflow="fold")
    by_name = {p.name: p for p in registry.plugins}
    for spec in specs:
        record = by_name.get(spec.plugin)
        status = str(record.status) if record else "ok"
        table.add_row(
            spec.name, str(spec.kind), spec.distribution or "-", spec.version or "-", _styled(status), spec.summary
        )
    for record in records:
        if record.provides and record.status != "blocked":
            continue
        first = record.problems[0] if record.problems else None
        summary = f"{first.code}: {first.message}" if first else "(registers no capability)"
        table.add_row(
            record.name, "-", record.distribution or "-", record.version or "-", _styled(str(record.status)), summary
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped output: do not fold rows at 80 columns
    console.print(table)
    for record in records:
        for warning in record.warnings:
            click.echo(f"warning: [{record.name}] {warning.code} {warning.message}", err=True)


def _styled(status: str) -> str:
    colour = {"ok": "green", "blocked": "dim"}.get(status, "red")
    return f"[{colour}]{status}[/{colour}]"


@plugins.command("show")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), help="Disambiguate a name used by several kinds.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def show_plugin(ctx: click.Context, name: str, kind: str | None, fmt: str) -> None:
    """Show a capability (summary, docs, JSON Schema of its config) or a plugin by name."""
    registry = AppState.of(ctx).registry
    bare = name.rpartition(":")[2]
    specs = [
        s
        for s in registry.specs(CapabilityKind(kind) if kind else None)
        if s.name == bare and (":" not in name or s.qualified_name == name or name.startswith(f"{s.plugin}:"))
    ]
    record = registry.plugin(name)
    if not specs and record is None:
        raise click.UsageError(f"no capability or plugin named {name!r}; see 'guardchain plugins list'")
    items: list[dict[str, Any]] = []
    for spec in specs:
        items.append(
            {
                **_capability_row(spec, registry.plugin(spec.plugin)),
                "docs": spec.docs,
                "factory": spec.factory if isinstance(spec.factory, str) else repr(spec.factory),
                "config_schema": spec.config_model.model_json_schema(),
            }
        )
    if record is not None and not specs:
        items.append({"plugin": record.to_dict()})
    if fmt == "json":
        click.echo(json.dumps(items if len(items) != 1 else items[0], indent=2))
        return
    for item in items:
        if "plugin" in item and "kind" not in item:
            click.echo(json.dumps(item["plugin"], indent=2))
            continue
        click.echo(f"{item['kind']} {item['name']}  ({item['qualified_name']} {item['version'] or ''})".rstrip())
        click.echo(f"status: {item['status']}")
        click.echo(f"summary: {item['summary']}")
        click.echo(f"factory: {item['factory']}")
        if item["docs"]:
            click.echo("")
            click.echo(item["docs"].strip())
        click.echo("")
        click.echo("config schema:")
        click.echo(json.dumps(item["config_schema"], indent=2))
        click.echo("")


@plugins.command("check")
@click.option("--load", "deep", is_flag=True, help="Also import every capability's implementation and check it.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def check_plugins(ctx: click.Context, deep: bool, fmt: str) -> None:
    """Exit 1 if any plugin is not ok or breaks a rule of the conformance kit (blocked plugins, disabled on
    purpose, do not count).

    Always: load failures, conflicts, and registration modules that import torch or transformers
    (``GC-PLUGIN-HEAVY-IMPORT``). With ``--load``: every capability's config model (a pydantic model forbidding
    extra keys, whose defaults validate and that has a JSON Schema) and factory (importable, satisfying its
    protocol), and the heavy-import check repeated in a fresh interpreter for plugins loaded after torch was.
    """
    registry = AppState.of(ctx).registry
    failures: list[dict[str, Any]] = []
    for record in registry.plugins:
        if record.status == "blocked":
            continue
        problems = list(record.warnings) if record.ok else [*record.problems, *record.warnings]
        if deep and record.ok and record.heavy_unchecked and not record.warnings:
            problems.extend(registry.probe_heavy_imports(record))
        failures.extend({"plugin": record.name, "distribution": record.distribution, **p.to_dict()} for p in problems)
    if deep:
        for spec in registry.specs():
            for problem in registry.check_loadable(spec):
                failures.append({"plugin": spec.plugin, "distribution": spec.distribution, **problem.to_dict()})
    if fmt == "json":
        click.echo(json.dumps({"ok": not failures, "problems": failures}, indent=2))
    else:
        for failure in failures:
            click.echo(f"{failure['code']} [{failure['plugin']}] {failure['message']}")
            if failure.get("hint"):
                click.echo(f"    hint: {failure['hint']}")
        count = len(registry.plugins)
        click.echo(f"{count} plugin(s) checked, {len(failures)} problem(s)", err=True)
    ctx.exit(1 if failures else 0)
