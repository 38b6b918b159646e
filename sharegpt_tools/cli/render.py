"""`sharegpt-tools render`: tokenized rows as the model sees them, weighted tokens highlighted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sharegpt_tools.cli.common import WorkspaceOption, fail
from sharegpt_tools.tokenize.render import RenderError, Split, chosen_rows, print_rows


def render(
    id_: Annotated[
        str | None,
        typer.Option("--id", help="Show every row (piece) of this conversation id."),
    ] = None,
    sample: Annotated[
        int, typer.Option(min=1, help="Without --id: how many random rows to show.")
    ] = 1,
    split: Annotated[Split, typer.Option(help="Split to read.")] = Split.TRAIN,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Print rows of [bold]WORKSPACE/tokenized/[/] decoded with its own tokenizer: tokens with
    weight 1 on [bold black on green]green[/], 0 < weight < 1 on [black on yellow]yellow[/],
    weight 0 [dim]dim[/]; then token count, supervised tokens and class."""
    from sharegpt_tools.workspace import StageError, Workspace

    ws = Workspace(workspace)
    stage = ws.stage("tokenized")
    try:
        ws.require("tokenized")
        rows, hits = chosen_rows(stage, split, id_, sample, seed)
    except (StageError, RenderError) as exc:
        fail(str(exc))
    print_rows(Console(highlight=False), stage, rows, hits, split)
