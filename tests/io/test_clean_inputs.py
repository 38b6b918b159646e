"""`sharegpt-tools clean` on inputs that used to be misread (issue 9), through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import zstandard
from typer.testing import CliRunner, Result

from sharegpt_tools.cli.main import app

runner = CliRunner()
# Cheap options: these tests are about reading, not cleaning.
FAST = ["--workers", "1", "--lang-backend", "none", "--no-near-dedup"]


def conversation(row_id: str, question: str = "What is the capital of France?") -> dict:
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": "Paris, " + row_id}]
    return {"id": row_id, "conversations": turns}


ROWS = [conversation("a"), conversation("b", "And of Italy?")]
PRETTY = [json.dumps(row, indent=2) for row in ROWS]
WRAPPED = "JSON object wrapping a list under 'data'"


def clean(workspace: Path, *inputs: Path | str, options: tuple[str, ...] = ()) -> Result:
    args = ["clean", *map(str, inputs), "-w", str(workspace), *FAST, *options]
    return runner.invoke(app, args)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def refused(result: Result) -> str:
    """The one error line of a refused run; no traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    return lines[0]


def stage(workspace: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    folder = workspace / "clean"
    return (
        pl.read_parquet(folder / "conversations.parquet"),
        pl.read_parquet(folder / "rejects.parquet"),
        json.loads((folder / "manifest.json").read_text(encoding="utf-8")),
    )


@pytest.mark.parametrize(
    ("text", "described", "layout"),
    [
        (json.dumps({"data": ROWS}, indent=2), WRAPPED, "wrapped_list"),
        ("\n".join(PRETTY), "concatenated JSON objects", "concatenated_objects"),
        (json.dumps(ROWS, indent=2), "JSON array", "json_array"),
    ],
)
def test_layout_is_detected_printed_and_recorded(
    tmp_path: Path, text: str, described: str, layout: str
) -> None:
    raw = tmp_path / "sample.json"
    raw.write_text(text, encoding="utf-8")
    result = clean(tmp_path / "ws", raw)
    assert result.exit_code == 0, result.output
    assert f"{raw}: {described}, 2 rows" in result.stderr
    kept, _, manifest = stage(tmp_path / "ws")
    assert kept["id"].to_list() == ["a", "b"]
    assert manifest["inputs"][0]["layout"] == layout


def test_pretty_printed_single_conversation_is_one_row(tmp_path: Path) -> None:
    raw = tmp_path / "one.json"
    raw.write_text(json.dumps(ROWS[0], indent=2), encoding="utf-8")
    result = clean(tmp_path / "ws", raw)
    assert result.exit_code == 0, result.output
    assert f"{raw}: one JSON object, 1 row" in result.stderr
    kept, rejects, _ = stage(tmp_path / "ws")
    assert kept["id"].to_list() == ["a"] and rejects.height == 0


def test_jsonl_with_a_bad_first_line_is_read(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text("oops, not json\n" + "\n".join(map(json.dumps, ROWS)) + "\n", encoding="utf-8")
    result = clean(tmp_path / "ws", raw)
    assert result.exit_code == 0, result.output
    kept, rejects, manifest = stage(tmp_path / "ws")
    assert kept["id"].to_list() == ["a", "b"]
    assert rejects["reason"].to_list() == ["invalid_json"]
    assert rejects["source"].to_list() == [f"{raw}:0"]
    assert manifest["counts"]["in"] == 3


@pytest.mark.parametrize("text", ["", "\n  \n", "[]", '{"data": []}'])
def test_empty_input_keeps_the_previous_stage(tmp_path: Path, text: str) -> None:
    workspace = tmp_path / "ws"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(ROWS), encoding="utf-8")
    assert clean(workspace, good).exit_code == 0
    before = {p.name: p.read_bytes() for p in (workspace / "clean").iterdir()}

    empty = tmp_path / "empty.json"
    empty.write_text(text, encoding="utf-8")
    line = refused(clean(workspace, empty))
    assert f"{empty} holds no rows; nothing was written — pass --allow-empty" in line
    assert {p.name: p.read_bytes() for p in (workspace / "clean").iterdir()} == before
    assert [p.name for p in workspace.iterdir()] == ["clean"]

    result = clean(workspace, empty, options=("--allow-empty",))
    assert result.exit_code == 0, result.output
    kept, rejects, manifest = stage(workspace)
    assert kept.height == rejects.height == manifest["counts"]["in"] == 0


def test_one_empty_input_among_others_is_read(tmp_path: Path) -> None:
    good, empty = tmp_path / "good.json", tmp_path / "empty.json"
    good.write_text(json.dumps(ROWS), encoding="utf-8")
    empty.write_text("", encoding="utf-8")
    result = clean(tmp_path / "ws", empty, good)
    assert result.exit_code == 0, result.output
    assert f"{empty}: empty, 0 rows" in result.stderr


@pytest.mark.parametrize("name", ["raw.json", "raw.jsonl"])
def test_lone_surrogates_are_rejected_and_counted(tmp_path: Path, name: str) -> None:
    rows = [json.dumps(r) for r in ROWS]
    rows += [
        json.dumps(conversation("high", "cut emoji \ud83d")),  # json escapes it as \ud83d
        json.dumps(conversation("low", "cut emoji \ude00")),
        json.dumps(conversation("pair", "whole emoji 😀")),  # a valid pair: \ud83d\ude00
    ]
    raw = tmp_path / name
    text = "[" + ",\n".join(rows) + "]" if name.endswith(".json") else "\n".join(rows)
    raw.write_text(text, encoding="utf-8")
    result = clean(tmp_path / "ws", raw)
    assert result.exit_code == 0, result.output
    kept, rejects, manifest = stage(tmp_path / "ws")
    assert kept["id"].to_list() == ["a", "b", "pair"]
    assert manifest["counts"]["rejected_by_reason"] == {"invalid_unicode": 2}
    assert sorted(json.loads(o)["id"] for o in rejects["original"]) == ["high", "low"]
    assert any("invalid_unicode" in line and " 2 " in line for line in result.stderr.splitlines())


def test_non_utf8_in_an_array_names_the_byte(tmp_path: Path) -> None:
    raw = tmp_path / "latin1.json"
    data = json.dumps(ROWS).encode()[:-1] + b', {"id": "caf\xe9"}]'
    raw.write_bytes(data)
    line = refused(clean(tmp_path / "ws", raw))
    offset = data.index(b"\xe9")
    assert f"{raw}: byte {offset} (line 1) is not UTF-8 (0xe9); re-save the file as UTF-8" in line
    assert not (tmp_path / "ws" / "clean").exists()


def test_same_file_name_in_two_folders_stays_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for folder, rows in (("a", ROWS[:1]), ("b", [conversation("a", "A duplicate id?")])):
        Path(folder).mkdir()
        Path(folder, "part.json").write_text(json.dumps(rows), encoding="utf-8")
    result = clean(Path("ws"), "a/part.json", "b/part.json")
    assert result.exit_code == 0, result.output
    kept, rejects, manifest = stage(Path("ws"))
    assert kept["source"].to_list() == ["a/part.json:0"]
    assert rejects["source"].to_list() == ["b/part.json:0"]
    assert rejects["detail"].to_list() == ["id already used by the row at a/part.json:0"]
    assert [i["path"] for i in manifest["inputs"]] == ["a/part.json", "b/part.json"]


def test_damaged_zstd_has_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    raw = tmp_path / "cut.json.zst"
    raw.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(ROWS).encode())[:-5])
    command = [
        sys.executable,
        "-m",
        "sharegpt_tools",
        "clean",
        str(raw),
        "-w",
        str(tmp_path / "ws"),
    ]
    result = subprocess.run([*command, *FAST], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{raw}: is truncated" in errors[0]
