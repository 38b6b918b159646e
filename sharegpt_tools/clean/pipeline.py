"""The `clean` stage: raw dumps → data/clean/{conversations,rejects}.parquet + manifest.json.

One pass over the inputs: rows are cleaned in worker processes (`steps.RowCleaner`), in bounded
chunks so memory never grows with the input; the main process judges each chunk, in input order,
for duplicate ids, exact duplicates and near duplicates of the rows before it (`dedup.NearDupIndex`:
a compact index of band hashes, the signatures in a temporary file), and writes every row at once
to `conversations.parquet` or to the rejects.

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
from itertools import groupby, islice
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from sharegpt_tools.clean.batches import ChunkResult, clean_chunk
from sharegpt_tools.clean.dedup import NearDupIndex
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

SIGNATURES = ".signatures.bin"  # temporary: the near-duplicate index's signatures, by row
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


def _clean_chunk_in_worker(packed: list[RawRow | tuple[str, bytes]]) -> ChunkResult:
    assert _worker_cleaner is not None, "worker used before its initializer ran"
    return clean_chunk(_worker_cleaner, [unpack_row(row) for row in packed])


def pack_row(row: RawRow) -> RawRow | tuple[str, bytes]:
    """A row as it travels to a worker: (source, its JSON) when orjson can write it.

    A pickled row costs ~16 µs to pickle and ~15 µs to unpickle (7 KB of nested dicts), its JSON
    ~4 µs to write and ~11 µs to read; and that JSON is the `original` the row keeps anyway.
    """
    if row.error is not None:
        return row
    try:
        return row.source, orjson.dumps(row.value)
    except TypeError:  # integers beyond 64 bits: the row travels as it is
        return row


def unpack_row(packed: RawRow | tuple[str, bytes]) -> RawRow:
    if isinstance(packed, RawRow):
        return packed
    source, text = packed
    return RawRow(source, value=orjson.loads(text), original=text)


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
            packed = [pack_row(row) for row in chunk]
            with signals_deferred():  # a submit may start a worker: never half-started
                pending.append(pool.submit(_clean_chunk_in_worker, packed))
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


class BufferedSink:
    """Record batches → one Parquet file, in row groups of about ROW_GROUP_ROWS rows: a worker's
    chunk is smaller, and a row group each would cost compression and metadata (measured: ~2 ms
    per write of a chunk's few rejects). The batches may be slices that keep a whole chunk's
    buffers alive (its original JSON included): a row group is also written once they hold
    MAX_PENDING_BYTES."""

    ROW_GROUP_ROWS = 1000
    MAX_PENDING_BYTES = 32 << 20

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = self.pending_bytes = 0
        self.pending_buffers: set[int] = set()

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self.count(batch)
        selected = batch.select(self.schema.names)
        self.pending.append(selected)
        self.pending_rows += batch.num_rows
        self.pending_bytes += self.retained_bytes(selected)
        if self.pending_rows >= self.ROW_GROUP_ROWS or self.pending_bytes >= self.MAX_PENDING_BYTES:
            self.flush()

    def retained_bytes(self, batch: pa.RecordBatch) -> int:
        """The bytes of the buffers `batch` keeps alive that no pending batch did already
        (slices of one chunk share its buffers)."""
        fresh = 0
        for column in batch.columns:
            for buffer in column.buffers():  # its children's too, nested ones included
                if buffer is not None and buffer.address not in self.pending_buffers:
                    self.pending_buffers.add(buffer.address)
                    fresh += buffer.size
        return fresh

    def count(self, batch: pa.RecordBatch) -> None:
        """Update the accounting with the rows of `batch` (called once per row written)."""

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, self.schema))
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        self.pending_buffers.clear()

    def close(self) -> None:
        self.flush()
        self.writer.close()


class RejectSink(BufferedSink):
    def __init__(self, path: Path, accounting: Accounting) -> None:
        super().__init__(path, REJECTS_SCHEMA)
        self.accounting = accounting

    def count(self, batch: pa.RecordBatch) -> None:
        self.accounting.rows.rejected.update(batch.column("reason").to_pylist())


class DedupState:
    """What the stage remembers about kept rows: ids, exact keys, and the near-duplicate index."""

    def __init__(self, options: CleanOptions, signature_path: Path) -> None:
        self.options = options
        self.ids: dict[str, str] = {}  # id -> source of the row that kept it
        self.exact: dict[int, str] = {}  # exact key -> id kept
        self.candidate_ids: list[str] = []  # the id of each row that reached near dedup
        self.near = (
            NearDupIndex(options.near_threshold, options.num_perm, signature_path)
            if options.near_dedup
            else None
        )
        # CPU seconds of this thread in the near-dup step: it runs between reading and writing,
        # while the workers hold the cores, so its wall time would mostly count the waits.
        self.near_dedup_s = 0.0

    def verdict(self, row_id: str, exact: int) -> tuple[str, str] | None:
        if row_id in self.ids:
            return Reason.DUPLICATE_ID, f"id already used by the row at {self.ids[row_id]}"
        if self.options.exact_dedup and exact in self.exact:
            return Reason.EXACT_DUPLICATE, f"same text as kept id {self.exact[exact]}"
        return None

    def remember(self, row_id: str, exact: int, source: str) -> None:
        self.ids[row_id] = source
        self.exact.setdefault(exact, row_id)
        self.candidate_ids.append(row_id)

    def near_duplicates(self, bands: list[bytes], signatures: list[bytes]) -> dict[int, str]:
        """Row → reject detail, for the rows (all remembered, in order; their band hashes and
        signatures as the workers packed them) that are near duplicates."""
        if self.near is None or not bands:
            return {}
        started = time.thread_time()
        first = self.near.rows
        band_values = np.frombuffer(b"".join(bands), dtype=np.uint64).reshape(len(bands), -1)
        signature_width = self.options.num_perm * 4
        # A row without words has no signature; its bands are its own (see steps.py).
        packed = b"".join(s or bytes(signature_width) for s in signatures)
        values = np.frombuffer(packed, dtype=np.uint32).reshape(len(bands), -1)
        details = {
            dup.index - first: f"near duplicate of kept id {self.candidate_ids[dup.kept]} "
            f"(estimated Jaccard {dup.similarity:.2f} ≥ {self.options.near_threshold})"
            for dup in self.near.add_chunk(band_values, values)
        }
        self.near_dedup_s += time.thread_time() - started
        return details

    def close(self) -> None:
        """Remove the signature file (the stage folder must hold only what it publishes)."""
        if self.near is not None:
            self.near.close()
            self.near = None


class ConversationSink(BufferedSink):
    """Kept rows → conversations.parquet."""

    def __init__(self, path: Path, accounting: Accounting) -> None:
        super().__init__(path, CLEAN_SCHEMA)
        self.accounting = accounting

    def count(self, batch: pa.RecordBatch) -> None:
        self.accounting.rows.kept += batch.num_rows
        self.accounting.models.update(batch.column("model").to_pylist())
        self.accounting.languages.update(batch.column("language").to_pylist())


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
        kept = ConversationSink(out / CONVERSATIONS, accounting)
        state = DedupState(options, out / SIGNATURES)
        # closing(): on any error the workers are stopped here, not whenever the generator is
        # collected (the traceback keeps it alive until the error is handled).
        with closing(state), closing(clean_chunks(reader, options)) as chunks:
            for chunk in chunks:
                accounting.rows.rows_in += chunk.kept.num_rows + chunk.rejects.num_rows
                accounting.fixes.update(chunk.fixes)
                accounting.layouts.update(chunk.layouts)
                rejects.write(chunk.rejects)
                route_candidates(chunk.kept, state, rejects, kept)
                if progress:
                    progress(reader.bytes_read, reader.total_bytes, accounting.rows.rows_in)
        if progress:
            progress(reader.total_bytes, reader.total_bytes, accounting.rows.rows_in)
        kept.close()
        rejects.close()
        timings["read_and_clean_s"] = time.perf_counter() - started
        timings["near_dedup_s"] = state.near_dedup_s
        timings["total_s"] = time.perf_counter() - started
        manifest = build_manifest(reader.inputs, options, accounting, timings)
        write_json_atomic(out / MANIFEST, manifest)
    return CleanResult(workspace.stage("clean"), manifest, accounting.to_json())


def route_candidates(
    batch: pa.RecordBatch, state: DedupState, rejects: RejectSink, kept: ConversationSink
) -> None:
    """Duplicate ids, exact and near duplicates (of rows of earlier chunks, or earlier in this
    one) go to the rejects; the rest to conversations.parquet."""
    if not batch.num_rows:
        return
    ids = batch.column("id").to_pylist()
    exact = batch.column("_exact").to_pylist()
    sources = batch.column("source").to_pylist()
    verdicts: dict[int, tuple[str, str]] = {}
    for i, row_id in enumerate(ids):
        verdict = state.verdict(row_id, exact[i])
        if verdict is None:
            state.remember(row_id, exact[i], sources[i])
        else:
            verdicts[i] = (str(verdict[0]), verdict[1])
    remembered = [i for i in range(batch.num_rows) if i not in verdicts]
    bands, signatures = (batch.column(name).to_pylist() for name in ("_bands", "_signature"))
    near = state.near_duplicates(
        [bands[i] for i in remembered], [signatures[i] for i in remembered]
    )
    verdicts.update((remembered[i], (str(Reason.NEAR_DUPLICATE), d)) for i, d in near.items())
    if not verdicts:
        kept.write(batch)
        return
    dropped = sorted(verdicts)
    # The few rejected rows are copied out (so the chunk's buffers need not stay alive for them).
    picked = [piece.select(["id", "source", "_original"]) for piece in slices(batch, dropped)]
    reasons = [verdicts[i][0] for i in dropped]
    details = [verdicts[i][1] for i in dropped]
    rejects.write(reject_rows(pa.concat_batches(picked), reasons, details))
    for piece in slices(batch, [i for i in range(batch.num_rows) if i not in verdicts]):
        kept.write(piece)


def slices(batch: pa.RecordBatch, rows: list[int]) -> list[pa.RecordBatch]:
    """The given (ascending) rows as zero-copy slices of the batch, one per run of consecutive
    rows. Arrow's `take` would copy every column of every row (and its first call imports
    pandas: 0.7 s)."""
    runs = []
    for _, run in groupby(enumerate(rows), key=lambda pair: pair[1] - pair[0]):
        members = [row for _, row in run]
        runs.append(batch.slice(members[0], len(members)))
    return runs


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
