"""Stream rows out of raw dumps: JSON arrays, JSON lines, JSON objects one after another, an
object wrapping the row list, and Parquet; optionally .gz / .zst.

Memory never grows with the file: the layout is told from the first megabyte (`layout.py`), JSON
is then parsed incrementally (ijson's C backend), JSON lines line by line, Parquet one record
batch at a time. Problems that concern one row (a line that is not JSON, bytes that are not UTF-8
in a line, a lone surrogate escape) become that row's reject; problems that make the rest of the
file unreadable (a truncated array, a corrupt zstd stream) stop the run with an `InputError`
naming the file and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import ijson
import orjson
import zstandard

from sharegpt_tools.io.errors import InputError
from sharegpt_tools.io.jsontext import JsonTextStream, lone_surrogates_in_line
from sharegpt_tools.io.layout import (
    HEAD_BYTES,
    ROW_KEYS,
    Kind,
    Layout,
    detect_layout,
    jq_path,
    several_lists,
)
from sharegpt_tools.records import Reason

__all__ = ["InputError", "RawRow", "RowReader", "holds_rows"]

COMPRESSIONS = (".gz", ".zst", ".zstd")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
UTF8_BOM = b"\xef\xbb\xbf"  # written by some Windows tools
CHUNK = 1 << 16
# What a damaged compressed stream raises while it is read (by us, by ijson, or line by line).
STREAM_ERRORS = (OSError, EOFError, zlib.error, zstandard.ZstdError)
CORRUPT_STREAM_ERRORS = (gzip.BadGzipFile, zlib.error, zstandard.ZstdError)


@dataclass(slots=True)
class RawRow:
    """One row of an input file, parsed if it could be."""

    source: str  # "dir/file.json:17": the path as given, and the 0-based row (or line) number
    value: object = None
    # Set when the row could not even be parsed; `original` then holds its text.
    error: Reason | None = None
    detail: str = ""
    # The row's text: of a row that could not be parsed; of a parsed one when it is known
    # already (the JSON that `clean` sends to its workers), so that it is not dumped again.
    original: str | bytes | None = None


class CountingReader(io.RawIOBase):
    """Counts and hashes the bytes read from the file on disk.

    The count drives the progress bar; the SHA-256 goes into the manifest without a second read.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        if n:
            self.bytes_read += n
            self.sha256.update(buffer[:n])
        return n

    def drain(self) -> None:
        """Read what the parser left (trailing whitespace), so the hash covers the whole file."""
        while self.read(1 << 20):
            pass

    def close(self) -> None:
        self._raw.close()
        super().close()


class ZstdReader(io.RawIOBase):
    """Decompresses zstd frames one after another, and notices a stream cut inside a frame.

    zstandard's `stream_reader` returns end-of-file quietly when the input stops mid-frame, so
    a truncated download would read as a shorter (or empty) file.
    """

    def __init__(self, source: BinaryIO, path: Path) -> None:
        self._source = source
        self._path = path
        self._context = zstandard.ZstdDecompressor()
        self._frame = self._context.decompressobj()
        self._in_frame = False  # input went into a frame that has not ended yet
        self._out = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._out and not self._eof:
            self._fill()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fill(self) -> None:
        data = self._source.read(CHUNK)
        if not data:
            if self._in_frame:
                raise InputError(
                    f"{self._path}: is truncated: the zstd stream ends in the middle of a frame "
                    "(an interrupted download or copy?); fetch or compress it again; nothing was "
                    "written"
                )
            self._eof = True
            return
        pieces = []
        while data:
            pieces.append(self._frame.decompress(data))
            self._in_frame = not self._frame.eof
            data = b""
            if self._frame.eof:  # the rest belongs to the next frame
                data = self._frame.unused_data
                self._frame = self._context.decompressobj()
        self._out = memoryview(b"".join(pieces))


def logical_suffix(path: Path) -> str:
    """The format suffix once compression is stripped: data.json.zst -> .json."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def compression_of(path: Path) -> str | None:
    last = path.suffix.lower()
    if last == ".gz":
        return "gzip"
    return "zstd" if last in (".zst", ".zstd") else None


def open_decompressed(counter: CountingReader, path: Path) -> BinaryIO:
    """Wrap the counted on-disk stream with the decompressor its suffix names."""
    compression = compression_of(path)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=counter, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        return io.BufferedReader(ZstdReader(counter, path), buffer_size=1 << 20)  # type: ignore[arg-type,return-value]
    return io.BufferedReader(counter, buffer_size=1 << 20)  # type: ignore[return-value]


def unreadable(path: Path, exc: BaseException) -> InputError:
    """One line for a damaged file, saying which stream is broken and how."""
    compression = compression_of(path)
    if compression and isinstance(exc, EOFError):
        return InputError(
            f"{path}: is truncated: the {compression} stream ends before its end marker (an "
            "interrupted download or copy?); fetch or compress it again; nothing was written"
        )
    if compression and isinstance(exc, CORRUPT_STREAM_ERRORS):
        detail = str(exc).strip() or type(exc).__name__
        return InputError(
            f"{path}: is not a valid {compression} stream ({detail}); the file is damaged, or not "
            f"{compression}-compressed despite its suffix; nothing was written"
        )
    return InputError(f"{path}: cannot read: {exc}")


class Prepended(io.RawIOBase):
    """`head` (already read to sniff the layout), then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(buffer)  # type: ignore[attr-defined]


