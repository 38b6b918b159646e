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

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sharegpt_tools.clean.batches import (
    CANDIDATE_SCHEMA,
    SPILLED_COLUMNS,
    ChunkResult,
    clean_chunk,
)
from sharegpt_tools.clean.dedup import band_layout, find_near_duplicates
from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.steps import RowCleaner
from sharegpt_tools.io.readers import RawRow, RowReader
from sharegpt_tools.records import CLEAN_SCHEMA, REJECTS_SCHEMA, Reason, StageCounts
from sharegpt_tools.stage_faults import signals_deferred
from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    REJECTS,
    Workspace,
    stage_manifest,
    write_json_atomic,
)

CANDIDATES = ".candidates.parquet"
SPILLED_SCHEMA = pa.schema([CANDIDATE_SCHEMA.field(name) for name in SPILLED_COLUMNS])
# Options that change how the stage runs, never what it writes (chunks are cleaned row by row and
# consumed in input order, so neither the worker count nor the chunk size changes a row): kept in
# the manifest, left out of the fingerprint so that a re-run with other ones is not "new data".
EXECUTION_OPTIONS = ("workers", "batch_size")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

ProgressCallback = Callable[[int, int, int], None]  # (bytes read, total bytes, rows read)


@dataclass
class CleanResult:
    stage: Path
    manifest: dict
    counts: dict = field(default_factory=dict)


# --- worker side ----------------------------------------------------------------------------------

_worker_cleaner: RowCleaner | None = None


def _init_worker(options: CleanOptions, parent_pid: int) -> None:
    global _worker_cleaner
    exit_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the main process alone decides, and stops the
    # workers itself (else each one prints a KeyboardInterrupt traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_cleaner = RowCleaner(options)


def exit_with_parent(parent_pid: int) -> None:
    """Make this worker end when the main process does, however it ends.

    A worker whose parent was killed (SIGKILL, the OOM killer) would otherwise wait on the task
    pipe forever, holding its memory, and keep multiprocessing's resource tracker alive with it.
    Linux delivers SIGTERM on the parent's death (PR_SET_PDEATHSIG); elsewhere a thread watches
    for the parent's pid to change.
    """
    if not set_parent_death_signal(signal.SIGTERM):
        threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)


def set_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    os._exit(1)


def _clean_chunk_in_worker(rows: list[RawRow]) -> ChunkResult:
    assert _worker_cleaner is not None, "worker used before its initializer ran"
    return clean_chunk(_worker_cleaner, rows)


def worker_count(requested: int) -> int:
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


