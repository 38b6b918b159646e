"""JSON text checks that the streaming parser cannot be trusted with: UTF-8 and lone surrogates.

ijson's C backend reports a non-UTF-8 byte with a Python bytes repr and no usable position, turns
a lone high surrogate escape (`\\ud800`) silently into `?`, and dies with a UnicodeDecodeError on a
lone low one (`\\udc00`). `JsonTextStream` sits between the file and the parser: it checks UTF-8
itself (so the error names the exact byte offset), and rewrites every lone surrogate escape into a
marker made with a per-file random nonce. The reader then finds the marker in the parsed row and
rejects that row as `invalid_unicode`, restoring the escape in the row's `original` text.
"""

from __future__ import annotations

import codecs
import json
import re
import secrets
from pathlib import Path
from typing import BinaryIO

import orjson

from sharegpt_tools.io.errors import InputError

# A high surrogate escape not followed by a low one, or a low one not preceded by a high one.
# Valid pairs (every emoji in an `ensure_ascii` dump) are skipped inside the regex engine; the
# pattern starts with a literal `\u`, so the scan runs at memchr speed.
LONE_SURROGATE = re.compile(
    rb"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD])[c-fC-F][0-9a-fA-F]{2})"
)
# `\\ud83d\ude00`: a low escape after text that only looks like a high one (the backslash before
# it is escaped). LONE_SURROGATE takes it for a pair; it is rare enough to be checked on its own.
TEXT_THEN_LOW = re.compile(rb"\\\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
SURROGATE_ESCAPE = re.compile(rb"\\u[dD]")  # either half: one cheap scan rules both patterns out
ESCAPE_LEN = 6  # len(b"\\ud800")
HOLD_BACK = 2 * ESCAPE_LEN  # a high+low pair
CHUNK = 1 << 16
BACKSLASH = 0x5C


def is_escape(data: bytes, position: int) -> bool:
    """Whether the backslash at `position` starts an escape: an even backslash run before it."""
    i = position - 1
    while i >= 0 and data[i] == BACKSLASH:
        i -= 1
    return (position - 1 - i) % 2 == 0


def lone_surrogates(data: bytes, end: int | None = None) -> list[int]:
    """Positions of the lone surrogate escapes in `data[:end]`.

    `end` must not split an escape, a pair or a backslash run (see `safe_cut`).
    """
    end = len(data) if end is None else end
    if SURROGATE_ESCAPE.search(data, 0, end) is None:
        return []
    found = [m.start() for m in LONE_SURROGATE.finditer(data, 0, end) if is_escape(data, m.start())]
    for match in TEXT_THEN_LOW.finditer(data, 0, end):
        if not is_escape(data, match.start() + 1) and is_escape(data, match.end() - ESCAPE_LEN):
            found.append(match.end() - ESCAPE_LEN)
    return sorted(found)


def safe_cut(data: bytes, limit: int) -> int:
    """A position at or before `limit` that splits no escape, surrogate pair or backslash run.

    Only an escape can hold a backslash, so where the last 11 bytes hold none, `limit` is safe;
    else the cut moves back to the start of that backslash run, and past a high surrogate escape
    that would otherwise be parted from its low half.
    """
    first = data.find(b"\\", max(0, limit - HOLD_BACK + 1), limit)
    cut = limit if first < 0 else first
    while cut > 0:
        if data[cut - 1] == BACKSLASH:
            cut -= 1
        elif cut >= ESCAPE_LEN and HIGH_SURROGATE.fullmatch(data, cut - ESCAPE_LEN, cut):
            cut -= ESCAPE_LEN
        else:
            break
    return cut


def lone_surrogates_in_line(line: bytes) -> str | None:
    """The reject detail for a JSON line holding lone surrogate escapes, else None."""
    found = lone_surrogates(line)
    if not found:
        return None
    return lone_surrogate_detail(line[found[0] : found[0] + ESCAPE_LEN].decode(), len(found) - 1)


def lone_surrogate_detail(first: str, more: int = 0) -> str:
    also = f" (and {more} more)" if more else ""
    return (
        f"a string holds {first}{also}: half of a UTF-16 surrogate pair without its other half, "
        "which is not valid Unicode (usually an emoji cut in two by the exporter); fix the "
        "export, or drop the row"
    )


def dump_json(value: object) -> str:
    """A row as JSON text; big integers that orjson refuses go through json."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return json.dumps(value, ensure_ascii=False, default=str)


class JsonTextStream:
    """A file-like `read()` for ijson: UTF-8 checked, lone surrogate escapes turned into markers.

    `offset` is where the text starts in the file (after a byte order mark), so that error
    positions count from the file's first byte. Memory is one chunk plus a dozen held-back bytes.
    """

    def __init__(self, source: BinaryIO, path: Path, offset: int = 0, compressed: bool = False):
        self._source = source
        self._path = path
        self._compressed = compressed
        self._offset = offset  # file offset of the first byte in `_undecoded`
        self._lines = 0  # newlines before `_offset`
        self._undecoded = b""  # the start of a UTF-8 sequence cut by a chunk boundary
        self._held = b""  # held back for the surrogate scan (see `safe_cut`)
        self._out = b""
        self._eof = False
        self._nonce = secrets.token_hex(8)
        self._marker = re.compile(f"lone-surrogate-{self._nonce}-([0-9a-fA-F]{{4}})-")
        self.markers_written = 0
        self.markers_found = 0

    @property
    def bytes_checked(self) -> int:
        """File offset up to which the text has been checked and handed on (roughly)."""
        return self._offset

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson asks once, to learn that the stream gives bytes
        while not self._out and not self._eof:
            self._fill()
        if size < 0 or size >= len(self._out):
            out, self._out = self._out, b""
        else:
            out, self._out = self._out[:size], self._out[size:]
        return out

    def _fill(self) -> None:
        chunk = self._source.read(CHUNK)
        final = not chunk
        self._check_utf8(chunk, final)
        data = self._held + chunk
        end = len(data) if final else safe_cut(data, len(data))
        self._out = self._with_markers(data, lone_surrogates(data, end), end)
        self._held = data[end:]
        self._eof = final

    def _with_markers(self, data: bytes, lone: list[int], end: int) -> bytes:
        if not lone:
            return data[:end]
        pieces: list[bytes] = []
        start = 0
        for position in lone:
            escape = data[position + 2 : position + ESCAPE_LEN].decode("ascii")
            pieces += [data[start:position], f"lone-surrogate-{self._nonce}-{escape}-".encode()]
            start = position + ESCAPE_LEN
        pieces.append(data[start:end])
        self.markers_written += len(lone)
        return b"".join(pieces)

    def _check_utf8(self, chunk: bytes, final: bool) -> None:
        data = self._undecoded + chunk
        try:
            _, decoded = codecs.utf_8_decode(data, "strict", final)
        except UnicodeDecodeError as exc:
            raise self._not_utf8(data, exc.start) from None
        self._lines += data.count(b"\n", 0, decoded)
        self._offset += decoded
        self._undecoded = data[decoded:]

    def where(self, offset: int) -> str:
        """`byte N`, saying when N counts the decompressed text rather than the file."""
        return f"byte {offset}" + (" of the decompressed text" if self._compressed else "")

    def _not_utf8(self, data: bytes, start: int) -> InputError:
        line = self._lines + data.count(b"\n", 0, start) + 1
        where = self.where(self._offset + start)
        return InputError(
            f"{self._path}: {where} (line {line}) is not UTF-8 (0x{data[start]:02x}); re-save "
            "the file as UTF-8 (e.g. iconv -f cp1252 -t utf-8), or convert it to JSON lines so "
            "that such rows are rejected one by one; nothing was written"
        )

    def unicode_problem(self, value: object) -> tuple[str, str] | None:
        """(detail, original JSON text) when the parsed row holds a lone surrogate, else None.

        Rows are only dumped while markers are outstanding, i.e. rarely.
        """
        if self.markers_found >= self.markers_written:
            return None
        text = dump_json(value)
        escapes = self._marker.findall(text)
        if not escapes:
            return None
        self.markers_found += len(escapes)
        original = self._marker.sub(lambda m: "\\u" + m.group(1), text)
        return lone_surrogate_detail("\\u" + escapes[0], len(escapes) - 1), original


def sanitized(head: bytes) -> bytes:
    """The start of a file made safe for layout sniffing: valid UTF-8, no lone surrogates."""
    text = head.decode("utf-8", errors="replace").encode("utf-8")
    lone = lone_surrogates(text)
    if not lone:
        return text
    pieces: list[bytes] = []
    start = 0
    for position in lone:
        pieces += [text[start:position], b"?"]
        start = position + ESCAPE_LEN
    pieces.append(text[start:])
    return b"".join(pieces)
