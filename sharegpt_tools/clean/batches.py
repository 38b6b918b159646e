"""Worker side of `clean`: a chunk of raw rows → two Arrow record batches.

Building Arrow columns in the workers (column-wise, not `from_pylist`) keeps the main process down
to what only it can do: duplicate ids and exact duplicates across chunks, and writing. A record
batch crosses the process boundary as one Arrow IPC buffer instead of thousands of Python objects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from sharegpt_tools.clean.steps import Outcome, RowCleaner
from sharegpt_tools.io.readers import RawRow
from sharegpt_tools.records import CLEAN_SCHEMA, REJECTS_SCHEMA, TURN_TYPE

# Candidates carry what the main process needs to judge and reject them besides the record.
CANDIDATE_SCHEMA = (
    CLEAN_SCHEMA.append(pa.field("_signature", pa.binary()))
    .append(pa.field("_original", pa.string()))
    .append(pa.field("_exact", pa.uint64()))
    .append(pa.field("_bands", pa.binary()))
)


@dataclass
class ChunkResult:
    kept: pa.RecordBatch
    rejects: pa.RecordBatch
    fixes: Counter[str] = field(default_factory=Counter)
    layouts: Counter[str] = field(default_factory=Counter)  # rows read per row layout


def clean_chunk(cleaner: RowCleaner, rows: list[RawRow]) -> ChunkResult:
    outcomes = cleaner.clean_many(rows)
    kept = [o for o in outcomes if o.reason is None]
    rejected = [o for o in outcomes if o.reason is not None]
    fixes: Counter[str] = Counter()
    for outcome in kept:
        fixes.update(outcome.notes)
    layouts = Counter(o.layout for o in outcomes if o.layout)
    return ChunkResult(candidates_batch(kept), rejects_batch(rejected), fixes, layouts)


def rejects_batch(outcomes: list[Outcome]) -> pa.RecordBatch:
    columns = {
        "id": [o.id for o in outcomes],
        "reason": [str(o.reason) for o in outcomes],
        "detail": [o.detail for o in outcomes],
        "source": [o.source for o in outcomes],
        "original": [o.original for o in outcomes],
    }
    return pa.RecordBatch.from_pydict(columns, schema=REJECTS_SCHEMA)


def conversations_array(records: list[dict]) -> pa.Array:
    """list<struct<from, value>> from flat columns: much faster than nested Python objects."""
    offsets = [0]
    roles: list[str] = []
    values: list[str] = []
    for record in records:
        for turn in record["conversations"]:
            roles.append(turn["from"])
            values.append(turn["value"])
        offsets.append(len(roles))
    turns = pa.StructArray.from_arrays(
        [pa.array(roles, pa.string()), pa.array(values, pa.string())], fields=list(TURN_TYPE)
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), turns)


def candidates_batch(outcomes: list[Outcome]) -> pa.RecordBatch:
    records = [o.record for o in outcomes if o.record is not None]
    columns: dict[str, pa.Array] = {"conversations": conversations_array(records)}
    for name in CLEAN_SCHEMA.names:
        if name != "conversations":
            columns[name] = pa.array([r[name] for r in records], CLEAN_SCHEMA.field(name).type)
    columns["_signature"] = pa.array([o.signature for o in outcomes], pa.binary())
    columns["_original"] = pa.array([o.original for o in outcomes], pa.string())
    columns["_exact"] = pa.array([o.exact for o in outcomes], pa.uint64())
    columns["_bands"] = pa.array([o.bands for o in outcomes], pa.binary())
    return pa.RecordBatch.from_arrays(
        [columns[name] for name in CANDIDATE_SCHEMA.names], schema=CANDIDATE_SCHEMA
    )