def chunked(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def clean_chunks(rows: Iterable[RawRow], options: CleanOptions) -> Iterator[ChunkResult]:
    """Chunk results in input order; at most a few chunks in flight, so reading never runs ahead."""
    workers = worker_count(options.workers)
    if workers == 1:
        cleaner = RowCleaner(options)
        yield from (clean_chunk(cleaner, chunk) for chunk in chunked(rows, options.batch_size))
        return
    # spawn, not fork: the parent holds Arrow/polars thread pools that a fork would copy mid-flight.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(options, os.getpid()),
    )
    try:
        pending: deque[Future[ChunkResult]] = deque()
        for chunk in chunked(rows, options.batch_size):
            with signals_deferred():  # a submit may start a worker: never half-started
                pending.append(pool.submit(_clean_chunk_in_worker, chunk))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:  # an error, Ctrl-C, SIGTERM (Terminated), or the consumer closing us
        stop_workers(pool)
        raise
    pool.shutdown()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Drop the queued chunks and end the workers now, instead of waiting (as `shutdown` does)
    for the chunks in flight, whose results nobody will read."""
    # No public handle on the processes before Python 3.14, and shutdown() forgets them.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


# --- main side ------------------------------------------------------------------------------------


class Accounting:
    """Counts that add up: rows in = kept + Σ rejected per reason."""

    def __init__(self) -> None:
        self.rows = StageCounts()
        self.models: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.fixes: Counter[str] = Counter()
        self.layouts: Counter[str] = Counter()

    def to_json(self) -> dict:
        return {
            **self.rows.to_json(),
            "row_layouts": dict(self.layouts.most_common()),
            "models": dict(self.models.most_common()),
            "languages": dict(self.languages.most_common()),
            "structure_fixes": dict(self.fixes.most_common()),
        }


class RejectSink:
    def __init__(self, path: Path, accounting: Accounting) -> None:
        self.writer = pq.ParquetWriter(path, REJECTS_SCHEMA, compression="zstd")
        self.accounting = accounting

    def write(self, rejects: pa.RecordBatch | pa.Table) -> None:
        if rejects.num_rows:
            self.accounting.rows.rejected.update(rejects.column("reason").to_pylist())
            self.writer.write(rejects)

    def close(self) -> None:
        self.writer.close()


class DedupState:
    """What pass 1 remembers about kept rows: ids, exact keys, band hashes (compact)."""

    def __init__(self, options: CleanOptions) -> None:
        self.options = options
        self.ids: dict[str, str] = {}  # id -> source of the row that kept it
        self.exact: dict[int, str] = {}  # exact key -> id kept
        self.bands = bytearray()

    def verdict(self, row_id: str, exact: int) -> tuple[str, str] | None:
        if row_id in self.ids:
            return Reason.DUPLICATE_ID, f"id already used by the row at {self.ids[row_id]}"
        if self.options.exact_dedup and exact in self.exact:
            return Reason.EXACT_DUPLICATE, f"same text as kept id {self.exact[exact]}"
        return None

    def remember(self, row_id: str, exact: int, source: str, bands: bytes) -> None:
        self.ids[row_id] = source
        self.exact.setdefault(exact, row_id)
        self.bands += bands


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
    # The input's size sizes the advice if the disk fills up (the output is about as large).
    with workspace.writing_stage("clean", expected_bytes=reader.total_bytes) as out:
        rejects = RejectSink(out / REJECTS, accounting)
        state = DedupState(options)
        # The spill is temporary: lz4 and no dictionary pages cost the main process far less
        # than zstd and dictionary attempts on the original rows.
        spill = pq.ParquetWriter(
            out / CANDIDATES, SPILLED_SCHEMA, compression="lz4", use_dictionary=False
        )
        # closing(): on any error the workers are stopped here, not whenever the generator is
        # collected (the traceback keeps it alive until the error is handled).
        with spill as candidates, closing(clean_chunks(reader, options)) as chunks:
            for chunk in chunks:
                accounting.rows.rows_in += chunk.kept.num_rows + chunk.rejects.num_rows
                accounting.fixes.update(chunk.fixes)
                accounting.layouts.update(chunk.layouts)
                rejects.write(chunk.rejects)
                route_candidates(chunk.kept, state, rejects, candidates)
                if progress:
                    progress(reader.bytes_read, reader.total_bytes, accounting.rows.rows_in)
        if progress:
            progress(reader.total_bytes, reader.total_bytes, accounting.rows.rows_in)
        timings["read_and_clean_s"] = time.perf_counter() - started

        near = near_duplicates(out / CANDIDATES, state, options)
        timings["near_dedup_s"] = time.perf_counter() - started - timings["read_and_clean_s"]
        write_conversations(out, near, rejects, accounting)
        rejects.close()
        (out / CANDIDATES).unlink()
        timings["total_s"] = time.perf_counter() - started
        manifest = build_manifest(reader.inputs, options, accounting, timings)
        write_json_atomic(out / MANIFEST, manifest)
    return CleanResult(workspace.stage("clean"), manifest, accounting.to_json())


def route_candidates(
    batch: pa.RecordBatch, state: DedupState, rejects: RejectSink, candidates: pq.ParquetWriter
) -> None:
    """Duplicate ids and exact duplicates across chunks go to rejects; the rest is spilled."""
    if not batch.num_rows:
        return
    ids = batch.column("id").to_pylist()
    exact = batch.column("_exact").to_pylist()
    sources = batch.column("source").to_pylist()
    bands = batch.column("_bands").to_pylist()
    keep = np.ones(batch.num_rows, dtype=bool)
    reasons: list[str] = []
    details: list[str] = []
    for i, row_id in enumerate(ids):
        verdict = state.verdict(row_id, exact[i])
        if verdict is None:
            state.remember(row_id, exact[i], sources[i], bands[i])
        else:
            keep[i] = False
            reasons.append(str(verdict[0]))
            details.append(verdict[1])
    if reasons:
        dropped = batch.filter(pa.array(~keep))
        rejects.write(reject_rows(dropped, reasons, details))
    candidates.write(batch.filter(pa.array(keep)).select(SPILLED_SCHEMA.names))


def reject_rows(batch: pa.RecordBatch, reasons: list[str], details: list[str]) -> pa.RecordBatch:
    """Rejects for rows that had passed the per-row steps (their original JSON is carried along)."""
    return pa.RecordBatch.from_arrays(
        [
            batch.column("id"),
            pa.array(reasons, pa.string()),
            pa.array(details, pa.string()),
            batch.column("source"),
            batch.column("_original"),
        ],
        schema=REJECTS_SCHEMA,
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


def read_rows_at(spill: Path, wanted: set[int], columns: list[str]) -> dict[int, dict]:
    """Some columns of the spilled rows at `wanted` positions, reading only their row groups.

    Near duplicates are a few percent of the rows: touching just their row groups keeps pass 2
    from decompressing every original row a second time.
    """
    parquet = pq.ParquetFile(spill)
    found: dict[int, dict] = {}
    start = 0
    for group in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        hits = [i for i in range(start, start + size) if i in wanted]
        if hits:
            rows = parquet.read_row_group(group, columns=columns, use_threads=False).to_pylist()
            found.update((i, rows[i - start]) for i in hits)
        start += size
    return found


def read_signatures(spill: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    rows = read_rows_at(spill, wanted, ["_signature"])
    return {i: np.frombuffer(row["_signature"], dtype=np.uint32) for i, row in rows.items()}


def read_ids(spill: Path) -> list[str]:
    return pq.read_table(spill, columns=["id"]).column(0).to_pylist()


def write_conversations(
    out: Path, near: dict[int, str], rejects: RejectSink, accounting: Accounting
) -> None:
    """Pass 2: candidates → conversations.parquet, near duplicates → rejects."""
    spill = out / CANDIDATES
    write_near_duplicate_rejects(spill, near, rejects)
    offset = 0
    # Single-threaded reading: with threads pyarrow reads row groups ahead of a slower consumer,
    # and memory then grows with the size of the spill (measured +190 MB at 100k rows).
    batches = pq.ParquetFile(spill).iter_batches(
        batch_size=1000, columns=CLEAN_SCHEMA.names, use_threads=False
    )
    with pq.ParquetWriter(out / CONVERSATIONS, CLEAN_SCHEMA, compression="zstd") as writer:
        for batch in batches:
            positions = range(offset, offset + batch.num_rows)
            keep = np.fromiter((p not in near for p in positions), dtype=bool, count=batch.num_rows)
            kept = batch if keep.all() else batch.filter(pa.array(keep))
            writer.write(kept)
            accounting.rows.kept += kept.num_rows
            accounting.models.update(kept.column("model").to_pylist())
            accounting.languages.update(kept.column("language").to_pylist())
            offset += batch.num_rows


def write_near_duplicate_rejects(spill: Path, near: dict[int, str], rejects: RejectSink) -> None:
    if not near:
        return
    rows = read_rows_at(spill, set(near), ["id", "source", "_original"])
    ordered = sorted(rows)
    table = pa.table(
        {
            "id": [rows[i]["id"] for i in ordered],
            "reason": [str(Reason.NEAR_DUPLICATE)] * len(ordered),
            "detail": [near[i] for i in ordered],
            "source": [rows[i]["source"] for i in ordered],
            "original": [rows[i]["_original"] for i in ordered],
        },
        schema=REJECTS_SCHEMA,
    )
    rejects.write(table)


def build_manifest(
    inputs: list[dict], options: CleanOptions, accounting: Accounting, timings: dict[str, float]
) -> dict:
    counts = accounting.to_json()
    assert counts["in"] == counts["kept"] + counts["rejected"], "accounting invariant broken"
    return stage_manifest(
        "clean",
        options.to_json(),
        counts,
        timings,
        inputs=inputs,
        execution_only=EXECUTION_OPTIONS,
        files={"conversations": CONVERSATIONS, "rejects": REJECTS},
    )
