"""Which layout a JSON dump has, told from its first megabyte (the rest is streamed later).

Layouts: a JSON array; JSON lines (one complete value per line); JSON objects one after another
(pretty-printed or not, including a single conversation object); an object wrapping the row list
under one key (`{"data": [...]}`). The suffix is a hint, not the decision: a `.jsonl` file whose
lines are not one value each but that parses as objects one after another is read that way, and
the summary says so. A bad first line does not make JSON lines unreadable: it becomes a reject.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import ijson

from sharegpt_tools.io.errors import InputError
from sharegpt_tools.io.jsontext import sanitized

HEAD_BYTES = 1 << 20
LINE_SUFFIXES = (".jsonl", ".ndjson")
# An object with one of these keys is a conversation, never a wrapper of conversations.
ROW_KEYS = frozenset({"id", "conversations", "messages"})
JSON_WHITESPACE = b" \t\r\n"
LINES_SAMPLE = 200  # lines looked at to decide whether a file with a bad first line is JSON lines
SCAN_PIECE = 1 << 16
NOT_JSON = object()


class Kind(StrEnum):
    """Stable layout codes, as written to the manifest (`inputs[i]["layout"]`)."""

    ARRAY = "json_array"
    LINES = "json_lines"
    OBJECTS = "json_objects"  # while reading; recorded as one of the next two
    SINGLE = "single_object"
    CONCATENATED = "concatenated_objects"
    WRAPPED = "wrapped_list"
    EMPTY = "empty"
    PARQUET = "parquet"


@dataclass(frozen=True, slots=True)
class Layout:
    kind: Kind
    key: str | None = None  # the wrapper key, for Kind.WRAPPED

    def code(self, rows: int) -> Kind:
        if self.kind == Kind.OBJECTS:
            return Kind.SINGLE if rows == 1 else Kind.CONCATENATED
        return self.kind


DESCRIPTIONS = {
    Kind.ARRAY: "JSON array",
    Kind.LINES: "JSON lines",
    Kind.SINGLE: "one JSON object",
    Kind.CONCATENATED: "concatenated JSON objects",
    Kind.EMPTY: "empty",
    Kind.PARQUET: "Parquet",
}


def describe(entry: dict) -> str:
    """What a manifest input entry says about the layout, in words for the summary."""
    kind = Kind(entry["layout"])
    if kind == Kind.WRAPPED:
        return f"JSON object wrapping a list under {entry['wrapper_key']!r}"
    text = DESCRIPTIONS[kind]
    suffix = lines_suffix(Path(entry["path"]))
    if suffix and kind in (Kind.SINGLE, Kind.CONCATENATED):
        text += f" (not one value per line, despite the {suffix} suffix)"
    elif suffix and kind == Kind.ARRAY:
        text += f" (despite the {suffix} suffix)"
    return text


def lines_suffix(path: Path) -> str | None:
    """`.jsonl` or `.ndjson` when the name says JSON lines (compression suffix aside)."""
    suffixes = [s.lower() for s in path.suffixes]
    return next((s for s in suffixes[-2:] if s in LINE_SUFFIXES), None)


def has_lines_suffix(path: Path) -> bool:
    return lines_suffix(path) is not None


# --- sniffing -------------------------------------------------------------------------------------


def detect_layout(head: bytes, complete: bool, path: Path) -> Layout:
    """The layout of a JSON dump from its first bytes; `complete` when `head` is the whole file.

    Raises `InputError` when the file is not JSON at all, or is an object whose rows cannot be
    told apart from its other lists.
    """
    body = sanitized(head).lstrip(JSON_WHITESPACE)
    if not body:
        return Layout(Kind.EMPTY) if complete else Layout(Kind.LINES)
    pieces = body.split(b"\n")
    whole = pieces if complete else pieces[:-1]  # lines known to end inside `head`
    later = whole[1:]
    named_lines = has_lines_suffix(path)
    if whole and is_json_value(pieces[0]):
        return after_one_line_value(pieces[0], body, complete, path)
    start = body[:1]
    if start not in b"[{":
        if looks_like_lines(later):
            return Layout(Kind.LINES)
        raise not_json(path, start)
    scan = HeadScan.of(body, len(pieces[0]) + 1, complete)
    streamed = Layout(Kind.ARRAY if start == b"[" else Kind.OBJECTS)
    if scan.first_line_error:
        # Not even the start of a multi-line value: a bad line of JSON lines (it is rejected).
        return Layout(Kind.LINES) if named_lines or looks_like_lines(later) else streamed
    if scan.later_error:
        # A truncated first line of JSON lines, or broken JSON; the reader names the position.
        return Layout(Kind.LINES) if looks_like_lines(later) else streamed
    if start == b"[":
        if scan.values_started > 1:
            raise InputError(
                f"{path}: holds several JSON arrays one after another; join them into one "
                f"(e.g. jq -s add {path} > joined.json) or convert them to JSON lines"
            )
        return streamed
    if scan.values_started > 1:
        return streamed
    if scan.first_done and complete:
        value = loads(body)
        return object_layout(key_infos(value) if isinstance(value, dict) else [], path, True)
    layout = object_layout(scan.keys, path, False)
    if layout.kind == Kind.OBJECTS and named_lines and not whole:
        return Layout(Kind.LINES)  # one long first line: nothing contradicts the suffix
    return layout


def after_one_line_value(line: bytes, body: bytes, complete: bool, path: Path) -> Layout:
    """The first line is a complete value: JSON lines, unless it is all the file holds."""
    if not complete or body[len(line) :].strip(JSON_WHITESPACE):
        return Layout(Kind.LINES)
    value = loads(line)
    if isinstance(value, list):
        return Layout(Kind.ARRAY)
    if isinstance(value, dict):
        layout = object_layout(key_infos(value), path, True)
        if layout.kind == Kind.OBJECTS and has_lines_suffix(path):
            return Layout(Kind.LINES)
        return layout
    return Layout(Kind.LINES)


def loads(text: bytes) -> object:
    """A value from the (sanitized, at most a megabyte) head; NOT_JSON when it is not one.

    RecursionError too: a line of ten thousand '[' is not worth a traceback.
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


