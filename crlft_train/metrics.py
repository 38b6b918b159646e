"""Step metrics to metrics.jsonl, TensorBoard event files and the terminal (rank 0 only)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import TracebackType

from rich.console import Console

console = Console(stderr=True)


class MetricsLog:
    def __init__(self, run_dir: Path, enabled: bool, resume: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self._handle = None
        self._tensorboard = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a" if resume else "w", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional: metrics.jsonl has everything
            self._tensorboard = None

    def log(self, record: dict) -> None:
        if not self.enabled or self._handle is None:
            return
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        if self._tensorboard is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
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


def loss_or_dash(value: float | None, digits: int = 3) -> str:
    """A class's loss, or a dash when the class had no supervised token."""
    return "—" if value is None else f"{value:.{digits}f}"


def summary_line(record: dict) -> str:
    classes = " ".join(
        f"{key.removeprefix('loss/')} {loss_or_dash(value)}"
        for key, value in record.items()
        if key.startswith("loss/")
    )
    return (
        f"step {record['step']:>5}  loss {record['loss']:.4f}  ({classes})  "
        f"lr {record['lr']:.2e}  {record['tokens_per_s']:,.0f} tok/s  "
        f"pack {record['packing_efficiency']:.1%}"
    )
