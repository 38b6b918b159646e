"""Streaming readers: formats, compression, and bad input that must fail clearly or per row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from sharegpt_tools.io.readers import InputError, RowReader
from sharegpt_tools.records import Reason

ROWS = [
    {"id": "a", "conversations": [{"from": "human", "value": "hi"}]},
    "not an object",
    None,
    {"id": "b", "conversations": []},
]


def values(path: Path) -> list[object]:
    return [row.value for row in RowReader([path])]


def write_array(path: Path) -> Path:
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    return path


def test_json_array(tmp_path: Path) -> None:
    assert values(write_array(tmp_path / "raw.json")) == ROWS


def test_jsonl_and_json_with_lines(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(r) for r in ROWS) + "\n\n"
    for name in ("raw.jsonl", "lines-in-a.json"):
        (tmp_path / name).write_text(lines, encoding="utf-8")
        assert values(tmp_path / name) == ROWS


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_inputs(tmp_path: Path, suffix: str) -> None:
    data = json.dumps(ROWS).encode()
    path = tmp_path / f"raw.json{suffix}"
    if suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    assert values(path) == ROWS


def test_parquet_input(tmp_path: Path) -> None:
    rows = [r for r in ROWS if isinstance(r, dict) and r["conversations"]]
    path = tmp_path / "raw.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert values(path) == rows


def test_several_inputs_in_order_with_sources(tmp_path: Path) -> None:
    first = write_array(tmp_path / "one.json")
    second = tmp_path / "two.jsonl"
    second.write_text(json.dumps({"id": "z"}) + "\n", encoding="utf-8")
    reader = RowReader([first, second])
    sources = [row.source for row in reader]
    assert sources == ["one.json:0", "one.json:1", "one.json:2", "one.json:3", "two.jsonl:0"]
    assert [i["rows"] for i in reader.inputs] == [4, 1]
    assert all(len(i["sha256"]) == 64 for i in reader.inputs)


def test_truncated_array_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(ROWS)[:-20], encoding="utf-8")
    with pytest.raises(InputError, match=r"cut\.json: invalid or truncated JSON after row \d"):
        values(path)


def test_not_json_at_all(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("hello, this is a text file", encoding="utf-8")
    with pytest.raises(InputError, match=r"notes\.json: not JSON"):
        values(path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b", encoding="utf-8")
    with pytest.raises(InputError, match="unknown input format"):
        values(path)


def test_jsonl_bad_lines_become_row_rejects(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_bytes(b'{"id": "ok"}\n{"id": "caf\xe9"}\n{"id": \n')
    rows = list(RowReader([path]))
    assert rows[0].value == {"id": "ok"} and rows[0].error is None
    assert rows[1].error == Reason.INVALID_UTF8
    assert rows[1].original == '{"id": "caf\\xe9"}'
    assert rows[2].error == Reason.INVALID_JSON


def test_non_utf8_in_array_stops_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"id": "caf\xe9"}]')
    with pytest.raises(InputError, match=r"latin1\.json"):
        values(path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(ROWS))
    assert values(path) == ROWS


def test_reading_is_streaming(tmp_path: Path) -> None:
    """The first row arrives long before the file is read: memory does not follow file size."""
    path = tmp_path / "big.json"
    row = {"id": "x", "conversations": [{"from": "human", "value": "y" * 1000}]}
    path.write_bytes(b"[" + b",".join(orjson.dumps(row) for _ in range(20_000)) + b"]")
    reader = RowReader([path])
    first = next(iter(reader))
    assert first.value == row
    assert reader.bytes_read < path.stat().st_size / 5
