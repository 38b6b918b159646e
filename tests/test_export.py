"""export: the stage written out in formats other tools read, nothing lost, never a stale one."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tokenized_fixtures import labeled_row, write_stage
from typer.testing import CliRunner

from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.cli.main import app
from sharegpt_tools.export import ExportFormat, export_stage, resolve_stage
from sharegpt_tools.tokenize.stage import resolve_input
from sharegpt_tools.workspace import StageError, Workspace


@pytest.fixture(scope="module")
def cleaned(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = Workspace(tmp_path_factory.mktemp("export") / "ws")
    run_clean([sample_raw], workspace, CleanOptions(workers=1))
    return workspace


def test_sharegpt_round_trip(cleaned: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    count = export_stage(resolve_stage(cleaned, None), out, ExportFormat.SHAREGPT)
    rows = json.loads(out.read_text(encoding="utf-8"))
    stage = pl.read_parquet(cleaned.stage("clean") / "conversations.parquet")
    assert count == len(rows) == stage.height
    assert rows[0]["conversations"] == stage["conversations"][0].to_list()
    assert {"id", "conversations", "model", "language"} <= set(rows[0])


def test_openai_messages(cleaned: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    export_stage(resolve_stage(cleaned, "clean"), out, ExportFormat.OPENAI)
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["messages"][0]["role"] in {"user", "system"}
    assert {m["role"] for m in first["messages"]} <= {"system", "user", "assistant"}


def test_jsonl_keeps_every_column(cleaned: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    export_stage(resolve_stage(cleaned, "clean"), out, ExportFormat.JSONL)
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert {"model_evidence", "refusal_turns", "source"} <= set(first)


def test_missing_stage(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="no conversation stage"):
        resolve_stage(Workspace(tmp_path), None)
    with pytest.raises(StageError, match="labeled"):
        resolve_stage(Workspace(tmp_path), "labeled")


def labeled_and_subsampled(root: Path, subsampled_parent: dict | None = None) -> Workspace:
    ws = Workspace(root / "ws")
    rows = [
        labeled_row("a", [("human", "Hi?"), ("gpt", "Hello.")]),
        labeled_row("b", [("human", "Bye?"), ("gpt", "Bye.")], "gpt35"),
    ]
    labeled = write_stage(ws, rows)
    write_stage(ws, rows[:1], stage="subsampled", parent=subsampled_parent or labeled)
    return ws


def test_a_current_subsampled_stage_is_the_default(tmp_path: Path) -> None:
    ws = labeled_and_subsampled(tmp_path)
    assert resolve_stage(ws, None) == ws.stage("subsampled")


def test_a_stale_subsampled_stage_is_refused_as_tokenize_refuses_it(tmp_path: Path) -> None:
    ws = labeled_and_subsampled(tmp_path, {"stage": "labeled", "fingerprint": "f" * 16})
    with pytest.raises(StageError) as by_tokenize:
        resolve_input(ws)
    for stage in (None, "subsampled"):
        with pytest.raises(StageError) as by_export:
            resolve_stage(ws, stage)
        assert str(by_export.value) == str(by_tokenize.value)
    assert "is stale" in str(by_tokenize.value)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["export", "-o", str(out), "-w", str(ws.root)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "is stale" in result.output and not out.exists()
    # The labeled stage it was made from is still exported when asked for by name.
    assert resolve_stage(ws, "labeled") == ws.stage("labeled")


def test_input_is_a_choice_of_conversation_stages(tmp_path: Path) -> None:
    ws = labeled_and_subsampled(tmp_path)
    args = ["export", "-o", str(tmp_path / "out.json"), "-w", str(ws.root), "--input", "tokenized"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "tokenized" in result.output
    assert "subsampled" in result.output and "Traceback" not in result.output
    with pytest.raises(StageError, match="one of subsampled, labeled, clean"):
        resolve_stage(ws, "tokenized")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_and_keeps_the_earlier_file(
    cleaned: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("earlier export\n", encoding="utf-8")
    (tmp_path / ".out.jsonl.tmp").symlink_to("/dev/full")  # where the export writes first
    with pytest.raises(StageError, match=r"^no space left on device writing .* free in "):
        export_stage(resolve_stage(cleaned, "clean"), out, ExportFormat.JSONL)
    assert out.read_text(encoding="utf-8") == "earlier export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
