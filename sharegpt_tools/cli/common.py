"""Options and helpers shared by every command."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def hide_flag_type_placeholders() -> None:
    """typer's help shows a `<bool>` type beside on/off flags as if they took a value; a flag's
    help row shows no type instead (options that take a value keep theirs)."""
    option = typer.core.TyperOption
    shown = option.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: object) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    option.display_type_rich = display_type_rich  # type: ignore[method-assign]


hide_flag_type_placeholders()

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
    # Escaped: a message is text; an id or a path like `runs/[exp]` must not read as markup.
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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


def defaults(options: type) -> SimpleNamespace:
    """The field defaults of a stage's options dataclass. Each command's option defaults are read
    from here, so that the command line and the library declare them once and cannot disagree."""
    fields = dataclasses.fields(options)
    return SimpleNamespace(
        **{f.name: f.default for f in fields if f.default is not f.default_factory}
    )
