"""Options and helpers shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

WorkspaceOption = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder holding one sub-folder per stage (raw, clean, labeled, ...).",
        file_okay=False,
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """One readable line for a user error, no traceback."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def progress_bar(*counters: ProgressColumn) -> Progress:
    """The progress bar every long stage shows: description, bar, its own counters, times."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        *counters,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
