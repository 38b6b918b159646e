"""`sharegpt-tools --help`: every option says what it does; flags show no value placeholder."""

from __future__ import annotations

import click
import pytest
import typer.main
from typer.testing import CliRunner

from sharegpt_tools.cli.main import app

ROOT = typer.main.get_command(app)


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append(path)
    return found


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = ROOT
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


@pytest.mark.parametrize("path", commands(ROOT), ids=" ".join)
def test_every_option_has_a_description(path: tuple[str, ...]) -> None:
    options = [p for p in command_at(path).params if isinstance(p, click.Option)]
    undocumented = [p.opts[0] for p in options if not (p.help or "").strip()]
    assert not undocumented, f"{' '.join(path)}: options without help: {undocumented}"


@pytest.mark.parametrize("path", commands(ROOT), ids=" ".join)
def test_flags_show_no_value_placeholder(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