def read_head(stream: BinaryIO) -> tuple[bytes, bool, int]:
    """(the first megabyte without a byte order mark, whether that is all, the BOM's length)."""
    head = bytearray()
    complete = False
    while len(head) < HEAD_BYTES:
        chunk = stream.read(HEAD_BYTES - len(head))
        if not chunk:
            complete = True
            break
        head += chunk
    bom = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    return bytes(head[bom:]), complete, bom


class RowReader:
    """Iterates the rows of several input files in order; `bytes_read` feeds the progress bar."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.total_bytes = sum(p.stat().st_size for p in paths)
        self._done_bytes = 0
        self._counter: CountingReader | None = None
        # One entry per input once it has been read: path, size, sha256, rows, layout (a `Kind`
        # code) and, for an object wrapping the rows, wrapper_key.
        self.inputs: list[dict] = []

    @property
    def bytes_read(self) -> int:
        current = self._counter.bytes_read if self._counter else 0
        return self._done_bytes + current

    def __iter__(self) -> Iterator[RawRow]:
        for path in self.paths:
            yield from self._read_file(path)

    def _read_file(self, path: Path) -> Iterator[RawRow]:
        suffix = logical_suffix(path)
        if suffix == ".parquet":
            rows = yield from counted(read_parquet_rows(path))
            self._done_bytes += path.stat().st_size
            self._record_input(path, file_sha256(path), Layout(Kind.PARQUET), rows)
            return
        if suffix not in JSON_SUFFIXES:
            raise InputError(
                f"{path}: unknown input format {suffix or '(no suffix)'!r}; use .json (array, "
                "JSON lines or objects), .jsonl, .parquet, optionally .gz/.zst"
            )
        with path.open("rb") as raw:
            self._counter = CountingReader(raw)
            try:
                stream = open_decompressed(self._counter, path)
                head, complete, bom = read_head(stream)
                layout = detect_layout(head, complete, path)
                rest = Prepended(head, stream)
                rows = yield from counted(self._rows(rest, path, layout, bom))
                self._counter.drain()
            except STREAM_ERRORS as exc:  # corrupt gzip/zstd frames and the like
                raise unreadable(path, exc) from exc
            finally:
                self._done_bytes += self._counter.bytes_read
            self._record_input(path, self._counter.sha256.hexdigest(), layout, rows)
            self._counter = None

    def _rows(self, rest: Prepended, path: Path, layout: Layout, bom: int) -> Iterator[RawRow]:
        if layout.kind == Kind.EMPTY:
            return iter(())
        if layout.kind == Kind.LINES:
            return read_jsonl_rows(io.BufferedReader(rest, buffer_size=1 << 20), path)
        compressed = compression_of(path) is not None
        text = JsonTextStream(rest, path, offset=bom, compressed=compressed)  # type: ignore[arg-type]
        return read_json_rows(text, path, layout)

    def _record_input(self, path: Path, sha256: str, layout: Layout, rows: int) -> None:
        entry = {
            "path": str(path),
            "bytes": path.stat().st_size,
            "sha256": sha256,
            "rows": rows,
            "layout": str(layout.code(rows)),
        }
        if layout.kind == Kind.WRAPPED:
            entry["wrapper_key"] = layout.key
        self.inputs.append(entry)


def counted(rows: Iterable[RawRow]) -> Iterator[RawRow]:
    """Yields the rows; its return value (`yield from`) is how many there were."""
    n = 0
    for row in rows:
        n += 1
        yield row
    return n


def expand_folders(paths: list[Path]) -> list[Path]:
    """Each folder replaced by the dumps in it (JSON, JSON lines, Parquet, compressed or not), in
    name order: the shards of a Hugging Face dataset. Other files in a folder are left alone."""
    expanded: list[Path] = []
    for path in paths:
        if not path.is_dir():
            expanded.append(path)
            continue
        shards = sorted(p for p in path.rglob("*") if p.is_file() and is_dump(p))
        if not shards:
            raise InputError(
                f"{path} is a folder without dumps (*.json, *.jsonl, *.ndjson, *.parquet, "
                "optionally .gz/.zst): name the files instead"
            )
        expanded.extend(shards)
    return expanded


def is_dump(path: Path) -> bool:
    return logical_suffix(path) in (*JSON_SUFFIXES, ".parquet") and not path.name.startswith(".")


def holds_rows(paths: list[Path]) -> bool:
    """Whether the inputs hold at least one row (a reject counts): reads only up to it."""
    rows = iter(RowReader(paths))
    try:
        return next(rows, None) is not None
    finally:
        rows.close()  # type: ignore[attr-defined]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- JSON: array, objects one after another, wrapped list -----------------------------------------


def json_values(text: JsonTextStream, layout: Layout, path: Path) -> Iterator[object]:
    if layout.kind == Kind.ARRAY:
        return ijson.items(text, "item", use_float=True)
    if layout.kind == Kind.OBJECTS:
        return ijson.items(text, "", use_float=True, multiple_values=True)
    assert layout.key is not None, "a wrapped list needs its key"
    events = WrapperWatch(layout.key, path).watch(ijson.parse(text, use_float=True))
    # ijson joins prefixes with '.', except below the top level: the items of key "" are "item".
    return ijson.items(events, f"{layout.key}.item" if layout.key else "item")


def read_json_rows(text: JsonTextStream, path: Path, layout: Layout) -> Iterator[RawRow]:
    """The rows of a JSON (not JSON lines) dump, one at a time."""
    index = 0
    try:
        for value in json_values(text, layout, path):
            source = f"{path}:{index}"
            problem = text.unicode_problem(value)
            if problem is None:
                yield RawRow(source=source, value=value)
            else:
                detail, original = problem
                yield RawRow(source, error=Reason.INVALID_UNICODE, detail=detail, original=original)
            index += 1
    except ijson.JSONError as exc:
        where = text.where(text.bytes_checked)
        raise InputError(
            f"{path}: invalid or truncated JSON after row {index} ({parser_message(exc)}, before "
            f"{where}); nothing was written — re-export the file, or convert it to JSON lines so "
            "that bad rows are rejected one by one"
        ) from exc


def parser_message(exc: Exception) -> str:
    """yajl's message on one line: what went wrong and the text around it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    message = lines[0].rstrip(".")
    return (
        f"{message} near {lines[1]!r}"
        if len(lines) > 1 and "(right here)" not in lines[1]
        else message
    )


