"""The command line as a user meets it: help, a run, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sharegpt_tools.cli.main import app

runner = CliRunner()


def test_help_lists_the_stages() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "clean" in result.output and "sample" in result.output


def test_clean_help_explains_options() -> None:
    result = runner.invoke(app, ["clean", "--help"])
    assert result.exit_code == 0
    for option in ("--near-threshold", "--lang", "--refusals", "--unknown-as", "--workspace"):
        assert option in result.output


def test_sample_then_clean_prints_summary(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "sample.json"
    result = runner.invoke(app, ["sample", "--n", "300", "-o", str(raw)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["clean", str(raw), "-w", str(tmp_path / "ws"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "rejected" in result.output
    manifest = json.loads((tmp_path / "ws" / "clean" / "manifest.json").read_text())
    assert manifest["counts"]["in"] == 300


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sharegpt_tools", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_truncated_input_is_one_readable_line(tmp_path: Path) -> None:
    raw = tmp_path / "cut.json"
    raw.write_text('[{"id": "a", "conversations": [{"from": "human", "va', encoding="utf-8")
    result = run_cli("clean", str(raw), "-w", str(tmp_path / "ws"), "--workers", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "cut.json" in error_lines[0]
    assert not (tmp_path / "ws" / "clean").exists()


def test_missing_input_file_is_reported(tmp_path: Path) -> None:
    result = run_cli("clean", str(tmp_path / "nope.json"), "-w", str(tmp_path / "ws"))
    assert result.returncode == 2
    assert "nope.json" in result.stderr and "Traceback" not in result.stderr
