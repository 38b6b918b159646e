"""The clean stage's outputs satisfy the shared JSON Schemas."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import polars as pl
import pytest

from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.schemas import validate
from sharegpt_tools.workspace import Workspace


def test_clean_records_and_manifest_match_schemas(sample_raw: Path, tmp_path: Path) -> None:
    result = run_clean([sample_raw], Workspace(tmp_path / "ws"), CleanOptions(workers=1))
    validate(result.manifest, "manifest")
    for record in pl.read_parquet(result.stage / "conversations.parquet").iter_rows(named=True):
        validate(record, "conversation")


def test_schema_rejects_a_bad_record() -> None:
    bad = {"id": "x", "conversations": [{"from": "robot", "value": "hi"}], "model": "gpt-5"}
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, "conversation")