class WrapperWatch:
    """Passes ijson events on, checking the wrapper's other keys as they stream by.

    Sniffing sees only the first megabyte; a second list of objects, or a conversation's key,
    further on would make "the rows are under KEY" a guess.
    """

    def __init__(self, key: str, path: Path) -> None:
        self.key = key
        self.path = path

    def watch(self, events: Iterable[tuple[str, str, object]]) -> Iterator[tuple[str, str, object]]:
        depth = 0
        key: object = None
        other_list: object = None  # a key besides the wrapper's whose list just started
        for event in events:
            _prefix, name, value = event
            if depth == 1 and name == "map_key":
                key = value
                if value in ROW_KEYS:
                    raise self._looks_like_a_row(str(value))
            elif depth == 1 and name == "start_array" and key != self.key:
                other_list = key
            elif depth == 2 and other_list is not None:
                if name == "start_map":
                    raise several_lists(self.path, [self.key, str(other_list)])
                other_list = None
            if name in ("start_map", "start_array"):
                depth += 1
            elif name in ("end_map", "end_array"):
                depth -= 1
            yield event

    def _looks_like_a_row(self, name: str) -> InputError:
        return InputError(
            f"{self.path}: a JSON object with a list of objects under {self.key!r} and also a "
            f"{name!r} key, as a conversation has; cannot tell whether it is one conversation or "
            f"a list of them — extract the list first, e.g. jq {jq_path(self.key)} {self.path} > "
            "rows.json"
        )


# --- JSON lines and Parquet -----------------------------------------------------------------------


def read_jsonl_rows(stream: BinaryIO, path: Path) -> Iterator[RawRow]:
    """JSON lines: every line is one row; a bad line is a reject, not a stop."""
    for index, line in enumerate(stream):
        if not line.strip():
            continue
        source = f"{path}:{index}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawRow(
                source=source,
                error=Reason.INVALID_UTF8,
                detail=f"byte {exc.start} of the line is not UTF-8; re-encode the file as UTF-8",
                original=line.decode("utf-8", errors="backslashreplace").rstrip("\n"),
            )
            continue
        try:
            yield RawRow(source=source, value=orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            yield bad_line(source, line, text, exc)


def bad_line(source: str, line: bytes, text: str, exc: Exception) -> RawRow:
    """A line orjson refused: a lone surrogate escape (which it rejects too) or not JSON."""
    detail = lone_surrogates_in_line(line)
    if detail:
        return RawRow(
            source, error=Reason.INVALID_UNICODE, detail=detail, original=text.rstrip("\n")
        )
    return RawRow(
        source,
        error=Reason.INVALID_JSON,
        detail=f"line is not valid JSON: {exc}",
        original=text.rstrip("\n"),
    )


def read_parquet_rows(path: Path) -> Iterator[RawRow]:
    """Rows of a Parquet file (e.g. a Hugging Face ShareGPT export), one batch at a time."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    index = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for value in batch.to_pylist():
            yield RawRow(source=f"{path}:{index}", value=value)
            index += 1
