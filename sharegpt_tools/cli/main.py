"""`sharegpt-tools`: the data side of the C-RLFT tool chain."""

from __future__ import annotations

import typer

from sharegpt_tools import __version__
from sharegpt_tools.cli import clean, label, sample
from sharegpt_tools.cli import export as export_cli
from sharegpt_tools.cli import render as render_cli
from sharegpt_tools.cli import report as report_cli
from sharegpt_tools.cli import rules as rules_cli
from sharegpt_tools.cli import subsample as subsample_cli
from sharegpt_tools.cli import tokenize as tokenize_cli
from sharegpt_tools.cli import toy_tokenizer as toy_tokenizer_cli

app = typer.Typer(
    name="sharegpt-tools",
    help=(
        "Turn mixed-quality ShareGPT chat dumps into class-conditioned, reward-weighted training "
        "data (OpenChat's C-RLFT). Stages: sample → clean → label → subsample → tokenize; "
        "report shows what they did."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
app.command("sample")(sample.sample)
app.command("clean")(clean.clean)
app.command("label")(label.label)
app.command("subsample")(subsample_cli.subsample)
app.command("export")(export_cli.export)
app.command("tokenize")(tokenize_cli.tokenize)
app.command("render")(render_cli.render)
app.command("report")(report_cli.report)
app.command("toy-tokenizer")(toy_tokenizer_cli.toy_tokenizer)
app.add_typer(rules_cli.app)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sharegpt-tools {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Common entry point; each stage is a sub-command."""