def is_json_value(line: bytes) -> bool:
    return loads(line) is not NOT_JSON


def looks_like_lines(lines: list[bytes]) -> bool:
    """Most of the (whole) lines after the first are complete objects or arrays on their own.

    One-line inner values of a pretty-printed file (`"b"`, `{"from": "gpt", ...}` as the last
    turn) stay a minority, so a broken pretty-printed file is not mistaken for JSON lines.
    """
    sample = [line for line in lines if line.strip(JSON_WHITESPACE)][:LINES_SAMPLE]
    if not sample:
        return False
    rows = sum(is_row_line(line) for line in sample)
    return 2 * rows > len(sample)


def is_row_line(line: bytes) -> bool:
    return isinstance(loads(line), dict | list)


def not_json(path: Path, start: bytes) -> InputError:
    char = start.decode("latin-1")
    shown = repr(char) if start.isascii() and char.isprintable() else None
    what = f"starts with {shown}" if shown else f"starts with byte 0x{start[0]:02x}"
    return InputError(
        f"{path}: not JSON: {what}; expected a JSON array '[...]', JSON lines '{{...}}' or JSON "
        "objects (is it the right file, or compressed without a .gz/.zst suffix?)"
    )


# --- the top-level object: conversation or wrapper ------------------------------------------------


@dataclass(slots=True)
class KeyInfo:
    """What sniffing saw of one top-level key's value."""

    name: str
    is_list: bool = False
    items: int = 0
    all_objects: bool = True


