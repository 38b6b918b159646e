"""Streaming readers: formats, compression, and bad input that must fail clearly or per row."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import ijson
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from sharegpt_tools.io.jsontext import JsonTextStream
from sharegpt_tools.io.layout import describe
from sharegpt_tools.io.readers import InputError, RawRow, RowReader, holds_rows
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


def test_several_inputs_in_order_with_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The source is the path as given, so that a/part.json and b/part.json stay apart.
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = write_array(Path("a/part.json"))
    second = Path("b/part.json")
    second.write_text(json.dumps({"id": "z"}) + "\n", encoding="utf-8")
    reader = RowReader([first, second])
    sources = [row.source for row in reader]
    assert sources == [
        "a/part.json:0",
        "a/part.json:1",
        "a/part.json:2",
        "a/part.json:3",
        "b/part.json:0",
    ]
    assert [i["rows"] for i in reader.inputs] == [4, 1]
    assert [i["path"] for i in reader.inputs] == ["a/part.json", "b/part.json"]
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


# --- layouts (issue 9: inputs that were misread as one bogus row per line) ------------------------

CONVERSATIONS = [
    {
        "id": "a",
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
    },
    {"id": "b", "conversations": [{"from": "human", "value": "1"}, {"from": "gpt", "value": "2"}]},
]
PRETTY = [json.dumps(row, indent=2) for row in CONVERSATIONS]
LINES = "\n".join(json.dumps(row) for row in CONVERSATIONS) + "\n"


def read(path: Path, text: str | bytes) -> tuple[list[RawRow], dict]:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    reader = RowReader([path])
    rows = list(reader)
    return rows, reader.inputs[0]


@pytest.mark.parametrize(
    ("name", "text", "expected", "layout"),
    [
        ("one.json", PRETTY[0], CONVERSATIONS[:1], "single_object"),
        ("pretty.json", "\n".join(PRETTY), CONVERSATIONS, "concatenated_objects"),
        ("glued.json", "".join(PRETTY), CONVERSATIONS, "concatenated_objects"),
        (
            "oneline.json",
            "".join(map(json.dumps, CONVERSATIONS)),
            CONVERSATIONS,
            "concatenated_objects",
        ),
        # The suffix is a hint: a pretty-printed .jsonl is not one bogus row per line.
        ("pretty.jsonl", "\n".join(PRETTY), CONVERSATIONS, "concatenated_objects"),
        ("array.json", json.dumps(CONVERSATIONS, indent=2), CONVERSATIONS, "json_array"),
        ("lines.json", LINES, CONVERSATIONS, "json_lines"),
        ("single.jsonl", json.dumps(CONVERSATIONS[0]), CONVERSATIONS[:1], "json_lines"),
        (
            "wrapped.json",
            json.dumps({"data": CONVERSATIONS}, indent=2),
            CONVERSATIONS,
            "wrapped_list",
        ),
        ("meta.json", json.dumps({"v": 2, "rows": CONVERSATIONS}), CONVERSATIONS, "wrapped_list"),
    ],
)
def test_layouts(tmp_path: Path, name: str, text: str, expected: list, layout: str) -> None:
    rows, entry = read(tmp_path / name, text)
    assert [row.value for row in rows] == expected
    assert [row.error for row in rows] == [None] * len(expected)
    assert entry["layout"] == layout and entry["rows"] == len(expected)


def test_wrapper_key_is_recorded_and_described(tmp_path: Path) -> None:
    _, entry = read(tmp_path / "sample.json", json.dumps({"data": CONVERSATIONS}))
    assert entry["wrapper_key"] == "data"
    assert describe(entry) == "JSON object wrapping a list under 'data'"
    _, entry = read(tmp_path / "pretty.jsonl", "\n".join(PRETTY))
    assert describe(entry) == (
        "concatenated JSON objects (not one value per line, despite the .jsonl suffix)"
    )


def big_rows(n: int) -> list[dict]:
    turns = [{"from": "human", "value": "q" * 300}, {"from": "gpt", "value": "a" * 300}]
    return [{"id": str(i), "conversations": turns} for i in range(n)]


def test_big_wrapper_is_streamed(tmp_path: Path) -> None:
    """Past the sniffed first megabyte the wrapper is still streamed: memory stays flat."""
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps({"meta": {"v": 1}, "data": big_rows(12_000)}))  # ~8 MB
    reader = RowReader([path])
    rows = iter(reader)
    assert next(rows).value["id"] == "0"
    assert reader.bytes_read < path.stat().st_size / 2
    assert sum(1 for _ in rows) == 11_999
    assert reader.inputs[0]["layout"] == "wrapped_list"


def test_big_pretty_objects_are_streamed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(
        b"\n".join(orjson.dumps(r, option=orjson.OPT_INDENT_2) for r in big_rows(12_000))
    )
    rows, entry = read(path, path.read_bytes())
    assert len(rows) == 12_000 and entry["layout"] == "concatenated_objects"


@pytest.mark.parametrize(
    "value",
    [
        {"train": CONVERSATIONS, "test": CONVERSATIONS},
        # Beyond the sniffed first megabyte: the reader checks the keys as they stream by.
        {"train": big_rows(3_000), "test": CONVERSATIONS},
    ],
)
def test_object_with_several_lists_is_refused(tmp_path: Path, value: dict) -> None:
    path = tmp_path / "splits.json"
    with pytest.raises(InputError, match=r"splits\.json: .*several keys \('train', 'test'\)"):
        read(path, orjson.dumps(value))


def test_big_wrapper_with_a_conversation_key_after_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    with pytest.raises(InputError, match=r"odd\.json: .*under 'data' and also a 'id' key"):
        read(path, orjson.dumps({"data": big_rows(3_000), "id": "x"}))


def test_conversation_with_a_list_of_objects_is_one_row(tmp_path: Path) -> None:
    row = {**CONVERSATIONS[0], "attachments": [{"name": "a.png"}]}
    rows, entry = read(tmp_path / "one.json", json.dumps(row, indent=2))
    assert [r.value for r in rows] == [row] and entry["layout"] == "single_object"


def test_jsonl_with_a_bad_first_line_rejects_only_that_line(tmp_path: Path) -> None:
    for first in ("{not json", "garbage, not json at all", '{"id": "cut", "conversations": ['):
        rows, entry = read(tmp_path / "raw.jsonl", first + "\n" + LINES)
        assert rows[0].error == Reason.INVALID_JSON and rows[0].original == first
        assert [r.value for r in rows[1:]] == CONVERSATIONS
        assert rows[0].source.endswith("raw.jsonl:0") and entry["layout"] == "json_lines"


@pytest.mark.parametrize(
    ("text", "layout"), [("", "empty"), (" \n\n", "empty"), ("[]", "json_array")]
)
def test_empty_inputs_have_no_rows(tmp_path: Path, text: str, layout: str) -> None:
    rows, entry = read(tmp_path / "empty.json", text)
    assert rows == [] and entry["rows"] == 0 and entry["layout"] == layout
    assert not holds_rows([tmp_path / "empty.json"])


# --- Unicode --------------------------------------------------------------------------------------

SURROGATES = (
    b'{"id": "high", "v": "x\\ud800y"}',
    b'{"id": "low", "v": "\\udc00"}',
    b'{"id": "pair", "v": "\\ud83d\\ude00"}',  # a valid pair: an emoji
    b'{"id": "text", "v": "\\\\ud800"}',  # an escaped backslash, then the text "ud800"
    b'{"id": "text-then-low", "v": "\\\\ud83d\\ude00"}',
)


@pytest.mark.parametrize("layout", ["array", "lines"])
def test_lone_surrogates_are_rejected_as_invalid_unicode(tmp_path: Path, layout: str) -> None:
    if layout == "array":
        path, data = tmp_path / "raw.json", b"[" + b",\n".join(SURROGATES) + b"]"
    else:
        path, data = tmp_path / "raw.jsonl", b"\n".join(SURROGATES)
    rows, _ = read(path, data)
    assert [r.error for r in rows] == [Reason.INVALID_UNICODE] * 2 + [None, None] + [
        Reason.INVALID_UNICODE
    ]
    assert "\\ud800" in rows[0].detail and "\\udc00" in rows[1].detail
    # The original keeps the escape as it was: nothing is lost, nothing becomes '?'.
    assert json.loads(rows[0].original)["v"] == "x\ud800y"
    assert json.loads(rows[1].original)["v"] == "\udc00"
    assert rows[2].value["v"] == "😀" and rows[3].value["v"] == "\\ud800"


def test_lone_surrogates_found_across_read_boundaries() -> None:
    """Escapes, pairs and backslash runs cut at every possible place between two reads."""
    items = [
        b'"a\\ud83d\\ude00b"',  # a pair: kept
        b'"\\ud800"',  # lone high
        b'"\\\\\\udc00"',  # an escaped backslash, then a lone low
        b'"\\\\\\\\ud800"',  # two escaped backslashes, then text
        b'"\\ud83d\\ud83d\\ude00"',  # lone high, then a pair
        b'"\\\\ud83d\\ude00"',  # an escaped backslash, text, then a lone low
    ]
    text = b"[" + b", ".join(items) + b"]"
    for size in range(1, 14):
        stream = JsonTextStream(Trickle(text, size), Path("t.json"))
        values = list(ijson.items(stream, "item"))
        assert values[0] == "a😀b" and values[3] == "\\\\ud800", size
        lone = [stream.unicode_problem(v) is not None for v in values]
        assert lone == [False, True, True, False, True, True], size


class Trickle(io.RawIOBase):
    """Hands the data on `size` bytes at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(self._size, len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"])
def test_non_utf8_in_a_json_array_names_the_byte(tmp_path: Path, prefix: bytes) -> None:
    filler = b",".join(orjson.dumps(r) for r in big_rows(2_000))  # past the head and a chunk
    data = prefix + b"[" + filler + b',\n{"id": "caf\xe9"}]'
    offset = data.index(b"\xe9")
    path = tmp_path / "latin1.json"
    with pytest.raises(InputError) as error:
        read(path, data)
    message = str(error.value)
    assert message.startswith(f"{path}: byte {offset} (line 2) is not UTF-8 (0xe9); re-save")
    assert "\n" not in message and "b'" not in message


def test_non_utf8_in_a_compressed_array_counts_decompressed_bytes(tmp_path: Path) -> None:
    data = b'[{"id": "ok"}, {"id": "\xff"}]'
    path = tmp_path / "raw.json.gz"
    offset = data.index(b"\xff")
    where = rf"byte {offset} of the decompressed text \(line 1\) is not UTF-8 \(0xff\)"
    with pytest.raises(InputError, match=where):
        read(path, gzip.compress(data))


# --- compression ----------------------------------------------------------------------------------

COMPRESSED = orjson.dumps(big_rows(2_000))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("cut.json.zst", zstandard.ZstdCompressor().compress(COMPRESSED)[:-100], "is truncated"),
        ("cut.json.zst", zstandard.ZstdCompressor().compress(COMPRESSED)[:9], "is truncated"),
        ("junk.json.zst", b"this is not zstd at all", "is not a valid zstd stream"),
        ("cut.json.gz", gzip.compress(COMPRESSED)[:-100], "is truncated"),
        ("junk.json.gz", b"this is not gzip at all", "is not a valid gzip stream"),
    ],
)
def test_damaged_compressed_inputs_fail_in_one_line(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = tmp_path / name
    with pytest.raises(InputError) as error:
        read(path, data)
    assert str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)


def test_zstd_checksum_mismatch_is_reported(tmp_path: Path) -> None:
    data = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(COMPRESSED))
    data[-2] ^= 0xFF  # inside the checksum
    with pytest.raises(InputError, match=r"is not a valid zstd stream \(.*checksum"):
        read(tmp_path / "bad.json.zst", bytes(data))


def test_several_zstd_frames_are_read(tmp_path: Path) -> None:
    lines = LINES.encode()
    frames = zstandard.ZstdCompressor().compress(lines) * 2
    rows, _ = read(tmp_path / "two.jsonl.zst", frames)
    assert [r.value for r in rows] == CONVERSATIONS * 2
