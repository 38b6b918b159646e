"""Stream rows out of raw dumps: JSON arrays, JSONL and Parquet, optionally .gz / .zst.

Memory never grows with the file: JSON arrays are parsed incrementally (ijson's C backend),
JSONL line by line, Parquet one record batch at a time. Problems that concern one row (a line that
is not JSON, bytes that are not UTF-8) become that row's reject; problems that make the rest of the
file unreadable (a truncated array) stop the run with an `InputError` naming file and position.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import ijson
import orjson

from sharegpt_tools.records import Reason

COMPRESSIONS = (".gz", ".zst", ".zstd")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


class InputError(Exception):
    """A problem with an input file that the user must fix; printed as one line, no traceback."""


@dataclass(slots=True)
class RawRow:
    """One row of an input file, parsed if it could be."""

    source: str  # "file.json:17" (0-based row number within the file)
    value: object = None
    # Set when the row could not even be parsed; `original` then holds its text.
    error: Reason | None = None
    detail: str = ""
    original: str | None = None


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


def logical_suffix(path: Path) -> str:
    """The format suffix once compression is stripped: data.json.zst -> .json."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_decompressed(counter: CountingReader, path: Path) -> BinaryIO:
    """Wrap the counted on-disk stream with the decompressor its suffix names."""
    last = path.suffix.lower()
    if last == ".gz":
        return gzip.GzipFile(fileobj=counter, mode="rb")  # type: ignore[return-value]
    if last in (".zst", ".zstd"):
        import zstandard

        # Buffered so that the format sniffing below can peek at the first bytes.
        reader = zstandard.ZstdDecompressor().stream_reader(counter, read_across_frames=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)  # type: ignore[arg-type]
    return io.BufferedReader(counter, buffer_size=1 << 20)  # type: ignore[return-value]


class RowReader:
    """Iterates the rows of several input files in order; `bytes_read` feeds the progress bar."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.total_bytes = sum(p.stat().st_size for p in paths)
        self._done_bytes = 0
        self._counter: CountingReader | None = None
        # One entry per input once it has been read: path, size, sha256, rows.
        self.inputs: list[dict] = []

    @property
    def bytes_read(self) -> int:
        current = self._counter.bytes_read if self._counter else 0
        return self._done_bytes + current

    def __iter__(self) -> Iterator[RawRow]:
        for path in self.paths:
            rows = 0
            for row in self._read_file(path):
                rows += 1
                yield row
            self.inputs[-1]["rows"] = rows

    def _read_file(self, path: Path) -> Iterator[RawRow]:
        suffix = logical_suffix(path)
        if suffix == ".parquet":
            yield from read_parquet_rows(path)
            self._done_bytes += path.stat().st_size
            self._record_input(path, file_sha256(path))
            return
        if suffix not in JSON_SUFFIXES:
            raise InputError(
                f"{path}: unknown input format {suffix or '(no suffix)'!r}; "
                "use .json (array or JSON lines), .jsonl, .parquet, optionally .gz/.zst"
            )
        with path.open("rb") as raw:
            self._counter = CountingReader(raw)
            stream = open_decompressed(self._counter, path)
            try:
                first = peek_first_byte(stream)
                if first == b"[":
                    yield from read_json_array_rows(stream, path, self._counter)
                elif first in (b"{", b""):
                    yield from read_jsonl_rows(stream, path)
                else:
                    raise InputError(
                        f"{path}: not JSON: starts with {first!r}; expected a JSON array '[...]' "
                        "or JSON lines '{...}' (is it the right file, or compressed without a "
                        ".gz/.zst suffix?)"
                    )
                self._counter.drain()
            except (OSError, EOFError) as exc:  # corrupt gzip/zstd frames and the like
                raise InputError(f"{path}: cannot read: {exc}") from exc
            finally:
                self._done_bytes += self._counter.bytes_read
            self._record_input(path, self._counter.sha256.hexdigest())
            self._counter = None

    def _record_input(self, path: Path, sha256: str) -> None:
        self.inputs.append({"path": str(path), "bytes": path.stat().st_size, "sha256": sha256})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def peek_first_byte(stream: BinaryIO) -> bytes:
    """First non-whitespace byte, leaving the stream positioned at the start of the data."""
    head = stream.peek(4096)[:4096]  # type: ignore[attr-defined]
    if head.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark written by some Windows tools
        stream.read(3)
        head = head[3:]
    stripped = head.lstrip()
    return stripped[:1]


def read_json_array_rows(stream: BinaryIO, path: Path, counter: CountingReader) -> Iterator[RawRow]:
    """Items of a top-level JSON array, one at a time."""
    index = 0
    try:
        for value in ijson.items(stream, "item", use_float=True):
            yield RawRow(source=f"{path.name}:{index}", value=value)
            index += 1
    except ijson.JSONError as exc:
        raise InputError(
            f"{path}: invalid or truncated JSON after row {index} (near byte "
            f"{counter.bytes_read:,} of the file): {str(exc).strip()}; nothing was written — "
            "re-export the file, or convert it to JSON lines so that bad rows are rejected one "
            "by one"
        ) from exc


def read_jsonl_rows(stream: BinaryIO, path: Path) -> Iterator[RawRow]:
    """JSON lines: every line is one row; a bad line is a reject, not a stop."""
    for index, line in enumerate(stream):
        if not line.strip():
            continue
        source = f"{path.name}:{index}"
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
            yield RawRow(
                source=source,
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
            yield RawRow(source=f"{path.name}:{index}", value=value)
            index += 1
