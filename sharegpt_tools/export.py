"""`export`: write a conversation stage out for other tools.

Formats: `sharegpt` (one JSON array of `{id, conversations: [{from, value}], ...}`, what FastChat,
axolotl and LLaMA-Factory read), `openai` (JSON lines of `{"messages": [{role, content}], ...}`),
`jsonl` (JSON lines of every column as stored). The C-RLFT fields (`class`, `weight`, `condition`)
and the attribution are kept as extra fields. Streams the Parquet by batches; atomic write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from sharegpt_tools.workspace import CONVERSATIONS, StageError, Workspace

# Newest first: the default input is the most processed conversation stage there is.
CONVERSATION_STAGES = ("subsampled", "labeled", "clean")
OPENAI_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
EXTRA_FIELDS = ("model", "language", "class", "weight", "condition")


class ExportFormat(StrEnum):
    SHAREGPT = "sharegpt"
    OPENAI = "openai"
    JSONL = "jsonl"


def resolve_stage(workspace: Workspace, stage: str | None) -> Path:
    """A stage name or folder; by default the most processed conversation stage present."""
    if stage is not None:
        folder = Path(stage) if Path(stage).is_dir() else workspace.stage(stage)
        if not (folder / CONVERSATIONS).is_file():
            raise StageError(f"{folder} has no {CONVERSATIONS}: give a stage name or folder")
        return folder
    for name in CONVERSATION_STAGES:
        if (workspace.stage(name) / CONVERSATIONS).is_file():
            return workspace.stage(name)
    raise StageError(f"no conversation stage in {workspace.root}: run `sharegpt-tools clean` first")


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
    """Write `folder`'s conversations to `output`; returns the number of records."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(f".{output.name}.tmp")
    count = 0
    with temp.open("wb") as handle:
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
    os.replace(temp, output)
    return count
