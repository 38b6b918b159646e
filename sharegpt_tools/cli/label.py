"""`sharegpt-tools label`: data/clean/ → data/labeled/ (class, weight, condition per row)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sharegpt_tools.cli.common import WorkspaceOption, console, fail
from sharegpt_tools.label.presets import preset_names

RULES = "Rules"
IO = "Input"


def label(
    rules: Annotated[
        str,
        typer.Option(
            "--rules",
            metavar="FILE|PRESET",
            help=(
                "YAML rules: classes with a weight, a condition tag and match criteria; the first "
                "matching class wins. A file, or a shipped preset by name: "
                f"{', '.join(preset_names())} (paper = the OpenChat paper's C-RLFT). "
                "`sharegpt-tools rules list` describes them; `rules show NAME` prints one."
            ),
            rich_help_panel=RULES,
        ),
    ],
    workspace: WorkspaceOption = Path("data"),
    input_dir: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Clean stage folder to read instead of WORKSPACE/clean.",
            file_okay=False,
            rich_help_panel=IO,
        ),
    ] = None,
) -> None:
    """Label clean conversations for C-RLFT into [bold]WORKSPACE/labeled/[/]: each gets the
    [bold]class[/], reward [bold]weight[/] and [bold]condition[/] tag of the first rules class it
    matches, and per-turn weights (refusals marked by clean get 0).

    Rows that no class takes go to dropped.parquet with a reason, so nothing is lost.

    manifest.json counts rows per class; the stage is replaced atomically at the end.
    """
    from sharegpt_tools.label.rules import RulesError, load_rules, resolve_rules
    from sharegpt_tools.label.stage import run_label
    from sharegpt_tools.workspace import StageError, Workspace

    ws = Workspace(workspace)
    try:
        parsed = load_rules(resolve_rules(rules))
        console.print(f"reading rules {parsed.path} ({len(parsed.classes)} classes)")
        console.print(f"reading {(input_dir or ws.stage('clean')) / 'conversations.parquet'}")
        result = run_label(ws, parsed, input_dir)
    except (RulesError, StageError) as exc:
        fail(str(exc))
    print_summary(result.counts, parsed.document)
    console.print(
        f"wrote [bold]{result.stage}[/] (conversations.parquet, dropped.parquet, manifest.json)"
    )


def print_summary(counts: dict, rules: dict) -> None:
    """Per class: conversations, turns, characters, weight(s), condition; then what was dropped."""
    table = Table(title="label", show_header=True, header_style="bold")
    for column in ("class", "conversations", "turns", "characters", "weight", "condition"):
        left = column in ("class", "condition")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for spec in rules["classes"]:
        stats = counts["classes"][spec["name"]]
        table.add_row(
            spec["name"],
            f"{stats['conversations']:,}",
            f"{stats['turns']:,}",
            f"{stats['chars']:,}",
            weight_text(spec["weight"], stats),
            spec["condition"] or "(none)",
        )
    table.add_section()
    table.add_row("kept", f"{counts['kept']:,}", style="bold green")
    table.add_row("dropped", f"{counts['dropped']:,}", style="bold red")
    for reason, value in counts["rejected_by_reason"].items():
        table.add_row(f"  {reason}", f"{value:,}")
    table.add_row("in", f"{counts['in']:,}", style="bold")
    console.print(table)


def weight_text(weight: float | dict, stats: dict) -> str:
    """The constant weight, or the range seen when it comes from a column."""
    if not isinstance(weight, dict):
        return str(float(weight))
    if stats["weight_min"] is None:
        return "(column)"
    return f"{stats['weight_min']:.3g}–{stats['weight_max']:.3g}"
