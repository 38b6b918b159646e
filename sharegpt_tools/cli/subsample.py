"""`sharegpt-tools subsample`: labeled/ → subsampled/ (the paper's data-size experiments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sharegpt_tools.cli.common import WorkspaceOption, console, fail


def subsample(
    class_: Annotated[
        list[str],
        typer.Option(
            "--class",
            help="Class to subsample (repeatable; pairs with the --ratio at the same position).",
        ),
    ],
    ratio: Annotated[
        list[float],
        typer.Option(help="Fraction of that class to keep: 0 removes it, 1 keeps all."),
    ],
    seed: Annotated[int, typer.Option(help="Seed of the selection (same seed, same rows).")] = 0,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Keep a fraction of some classes of [bold]WORKSPACE/labeled/[/] in
    [bold]WORKSPACE/subsampled/[/].

    Exactly round(ratio × n) conversations of each named class are kept; other classes are kept
    whole. It always samples from labeled/, so running it twice with 0.6 keeps 60%, not 36%.
    Examples: only GPT-4 = [cyan]--class gpt35 --ratio 0[/]; 60% of GPT-4 =
    [cyan]--class gpt4 --ratio 0.6[/].
    """
    from sharegpt_tools.subsample.stage import run_subsample
    from sharegpt_tools.workspace import StageError, Workspace

    ratios = pair_ratios(class_, ratio)
    try:
        result = run_subsample(Workspace(workspace), ratios, seed)
    except StageError as exc:
        fail(str(exc))
    table = Table(title="subsample", header_style="bold")
    for column in ("class", "ratio", "before", "after"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, before in result.before.items():
        after = result.after[name]
        shown = f"{ratios[name]:g}" if name in ratios else "1 (kept)"
        table.add_row(name, shown, f"{before:,}", f"{after:,}")
    console.print(table)
    console.print(f"read {workspace / 'labeled'}, wrote [bold]{result.stage}[/]")


def pair_ratios(classes: list[str], ratios: list[float]) -> dict[str, float]:
    """--class and --ratio paired by position; a class named twice is an error, not last-wins."""
    if len(classes) != len(ratios):
        fail(f"got {len(classes)} --class and {len(ratios)} --ratio: give one ratio per class")
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    if repeated:
        fail(f"--class {', '.join(repeated)} is given more than once: give each class one --ratio")
    return dict(zip(classes, ratios, strict=True))
