"""`sharegpt-tools report`: a self-contained HTML page (and PNGs) about a workspace and a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sharegpt_tools.cli.common import WorkspaceOption, console, fail


def report(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file to write (default WORKSPACE/report.html)."),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            help="A crlft-train run folder: adds its training curves.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    png_dir: Annotated[
        Path | None,
        typer.Option(help="Where the charts go as PNG files (default: next to the HTML)."),
    ] = None,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Write one HTML page that opens offline: rejects by reason, models, languages, duplicate
    clusters, turns/lengths/tokens per class, supervised-token share, long-conversation handling
    and, with --run, the training curves (loss per class, learning rate, tokens/s)."""
    from sharegpt_tools.report import ReportError, write_report
    from sharegpt_tools.workspace import StageError, Workspace

    ws = Workspace(workspace)
    out = output or workspace / "report.html"
    try:
        with console.status("drawing the charts"):
            page, charts = write_report(ws, out, run, png_dir)
    except (ReportError, StageError) as exc:
        fail(str(exc))
    console.print(f"report: [bold]{page}[/] (charts as PNG in {charts})")
