"""`sharegpt-tools rules list | show NAME`: the rules presets shipped with the package."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sharegpt_tools.cli.common import fail
from sharegpt_tools.label.presets import preset_names, preset_path, preset_summary

app = typer.Typer(
    name="rules",
    help=(
        "The label rules presets shipped with the package: `label --rules NAME` uses one; "
        "`rules show NAME > mine.yaml` starts a rules file of your own."
    ),
    no_args_is_help=True,
)


@app.command("list")
def list_presets() -> None:
    """List the shipped presets with what each reproduces."""
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("preset", no_wrap=True)
    table.add_column("what it is")
    for name in preset_names():
        table.add_row(name, preset_summary(name))
    Console().print(table)  # stdout: this table is the command's output, not a progress message


@app.command("show")
def show_preset(
    name: Annotated[str, typer.Argument(help="A preset name, as `rules list` prints it.")],
) -> None:
    """Print a preset's YAML (comments included) to stdout."""
    path = preset_path(name)
    if path is None:
        fail(f"no preset named {name!r}; the presets are: {', '.join(preset_names())}")
    typer.echo(path.read_text(encoding="utf-8"), nl=False)
