"""The `clean` stage: raw dumps → data/clean/{conversations,rejects}.parquet + manifest.json.

Pass 1 streams the inputs: rows are cleaned in worker processes (`steps.RowCleaner`), in bounded
chunks so memory never grows with the input; the main process catches duplicate ids and exact
duplicates, writes rejects at once, and spills the surviving candidates to a temporary Parquet file
together with their MinHash signatures (band hashes stay in a compact in-memory array).
Near duplicates are then found with one sort per band (`dedup.find_near_duplicates`), and pass 2
copies the candidates into `conversations.parquet`, diverting the near duplicates to the rejects.

Accounting invariant: every input row lands in exactly one of the two files.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sharegpt_tools import __version__
from sharegpt_tools.clean.dedup import band_layout, find_near_duplicates
from sharegpt_tools.clean.steps import CleanOptions, Outcome, RowCleaner
from sharegpt_tools.io.readers import RawRow, RowReader
from sharegpt_tools.io.writers import ParquetBatchWriter
from sharegpt_tools.records import CLEAN_SCHEMA, REJECTS_SCHEMA, Reason
from sharegpt_tools.workspace import MANIFEST, Workspace, fingerprint, write_json_atomic

CONVERSATIONS = "conversations.parquet"
REJECTS = "rejects.parquet"
CANDIDATES = ".candidates.parquet"
CANDIDATE_SCHEMA = CLEAN_SCHEMA.append(pa.field("_signature", pa.binary())).append(
    pa.field("_original", pa.string())
)

ProgressCallback = Callable[[int, int, int], None]  # (bytes read, total bytes, rows read)


@dataclass
class CleanResult:
    stage: Path
    manifest: dict
    counts: dict = field(default_factory=dict)


# --- worker side ----------------------------------------------------------------------------------

_worker_cleaner: RowCleaner | None = None


def _init_worker(options: CleanOptions) -> None:
    global _worker_cleaner
    _worker_cleaner = RowCleaner(options)


def _clean_chunk(rows: list[RawRow]) -> list[Outcome]:
    assert _worker_cleaner is not None, "worker used before its initializer ran"
    return [_worker_cleaner.clean(row) for row in rows]


def worker_count(requested: int) -> int:
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


def chunked(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def clean_rows(rows: Iterable[RawRow], options: CleanOptions) -> Iterator[Outcome]:
    """Outcomes in input order; at most a few chunks in flight, so reading never runs ahead."""
    workers = worker_count(options.workers)
    if workers == 1:
        cleaner = RowCleaner(options)
        yield from (cleaner.clean(row) for row in rows)
        return
    # spawn, not fork: the parent holds Arrow/polars thread pools that a fork would copy mid-flight.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(options,)
    ) as pool:
        pending: deque[Future[list[Outcome]]] = deque()
        for chunk in chunked(rows, options.batch_size):
            pending.append(pool.submit(_clean_chunk, chunk))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


# --- main side ------------------------------------------------------------------------------------


class Accounting:
    """Counts that add up: rows in = kept + Σ rejected per reason."""

    def __init__(self) -> None:
        self.rows_in = 0
        self.kept = 0
        self.rejected: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.fixes: Counter[str] = Counter()

    def to_json(self) -> dict:
        return {
            "in": self.rows_in,
            "kept": self.kept,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected.most_common()),
            "models": dict(self.models.most_common()),
            "languages": dict(self.languages.most_common()),
            "structure_fixes": dict(self.fixes.most_common()),
        }


class RejectSink:
    def __init__(self, path: Path, accounting: Accounting) -> None:
        self.writer = ParquetBatchWriter(path, REJECTS_SCHEMA)
        self.accounting = accounting

    def reject(
        self, row_id: str | None, reason: str, detail: str, source: str, original: str
    ) -> None:
        reason = str(reason)  # Reason members are str subclasses; JSON wants plain str keys
        self.accounting.rejected[reason] += 1
        self.writer.write(
            {
                "id": row_id,
                "reason": reason,
                "detail": detail,
                "source": source,
                "original": original,
            }
        )


class DedupState:
    """What pass 1 remembers about kept rows: ids, exact keys, band hashes (compact)."""

    def __init__(self, options: CleanOptions) -> None:
        self.options = options
        self.ids: dict[str, str] = {}  # id -> source of the row that kept it
        self.exact: dict[int, str] = {}  # exact key -> id kept
        self.bands = bytearray()

    def verdict(self, outcome: Outcome) -> tuple[str, str] | None:
        assert outcome.id is not None
        if outcome.id in self.ids:
            return Reason.DUPLICATE_ID, f"id already used by the row at {self.ids[outcome.id]}"
        if self.options.exact_dedup and outcome.exact in self.exact:
            return Reason.EXACT_DUPLICATE, f"same text as kept id {self.exact[outcome.exact]}"
        return None

    def remember(self, outcome: Outcome) -> None:
        assert outcome.id is not None
        self.ids[outcome.id] = outcome.source
        self.exact.setdefault(outcome.exact, outcome.id)
        self.bands += outcome.bands


def run_clean(
    inputs: list[Path],
    workspace: Workspace,
    options: CleanOptions,
    progress: ProgressCallback | None = None,
) -> CleanResult:
    started = time.perf_counter()
    reader = RowReader(inputs)
    accounting = Accounting()
    timings: dict[str, float] = {}
    with workspace.writing_stage("clean") as out:
        rejects = RejectSink(out / REJECTS, accounting)
        state = DedupState(options)
        with ParquetBatchWriter(out / CANDIDATES, CANDIDATE_SCHEMA) as candidates:
            for outcome in clean_rows(reader, options):
                accounting.rows_in += 1
                route_outcome(outcome, state, rejects, candidates, accounting)
                if progress and accounting.rows_in % 256 == 0:
                    progress(reader.bytes_read, reader.total_bytes, accounting.rows_in)
        if progress:
            progress(reader.total_bytes, reader.total_bytes, accounting.rows_in)
        timings["read_and_clean_s"] = time.perf_counter() - started

        near = near_duplicates(out / CANDIDATES, state, options)
        timings["near_dedup_s"] = time.perf_counter() - started - timings["read_and_clean_s"]
        write_conversations(out, near, rejects, accounting)
        rejects.writer.close()
        (out / CANDIDATES).unlink()
        timings["total_s"] = time.perf_counter() - started
        manifest = build_manifest(reader.inputs, options, accounting, timings)
        write_json_atomic(out / MANIFEST, manifest)
    return CleanResult(workspace.stage("clean"), manifest, accounting.to_json())


def route_outcome(
    outcome: Outcome,
    state: DedupState,
    rejects: RejectSink,
    candidates: ParquetBatchWriter,
    accounting: Accounting,
) -> None:
    if outcome.reason is not None:
        rejects.reject(outcome.id, outcome.reason, outcome.detail, outcome.source, outcome.original)
        return
    verdict = state.verdict(outcome)
    if verdict is not None:
        rejects.reject(outcome.id, verdict[0], verdict[1], outcome.source, outcome.original)
        return
    state.remember(outcome)
    accounting.fixes.update(outcome.notes)
    assert outcome.record is not None
    candidates.write(
        {**outcome.record, "_signature": outcome.signature, "_original": outcome.original}
    )


def near_duplicates(candidates: Path, state: DedupState, options: CleanOptions) -> dict[int, str]:
    """Candidate row index -> reject detail, for rows that are near duplicates of a kept row."""
    if not options.near_dedup or not state.bands:
        return {}
    bands_per_row, _ = band_layout(options.near_threshold, options.num_perm)
    bands = np.frombuffer(bytes(state.bands), dtype=np.uint64).reshape(-1, bands_per_row)

    def signature_of(indexes: list[int]) -> dict[int, np.ndarray]:
        return read_signatures(candidates, set(indexes))

    found = find_near_duplicates(bands, signature_of, options.near_threshold)
    if not found:
        return {}
    ids = read_ids(candidates)
    return {
        dup.index: f"near duplicate of kept id {ids[dup.kept]} "
        f"(estimated Jaccard {dup.similarity:.2f} ≥ {options.near_threshold})"
        for dup in found
    }


def read_signatures(candidates: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    found: dict[int, np.ndarray] = {}
    offset = 0
    for batch in pq.ParquetFile(candidates).iter_batches(columns=["_signature"]):
        column = batch.column(0)
        for i in range(len(column)):
            if offset + i in wanted:
                found[offset + i] = np.frombuffer(column[i].as_py(), dtype=np.uint32)
        offset += len(column)
    return found


def read_ids(candidates: Path) -> list[str]:
    return pq.read_table(candidates, columns=["id"]).column(0).to_pylist()


def write_conversations(
    out: Path, near: dict[int, str], rejects: RejectSink, accounting: Accounting
) -> None:
    """Pass 2: candidates → conversations.parquet, near duplicates → rejects."""
    offset = 0
    with pq.ParquetWriter(out / CONVERSATIONS, CLEAN_SCHEMA, compression="zstd") as writer:
        for batch in pq.ParquetFile(out / CANDIDATES).iter_batches(batch_size=2000):
            keep = np.ones(batch.num_rows, dtype=bool)
            for i in range(batch.num_rows):
                if offset + i in near:
                    keep[i] = False
                    rejects.reject(
                        batch.column("id")[i].as_py(),
                        Reason.NEAR_DUPLICATE,
                        near[offset + i],
                        batch.column("source")[i].as_py(),
                        batch.column("_original")[i].as_py(),
                    )
            kept = pa.Table.from_batches([batch]).filter(pa.array(keep)).select(CLEAN_SCHEMA.names)
            writer.write_table(kept.cast(CLEAN_SCHEMA))
            accounting.kept += kept.num_rows
            accounting.models.update(kept.column("model").to_pylist())
            accounting.languages.update(kept.column("language").to_pylist())
            offset += batch.num_rows


def build_manifest(
    inputs: list[dict], options: CleanOptions, accounting: Accounting, timings: dict[str, float]
) -> dict:
    counts = accounting.to_json()
    assert counts["in"] == counts["kept"] + counts["rejected"], "accounting invariant broken"
    options_json = options.to_json()
    return {
        "stage": "clean",
        "tool": "sharegpt-tools",
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs,
        "options": options_json,
        "fingerprint": fingerprint(
            {"inputs": [i["sha256"] for i in inputs], "options": options_json, "v": __version__}
        ),
        "parent": None,
        "files": {"conversations": CONVERSATIONS, "rejects": REJECTS},
        "counts": counts,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
