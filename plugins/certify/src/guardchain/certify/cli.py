"""``guardchain certify`` and ``guardchain verify``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from guardchain.core.cli.state import AppState
from guardchain.core.errors import ErrorCode, GuardchainError, Problem


def _parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise GuardchainError.single(
                ErrorCode.CONFIG_VALUE, f"{option} expects key=value, got {pair!r}", path=option
            )
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _fail(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(problem.render(), err=True)
    raise SystemExit(2)


@click.command()
@click.option("--baseline", required=True, help="Baseline model: named model, local directory, .gguf file, hub id.")
@click.option("--subject", help="Compare mode: a second checkpoint (same architecture and tokenizer); no edit.")
@click.option("--edit", "edit_name", help="Edit to apply to a copy of the baseline (default: quant_rtn, int8).")
@click.option("--edit-config", multiple=True, metavar="KEY=VALUE", help="Edit setting, e.g. bits=4. Repeatable.")
@click.option("--profile", type=click.Choice(["dev", "ci", "release"]), default="dev", show_default=True)
@click.option(
    "--tier", type=click.Choice(["balanced", "conservative", "aggressive"]), default="balanced", show_default=True
)
@click.option("--preset", type=click.Path(dir_okay=False), help="YAML/TOML/JSON: dataset, guards, metric, seed...")
@click.option("--no-guards", is_flag=True, help="Certify without the guard chain (the primary metric alone).")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Output directory (default runs/certify-<id>)."
)
@click.option(
    "--sign",
    "key_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Sign the certificate with this Ed25519 private key (PEM).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def certify(
    ctx: click.Context,
    baseline: str,
    subject: str | None,
    edit_name: str | None,
    edit_config: tuple[str, ...],
    profile: str,
    tier: str,
    preset: str | None,
    no_guards: bool,
    out_dir: str | None,
    key_file: str | None,
    fmt: str,
) -> None:
    """Certify an edit (or a second checkpoint) against a baseline; write certificate.json and certificate.md.

    Exits 0 when the verdict is PASS, 1 when it is FAIL, 2 on bad input (nothing is written then).
    """
    import uuid

    from guardchain.core.certify import CertifyPreset, CertifyRequest, load_preset
    from guardchain.core.certify import certify as run_certify

    state = AppState.of(ctx)
    try:
        if subject is not None and (edit_name is not None or edit_config):
            raise GuardchainError.single(
                ErrorCode.CONFIG_VALUE, "--subject (compare mode) takes no --edit", path="--edit"
            )
        base = load_preset(preset) if preset else CertifyPreset()
        updates: dict[str, Any] = {}
        if edit_name:
            updates["edit"] = edit_name
        if edit_config:
            updates["edit_config"] = {**base.edit_config, **_parse_pairs(edit_config, "--edit-config")}
        if no_guards:
            updates["guards"] = []
        chosen = base.model_copy(update=updates)
        out = Path(out_dir) if out_dir else Path("runs") / f"certify-{uuid.uuid4().hex[:8]}"
        request = CertifyRequest.model_validate(
            {"baseline": baseline, "subject": subject, "tier": tier, "profile": profile, "preset": chosen, "out": out}
        )
        key = Path(key_file).read_bytes() if key_file else None
        certificate = _run_with_progress(
            lambda say, step: run_certify(
                request, state.registry, progress=say, step_progress=step, signing_key_pem=key
            )
        )
    except GuardchainError as exc:
        _fail(exc.problems)
        return
    if fmt == "json":
        click.echo(json.dumps(certificate.model_dump(mode="json"), indent=2))
    else:
        _summary(certificate, out)
    ctx.exit(0 if certificate.verdict == "PASS" else 1)


def _run_with_progress(work: Any) -> Any:
    """Run ``work(stage, step)`` under live progress on stderr: one line per stage (spinner and elapsed time),
    and one bar per task a capability reports inside it (windows scored, matrices measured)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    columns = (
        SpinnerColumn(finished_text="[green]✓[/green]"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bars:
        current: list[TaskID] = []
        steps: dict[str, TaskID] = {}

        def stage(message: str) -> None:
            if current:
                bars.update(current[-1], total=1, completed=1)
            if not console.is_terminal:
                console.print(message, markup=False, highlight=False)
            steps.clear()
            current.append(bars.add_task(message, total=None))

        def step(task: str, done: int, total: int) -> None:
            if task not in steps:
                steps[task] = bars.add_task(f"  {task}", total=total)
            bars.update(steps[task], completed=done, total=total)

        result = work(stage, step)
        if current:
            bars.update(current[-1], total=1, completed=1)
        return result


def _summary(certificate: Any, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    pm = certificate.primary_metric
    table = Table(
        title=f"guardchain certify: {certificate.verdict}" + (" (rolled back)" if certificate.rolled_back else ""),
        title_justify="left",
    )
    for column in ("item", "measured", "threshold", "result"):
        table.add_column(column)
    if pm is not None:
        ci = f"[{pm.final.ci_low:.4f}, {pm.final.ci_high:.4f}]" if pm.final.ci_low is not None else "n/a"
        ppl = f"{pm.final.baseline.ppl:.4f} / {pm.final.subject.ppl:.4f}"
        table.add_row("ppl baseline / subject (final)", ppl, "", "")
        table.add_row("ratio (final)", f"{pm.final.ratio:.5f} {ci}", "", "")
    for gate in certificate.gates:
        measured = f"{gate.measured:.5f}" if isinstance(gate.measured, float) else str(gate.measured)
        table.add_row(
            gate.name,
            measured,
            str(gate.threshold if gate.threshold is not None else ""),
            "pass" if gate.passed else "[red]FAIL[/red]",
        )
    for index, report in enumerate(certificate.guards):
        if report.get("mode") != "gate":
            table.add_row(f"guard:{index}:{report.get('guard')} (monitor)", str(report.get("status")), "", "")
    overhead = certificate.guard_overhead
    if overhead is not None:
        table.add_row("guards' share of wall time", f"{overhead.guard_share:.1%}", "", "")
    console = Console()
    console.print(table)
    console.print(f"certificate: {out / 'certificate.json'}", markup=False)


@click.command()
@click.argument("cert_file", type=click.Path())
@click.option("--pubkey", help="Require a signature by this Ed25519 public key (hex, or a PEM file path).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx: click.Context, cert_file: str, pubkey: str | None, as_json: bool) -> None:
    """Recompute every number, gate and the verdict of a certificate, and check its digests and signature.

    Exits 0 when it is intact and its verdict is PASS, 1 when it is intact with verdict FAIL, 2 when anything
    disagrees (each mismatch is listed with its field).
    """
    from guardchain.core.verify import Mismatch, verify_certificate

    path = Path(cert_file)
    if path.is_dir():
        path = path / "certificate.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        click.echo(f"{ErrorCode.CONFIG_PARSE} cannot read {str(path)!r}: {exc}", err=True)
        raise SystemExit(2) from exc
    key_hex = _public_key_hex(pubkey) if pubkey else None
    cert, mismatches = verify_certificate(data if isinstance(data, dict) else {}, public_key_hex=key_hex)
    if not isinstance(data, dict):
        mismatches = [Mismatch("(certificate)", "is not a JSON object")]
    verdict = cert.verdict if cert is not None else None
    if as_json:
        click.echo(
            json.dumps(
                {"ok": not mismatches, "verdict": verdict, "mismatches": [m.__dict__ for m in mismatches]}, indent=2
            )
        )
    else:
        for mismatch in mismatches:
            click.echo(f"MISMATCH {mismatch.render()}")
        if not mismatches:
            click.echo(f"intact: digest {cert.digest if cert else ''} — verdict {verdict}")
    if mismatches:
        ctx.exit(2)
    ctx.exit(0 if verdict == "PASS" else 1)


def _public_key_hex(value: str) -> str:
    candidate = Path(value)
    if candidate.is_file():
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_public_key(candidate.read_bytes())
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    return value
