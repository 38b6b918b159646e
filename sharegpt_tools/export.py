"""`export`: write a conversation stage out for other tools.

Formats: `sharegpt` (one JSON array of `{id, conversations: [{from, value}], ...}`, what FastChat,
axolotl and LLaMA-Factory read), `openai` (JSON lines of `{"messages": [{role, content}], ...}`),
`jsonl` (JSON lines of every column as stored). The C-RLFT fields (`class`, `weight`, `condition`)
and the attribution are kept as extra fields. Streams the Parquet by batches; atomic write.
A stage is read only when it is current (the staleness check tokenize makes).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from sharegpt_tools.stage_faults import disk_full_reason, human_bytes, is_disk_full, unchanged_note
from sharegpt_tools.workspace import CONVERSATIONS, StageError, Workspace

OPENAI_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
EXTRA_FIELDS = ("model", "language", "class", "weight", "condition")


class ExportStage(StrEnum):
    """The conversation stages export reads; newest first, so the default is the most processed
    one present."""

    SUBSAMPLED = "subsampled"
    LABELED = "labeled"
    CLEAN = "clean"


CONVERSATION_STAGES = tuple(str(stage) for stage in ExportStage)


class ExportFormat(StrEnum):
    SHAREGPT = "sharegpt"
    OPENAI = "openai"
    JSONL = "jsonl"


def resolve_stage(workspace: Workspace, stage: str | None) -> Path:
    """A stage by name, or by default the most processed conversation stage present.

    The stage must be current: a subsampled/ made from an older labeled/ is refused with the
    message tokenize gives (`Workspace.require_current`), not exported as if it were up to date.
    """
    if stage is None:
        present = [n for n in CONVERSATION_STAGES if workspace.stage(n).exists()]
        if not present:
            raise StageError(
                f"no conversation stage in {workspace.root}: run `sharegpt-tools clean` first"
            )
        stage = present[0]
    if stage not in CONVERSATION_STAGES:
        raise StageError(f"--input {stage}: give one of {', '.join(CONVERSATION_STAGES)}")
    workspace.require_current(stage)
    folder = workspace.stage(stage)
    if not (folder / CONVERSATIONS).is_file():
        raise StageError(f"{folder} has no {CONVERSATIONS}: re-run that stage")
    return folder


def iter_records(folder: Path) -> Iterator[dict]:
    for batch in pq.ParquetFile(folder / CONVERSATIONS).iter_batches(batch_size=1000):
        yield from batch.to_pylist()


def to_sharegpt(record: dict) -> dict:
    out = {"id": record["id"], "conversations": record["conversations"]}
    out.update({k: record[k] for k in EXTRA_FIELDS if k in record})
    return out


def to_openai(record: dict) -> dict:
    messages = [
        {"role": OPENAI_ROLES[turn["from"]], "content": turn["value"]}
        for turn in record["conversations"]
    ]
    out: dict = {"messages": messages, "id": record["id"]}
    out.update({k: record[k] for k in EXTRA_FIELDS if k in record})
    return out


def export_stage(folder: Path, output: Path, fmt: ExportFormat) -> int:
    """Write `folder`'s conversations to `output`; returns the number of records.

    Written to a temporary file renamed at the end: a failure (a full disk, Ctrl-C) removes it
    and leaves an earlier `output` as it was.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(f".{output.name}.tmp")
    try:
        count = write_records(folder, temp, fmt)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if is_disk_full(exc):
            free = human_bytes(shutil.disk_usage(output.parent).free)
            raise StageError(
                f"{disk_full_reason(exc)} writing {temp}: {free} free in {output.parent}; "
                f"{unchanged_note(output)}"
            ) from exc
        raise
    os.replace(temp, output)
    return count


def write_records(folder: Path, path: Path, fmt: ExportFormat) -> int:
    count = 0
    with path.open("wb") as handle:
        if fmt == ExportFormat.SHAREGPT:
            handle.write(b"[")
        for record in iter_records(folder):
            if fmt == ExportFormat.SHAREGPT:
                handle.write(b",\n" if count else b"\n")
                handle.write(orjson.dumps(to_sharegpt(record)))
            else:
                row = to_openai(record) if fmt == ExportFormat.OPENAI else record
                handle.write(orjson.dumps(row) + b"\n")
            count += 1
        if fmt == ExportFormat.SHAREGPT:
            handle.write(b"\n]\n")
    return count
