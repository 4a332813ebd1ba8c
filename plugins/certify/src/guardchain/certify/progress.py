"""The columns of guardchain's progress bars (rich), one definition for every command that draws them."""

from __future__ import annotations

from typing import Any


def progress_columns() -> tuple[Any, ...]:
    """Spinner (a check mark when done), description, bar, ``done/total``, elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    return (
        SpinnerColumn(finished_text="[green]✓[/green]"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
