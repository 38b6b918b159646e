"""export: the stage written out in formats other tools read, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.clean.steps import CleanOptions
from sharegpt_tools.export import ExportFormat, export_stage, resolve_stage
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
