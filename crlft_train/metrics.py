"""Step metrics to metrics.jsonl, TensorBoard event files and the terminal (rank 0 only)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import TracebackType

from rich.console import Console

from crlft_contract import CLASS_LOSS_PREFIX, Metric

console = Console(stderr=True)


class MetricsLog:
    """metrics.jsonl and TensorBoard. `resume_step`: continue a run resumed from that step's
    checkpoint: records after it (logged before the run stopped) are dropped first, so that every
    step appears once; `validated_steps` then tells which kept steps already have a validation."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.validated_steps: set[int] = set()
        self._handle = None
        self._tensorboard = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            kept = truncate_to_step(self.path, resume_step)
            self.validated_steps = {r[Metric.STEP] for r in kept if Metric.VAL_LOSS in r}
        self._handle = self.path.open("w" if resume_step is None else "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides the events of the dropped steps from TensorBoard as well.
            purge = None if resume_step is None else resume_step + 1
            self._tensorboard = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
        except ImportError:  # tensorboard is optional: metrics.jsonl has everything
            self._tensorboard = None

    def log(self, record: dict) -> None:
        if not self.enabled or self._handle is None:
            return
        self._handle.write(json.dumps(finite_or_null(record), allow_nan=False) + "\n")
        self._handle.flush()
        if self._tensorboard is not None:
            step = record[Metric.STEP]
            for key, value in record.items():
                if key != Metric.STEP and isinstance(value, int | float) and math.isfinite(value):
                    self._tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._tensorboard is not None:
            self._tensorboard.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def truncate_to_step(path: Path, step: int) -> list[dict]:
    """Keep the records of steps ≤ `step` (temp + rename: a crash leaves the old file); the kept.

    A line that does not parse is the torn last write of a killed run: dropped with the rest.
    """
    if not path.is_file():
        return []
    kept_lines, kept = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        logged = record.get(Metric.STEP) if isinstance(record, dict) else None
        if isinstance(logged, int) and logged <= step:
            kept_lines.append(line)
            kept.append(record)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in kept_lines))
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
    return kept


def loss_or_dash(value: float | None, digits: int = 3) -> str:
    """A class's loss, or a dash when the class had no supervised token."""
    return "—" if value is None else f"{value:.{digits}f}"


def finite_or_null(record: dict) -> dict:
    """NaN and ±inf as null: metrics.jsonl stays valid JSON (metrics.schema.json)."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in record.items()
    }


def summary_line(record: dict) -> str:
    classes = " ".join(
        f"{key.removeprefix(CLASS_LOSS_PREFIX)} {loss_or_dash(value)}"
        for key, value in record.items()
        if key.startswith(CLASS_LOSS_PREFIX)
    )
    return (
        f"step {record[Metric.STEP]:>5}  loss {record[Metric.LOSS]:.4f}  ({classes})  "
        f"lr {record[Metric.LR]:.2e}  {record[Metric.TOKENS_PER_S]:,.0f} tok/s  "
        f"pack {record[Metric.PACKING_EFFICIENCY]:.1%}"
    )
