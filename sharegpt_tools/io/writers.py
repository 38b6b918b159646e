"""Parquet writing in bounded batches: rows are buffered and flushed as row groups."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq


class ParquetBatchWriter:
    """Append dict rows; every `flush_rows` rows become one row group, so memory stays flat."""

    def __init__(self, path: Path, schema: pa.Schema, flush_rows: int = 2000) -> None:
        self.path = path
        self.schema = schema
        self.flush_rows = flush_rows
        self.rows_written = 0
        self._buffer: list[dict] = []
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")

    def write(self, row: dict) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self.rows_written += len(self._buffer)
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self) -> ParquetBatchWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
