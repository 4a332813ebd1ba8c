"""``guardchain report RUN_DIR [--out FILE.html] [--open]``.

Exit codes: 0 the report was written; 2 bad input or a failure to write (one coded line each, ``GC-REPORT-*``,
``GC-OUTPUT-WRITE``). The CLI shell adds 3 (an internal error) and 130 (interrupted).
"""

from __future__ import annotations

from pathlib import Path

import click

from guardchain.core.cli.state import AppState
from guardchain.core.errors import GuardchainError


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (default RUN_DIR/report.html). An existing file is replaced only if it is a "
    "guardchain report.",
)
@click.option("--open", "open_it", is_flag=True, help="Open the report in the default web browser afterwards.")
@click.pass_context
def report(ctx: click.Context, run_dir: Path, out: Path | None, open_it: bool) -> None:
    """Write one self-contained HTML page for a certification folder (certificate.json) or a chain run folder
    (run.json): verdict or status, gates, per-window losses, guard findings per layer, each step's result as its
    plugin draws it, timings and provenance. No network, no script: it opens offline, prints, and follows the
    system's light or dark theme."""
    from guardchain.report.build import write_report

    try:
        written = write_report(run_dir, out, AppState.of(ctx).registry)
    except GuardchainError as exc:
        for problem in exc.problems:
            click.echo(problem.render(), err=True)
        raise SystemExit(2) from None
    size = written.stat().st_size
    click.echo(f"report: {written} ({size / 1024:.0f} KiB)")
    if open_it:
        import webbrowser

        if not webbrowser.open(written.resolve().as_uri()):
            click.echo("warning: no web browser could be started; open the file yourself", err=True)
