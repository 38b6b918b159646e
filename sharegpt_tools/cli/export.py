"""`sharegpt-tools export`: any conversation stage → ShareGPT JSON / OpenAI JSONL / JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sharegpt_tools.cli.common import WorkspaceOption, console, fail
from sharegpt_tools.export import ExportFormat, ExportStage


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.", dir_okay=False)],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="sharegpt: one JSON array; openai: JSON lines of {messages: [{role, content}]}; "
            "jsonl: JSON lines of every stored column.",
        ),
    ] = ExportFormat.SHAREGPT,
    stage: Annotated[
        ExportStage | None,
        typer.Option(
            "--input",
            "-i",
            help="Stage to export; default: the most processed one present. A subsampled/ made "
            "from an older labeled/ is refused, as tokenize refuses it.",
        ),
    ] = None,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Write a conversation stage out for other tools; class, weight and condition are kept as
    extra fields."""
    from sharegpt_tools.export import export_stage, resolve_stage
    from sharegpt_tools.workspace import StageError, Workspace

    try:
        folder = resolve_stage(Workspace(workspace), stage)
        count = export_stage(folder, output, fmt)
    except StageError as exc:
        fail(str(exc))
    console.print(f"read {folder}, wrote {count:,} conversations to [bold]{output}[/] ({fmt})")
