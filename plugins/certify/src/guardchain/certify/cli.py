"""``guardchain certify`` and ``guardchain verify``, added to the CLI through ``guardchain_register_commands``.

Exit codes: ``certify`` 0 PASS, 1 FAIL, 2 bad input or a failure while running (coded, one line each); ``verify``
0 a consistent certificate with verdict PASS, 1 one with verdict FAIL, 2 not intact, unreadable, or something that
could not be checked (unless ``--accept-unchecked``). The CLI shell adds 3 (an internal error, never a verdict)
and 130 (interrupted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from guardchain.core.cli.state import AppState
from guardchain.core.errors import ErrorCode, GuardchainError, Problem

MAX_CERTIFICATE_BYTES = 64 << 20
MAX_CERTIFICATE_DEPTH = 64


def _parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    """``key=value`` pairs; each value is parsed as YAML (``bits=4`` is an int), depth- and size-bounded."""
    import yaml

    from guardchain.core.chainfile import check_tree

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise GuardchainError.single(
                ErrorCode.CONFIG_VALUE, f"{option} expects key=value, got {pair!r}", path=option
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            raise GuardchainError.single(
                ErrorCode.CONFIG_PARSE,
                f"{option} {key.strip()}=...: not a valid value ({type(exc).__name__})",
                path=option,
            ) from exc
        problems = check_tree(value)
        if problems:
            raise GuardchainError(
                [Problem(p.code, p.message, f"{option}.{key.strip()}", p.expected, p.hint) for p in problems]
            )
        out[key.strip()] = value
    return out


def _fail(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(problem.render(), err=True)
    raise SystemExit(2)


@click.command()
@click.option("--baseline", required=True, help="Baseline model: named model, local directory, .gguf file, hub id.")
@click.option("--subject", help="Compare mode: a second checkpoint (same architecture and tokenizer); no edit.")
@click.option("--edit", "edit_name", help="Edit to apply to the baseline (default: guardchain-edits:quant_rtn, int8).")
@click.option("--edit-config", multiple=True, metavar="KEY=VALUE", help="Edit setting, e.g. bits=4. Repeatable.")
@click.option("--profile", type=click.Choice(["dev", "ci", "release"]), default="dev", show_default=True)
@click.option(
    "--tier", type=click.Choice(["balanced", "conservative", "aggressive"]), default="balanced", show_default=True
)
@click.option(
    "--preset", type=click.Path(dir_okay=False), help="YAML/TOML/JSON: dataset, guards, gates, metric, seed..."
)
@click.option("--no-guards", is_flag=True, help="Certify without the guard chain (the certificate says so).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Output folder (default runs/certify-<id>). Must be new, empty, or an earlier certification's; only "
    "guardchain's own files in it are ever replaced.",
)
@click.option("--sign", "key_file", type=click.Path(dir_okay=False), help="Sign with this Ed25519 private key (PEM).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--report",
    "with_report",
    is_flag=True,
    help="Also write report.html into the output folder: the HTML report of `guardchain report` (needs the "
    "guardchain-report distribution).",
)
@click.option(
    "--no-cache", is_flag=True, help="Evaluate the baseline afresh; neither read nor write the baseline cache."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Baseline cache folder (default $GUARDCHAIN_CACHE_DIR or ~/.cache/guardchain/baseline).",
)
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
    with_report: bool,
    no_cache: bool,
    cache_dir: str | None,
) -> None:
    """Certify an edit (or a second checkpoint) against a baseline; write certificate.json and certificate.md.

    Every input (configs, plugins, the output folder, the signing key) is checked before any model loads. Exits 0
    when the verdict is PASS, 1 when it is FAIL, 2 on bad input or a failure (nothing certified then).
    """
    import uuid

    from guardchain.certify.cache import BaselineCache
    from guardchain.certify.pipeline import certify as run_certify
    from guardchain.certify.request import CertifyPreset, CertifyRequest, load_preset
    from guardchain.certify.signing import load_signing_key

    state = AppState.of(ctx)
    try:
        report_command = _report_command(ctx) if with_report else None
        if subject is not None and (edit_name is not None or edit_config):
            raise GuardchainError.single(
                ErrorCode.CONFIG_VALUE, "--subject (compare mode) takes no --edit", path="--edit"
            )
        if edit_name is not None and not edit_name.strip():
            raise GuardchainError.single(ErrorCode.CONFIG_VALUE, "--edit needs a name", path="--edit")
        key = load_signing_key(key_file) if key_file else None
        base = load_preset(preset) if preset else CertifyPreset()
        updates: dict[str, Any] = {}
        if edit_name:
            updates["edit"] = edit_name.strip()
        if edit_config:
            updates["edit_config"] = {**base.edit_config, **_parse_pairs(edit_config, "--edit-config")}
        if no_guards:
            updates["guards"] = []
        chosen = base.model_copy(update=updates)
        out = Path(out_dir) if out_dir else Path("runs") / f"certify-{uuid.uuid4().hex[:8]}"
        request = CertifyRequest.model_validate(
            {"baseline": baseline, "subject": subject, "tier": tier, "profile": profile, "preset": chosen, "out": out}
        )
        cache = None if no_cache else BaselineCache.from_env(cache_dir)
        certificate = _run_with_progress(
            lambda say, step: run_certify(
                request, state.registry, progress=say, step_progress=step, signing_key=key, cache=cache
            )
        )
    except GuardchainError as exc:
        _fail(exc.problems)
        return
    if fmt == "json":
        click.echo(json.dumps(certificate.model_dump(mode="json"), indent=2))
    else:
        _summary(certificate, out)
    if report_command is not None:
        _write_report(ctx, report_command, out)
    ctx.exit(0 if certificate.verdict == "PASS" else 1)


def _report_command(ctx: click.Context) -> click.Command:
    """The ``report`` command of the root CLI (added by guardchain-report through the command hook); checked up
    front, so a missing one refuses before any model loads.

    :raises GuardchainError: ``GC-PLUGIN-UNAVAILABLE`` when no plugin provides it.
    """
    root = ctx.find_root()
    group = root.command
    command = group.get_command(root, "report") if isinstance(group, click.Group) else None
    if command is None:
        raise GuardchainError.single(
            ErrorCode.PLUGIN_UNAVAILABLE,
            "--report needs the 'report' command, and no installed plugin provides it",
            hint="pip install guardchain-report",
            path="--report",
        )
    return command


def _write_report(ctx: click.Context, command: click.Command, out: Path) -> None:
    """Run ``guardchain report OUT`` (it writes ``report.html`` and records it in the folder's manifest); its
    own coded error, if any, is printed and certify exits 2 — the certificate is written either way."""
    try:
        with command.make_context("report", [str(out)], parent=ctx) as sub:
            command.invoke(sub)
    except SystemExit as exc:
        if exc.code not in (0, None):
            click.echo(f"certificate written to {out}, but its report was not", err=True)
            raise SystemExit(2) from None


def _run_with_progress(work: Any) -> Any:
    """Run ``work(stage, step)`` under live progress on stderr: one line per stage (spinner and elapsed time),
    and one bar per task a capability reports inside it (windows scored, matrices measured)."""
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from guardchain.certify.progress import progress_columns

    console = Console(stderr=True)
    columns = progress_columns()
    with Progress(*columns, console=console, disable=not console.is_terminal) as bars:
        current: list[TaskID] = []
        steps: dict[str, TaskID] = {}

        def stage(message: str) -> None:
            if current:
                bars.update(current[-1], total=1, completed=1)
            if not console.is_terminal:
                click.echo(message, err=True)
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

    from guardchain.core import views as fmt

    pm = certificate.primary_metric
    table = Table(
        title=f"guardchain certify: {certificate.verdict}" + (" (rolled back)" if certificate.rolled_back else ""),
        title_justify="left",
    )
    for column in ("item", "measured", "threshold", "result"):
        table.add_column(column)
    if pm is not None:
        ppl = f"{fmt.number(pm.final.baseline.ppl)} / {fmt.number(pm.final.subject.ppl)}"
        table.add_row("ppl baseline / subject (final)", ppl, "", "")
        table.add_row(
            "ratio (final)",
            f"{fmt.number(pm.final.ratio, 6)} {fmt.interval(pm.final.ci_low, pm.final.ci_high)}",
            "",
            "",
        )
    for gate in certificate.gates:
        table.add_row(
            gate.name,
            fmt.measured(gate.measured),
            fmt.threshold(gate.threshold, gate.comparison),
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


VERIFY_HELP = """Re-derive every number, gate, guard status and the verdict of a certificate from its recorded
measurements and this guardchain's published policy, and check its digests and signature.

What it proves. For any certificate: its numbers agree with each other (ratios with the per-window arrays, the
intervals with the bootstrap, each guard's status with its measurements and the tier's thresholds, each gate
with its measurement, the verdict with the gates), and its thresholds, sizes and required guard chain are this
guardchain's published ones — so a FAIL edited into a PASS, a dropped gate, a weakened guard mode or a changed
measurement is caught. With --pubkey, also who issued it: a valid Ed25519 signature by the key you trust.

What an unsigned certificate cannot prove: who made it, or that it was not re-made. Anyone can compute a
consistent certificate for numbers that were never measured; only a signature you check against a key you trust
ties it to its issuer. An unsigned certificate is therefore reported as "consistent", never "intact".

Exits 0 (consistent or intact, verdict PASS), 1 (consistent or intact, verdict FAIL), 2 (anything disagrees,
the file cannot be read, or something could not be checked: a signature with no --pubkey, a guard whose plugin
is not installed — unless --accept-unchecked)."""


@click.command(help=VERIFY_HELP)
@click.argument("cert_file", type=click.Path())
@click.option("--pubkey", help="Require a valid signature by this Ed25519 public key (64 hex digits or a PEM file).")
@click.option(
    "--accept-unchecked",
    is_flag=True,
    help="Exit by the verdict even when something could not be checked (said in the output).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx: click.Context, cert_file: str, pubkey: str | None, accept_unchecked: bool, as_json: bool) -> None:
    from guardchain.certify.signing import load_public_key
    from guardchain.certify.verify import verify_certificate

    try:
        key_hex = load_public_key(pubkey) if pubkey else None
        data = read_certificate(Path(cert_file))
    except GuardchainError as exc:
        _fail(exc.problems)
        return
    result = verify_certificate(data, public_key_hex=key_hex, registry=AppState.of(ctx).registry)
    cert = result.certificate
    verdict = cert.verdict if cert is not None else None
    blocked = bool(result.mismatches) or (bool(result.unchecked) and not accept_unchecked)
    state = "not intact" if result.mismatches else ("intact" if result.signature == "verified" else "consistent")
    if as_json:
        payload = {
            "ok": not blocked,
            "state": state,
            "verdict": verdict,
            "signature": result.signature,
            "mismatches": [m.__dict__ for m in result.mismatches],
            "unchecked": [m.__dict__ for m in result.unchecked],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        for mismatch in result.mismatches:
            click.echo(f"MISMATCH {mismatch.render()}")
        for item in result.unchecked:
            click.echo(f"NOT CHECKED {item.render()}")
        if not result.mismatches and cert is not None:
            chain = cert.policy.guard_chain
            tail = f"digest {cert.digest[:16]}… — verdict {verdict}"
            if chain != "tier":
                tail += f"; guard chain: {chain} (not the tier's required chain)"
            if result.signature == "verified" and cert.signature is not None:
                click.echo(f"intact: signed by {cert.signature.public_key[:16]}…, verified — {tail}")
            elif result.signature == "unchecked":
                click.echo(f"signature present, not checked — consistent, {tail}")
            else:
                click.echo(f"consistent (unsigned: origin not proven) — {tail}")
    if blocked:
        ctx.exit(2)
    ctx.exit(0 if verdict == "PASS" else 1)


def read_certificate(path: Path) -> Any:
    """Parse a certificate file (or the ``certificate.json`` in a folder), bounded in size and depth.

    :raises GuardchainError: ``GC-CERT-UNREADABLE`` for a missing, oversized, non-UTF-8, non-JSON or too deeply
        nested file.
    """
    from guardchain.certify.codes import CertifyErrorCode
    from guardchain.core.files import read_json

    if path.is_dir():
        path = path / "certificate.json"
    return read_json(
        path, code=CertifyErrorCode.CERT_UNREADABLE, max_bytes=MAX_CERTIFICATE_BYTES, max_depth=MAX_CERTIFICATE_DEPTH
    )
