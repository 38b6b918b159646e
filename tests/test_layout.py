"""The shape of the house (docs/design.md): two packages that meet only in the files of the
contract (tokenized/, metrics.jsonl), declared once in crlft_contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


SEALED = [  # (package, a package it must not import)
    ("crlft_train", "sharegpt_tools"),
    ("sharegpt_tools", "crlft_train"),
    ("crlft_contract", "sharegpt_tools"),
    ("crlft_contract", "crlft_train"),
]


@pytest.mark.parametrize(("package", "other"), SEALED)
def test_the_lint_refuses_an_import_of_the_other_package(package: str, other: str) -> None:
    """The ruff rule that keeps them sealed, on a file placed in each package (read from stdin,
    so nothing is written into the checkout)."""
    for line in (f"import {other}.data\n", f"def f():\n    from {other} import cli\n"):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251",
             "--stdin-filename", f"{package}/probe.py", "-"],
            input=line, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"`{other}` is banned" in done.stdout, done.stdout


def test_neither_package_names_the_other() -> None:
    """Not even in a comment (crlft_contract's docstring names both: it is what they share)."""
    for package, other in SEALED[:2]:
        naming = [
            str(path.relative_to(ROOT))
            for path in (ROOT / package).rglob("*.py")
            if other in path.read_text(encoding="utf-8")
        ]
        assert naming == [], f"{package} names {other} in {naming}"


@pytest.mark.parametrize(
    ("command", "options", "renamed"),
    [
        ("clean", "sharegpt_tools.clean.options:CleanOptions", {"unknown_as": "unknown_model_as"}),
        ("tokenize", "sharegpt_tools.tokenize.options:TokenizeOptions", {}),
    ],
)
def test_a_commands_defaults_are_its_options_dataclass_defaults(
    command: str, options: str, renamed: dict[str, str]
) -> None:
    import dataclasses
    import importlib

    import typer

    from sharegpt_tools.cli.main import app

    module, name = options.split(":")
    declared = {
        f.name: f.default
        for f in dataclasses.fields(getattr(importlib.import_module(module), name))
        if f.default is not dataclasses.MISSING
    }
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    shared = {
        renamed.get(p.name, p.name): p.default
        for p in click_command.params
        if renamed.get(p.name, p.name) in declared and p.default is not None
    }
    assert len(shared) >= 6, shared
    for field, default in shared.items():
        assert default == declared[field], (command, field, default, declared[field])


def test_every_data_file_of_the_packages_is_package_data() -> None:
    """A resource file the code reads (a schema, a preset, the model table...) must be declared
    in pyproject's package-data, or an installed wheel lacks it (scripts/wheel_check.sh finds
    that too, but only in CI's last step)."""
    import fnmatch
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]
    for package in ("sharegpt_tools", "crlft_train", "crlft_contract"):
        patterns = declared.get(package, [])
        tracked = subprocess.run(
            ["git", "ls-files", package], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()  # the repository's files, not caches
        for name in tracked:
            relative = Path(name).relative_to(package).as_posix()
            if relative.endswith(".py"):
                continue
            if relative == "ruff.toml":
                continue  # lint configuration, not read at run time
            assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), (
                f"{package}/{relative} is not in pyproject's package-data"
            )