def key_infos(value: dict) -> list[KeyInfo]:
    infos = []
    for name, item in value.items():
        if isinstance(item, list):
            objects = all(isinstance(i, dict) for i in item)
            infos.append(KeyInfo(name, True, len(item), objects))
        else:
            infos.append(KeyInfo(name, all_objects=False))
    return infos


def object_layout(keys: list[KeyInfo], path: Path, whole: bool) -> Layout:
    """A wrapper when exactly one key holds a list of objects and none looks like a row's key.

    `whole` when `keys` are all the object's keys; otherwise they are the ones seen so far, and
    the reader checks the rest while streaming (`WrapperWatch`).
    """
    if any(k.name in ROW_KEYS for k in keys):
        return Layout(Kind.OBJECTS)
    lists = [k for k in keys if k.is_list and k.items and k.all_objects]
    if len(lists) > 1:
        raise several_lists(path, [k.name for k in lists])
    if lists:
        return Layout(Kind.WRAPPED, lists[0].name)
    if whole and len(keys) == 1 and keys[0].is_list and not keys[0].items:
        return Layout(Kind.WRAPPED, keys[0].name)  # {"data": []}: a wrapper with no rows
    return Layout(Kind.OBJECTS)


def several_lists(path: Path, names: list[str]) -> InputError:
    listed = ", ".join(repr(n) for n in names)
    return InputError(
        f"{path}: a JSON object with lists of objects under several keys ({listed}); cannot tell "
        f"which holds the rows — extract that list first, e.g. jq {jq_path(names[0])} {path} > "
        "rows.json"
    )


def jq_path(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return f"'.{name}'"
    return "'.[" + json.dumps(name).replace("'", "'\\''") + "]'"


@dataclass
class HeadScan:
    """Events of the first megabyte, pushed through ijson piece by piece."""

    first_line_error: bool = False
    later_error: bool = False
    values_started: int = 0
    first_done: bool = False
    first_is_object: bool = False
    keys: list[KeyInfo] = field(default_factory=list)
    depth: int = 0

    @classmethod
    def of(cls, body: bytes, first_line_end: int, complete: bool) -> HeadScan:
        scan = cls()
        events = ijson.sendable_list()
        parser = ijson.parse_coro(events, multiple_values=True)
        try:
            parser.send(body[:first_line_end])
        except ijson.JSONError:
            scan.first_line_error = True
            return scan
        scan.feed(events)
        try:
            for start in range(first_line_end, len(body), SCAN_PIECE):
                if scan.values_started > 1:
                    return scan
                parser.send(body[start : start + SCAN_PIECE])
                scan.feed(events)
            if complete:
                parser.close()  # a truncated last value shows up only here
                scan.feed(events)
        except ijson.JSONError:
            scan.later_error = True
        return scan

    def feed(self, events: list) -> None:
        for _prefix, event, value in events:
            if event in ("start_map", "start_array"):
                self._value(event == "start_array", container=event == "start_map")
                self.depth += 1
            elif event in ("end_map", "end_array"):
                self.depth -= 1
                if self.depth == 0 and self.values_started == 1:
                    self.first_done = True
            elif event == "map_key":
                if self.depth == 1 and self.values_started == 1:
                    self.keys.append(KeyInfo(value, all_objects=False))
            else:
                self._value(False, container=False)
                if self.depth == 0 and self.values_started == 1:
                    self.first_done = True
        events.clear()

    def _value(self, is_list: bool, container: bool) -> None:
        """A value starts at the current depth; `container` is true for an object."""
        if self.depth == 0:
            self.values_started += 1
            if self.values_started == 1:
                self.first_is_object = container
            return
        if self.values_started != 1 or not self.first_is_object or not self.keys:
            return
        key = self.keys[-1]
        if self.depth == 1:
            key.is_list, key.all_objects = is_list, is_list
        elif self.depth == 2 and key.is_list:
            key.items += 1
            key.all_objects = key.all_objects and container
