"""What the `tokenize` stage is asked to do: its options, the `--long` modes, its error type.

Nothing here imports numpy or pyarrow, so the CLI can import `LongMode` for its choices at
start-up without paying for the stage's heavy dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sharegpt_tools.tokenize import templates
from sharegpt_tools.tokenize.templates import Position, SystemFormat


class TokenizeError(Exception):
    """A user error (tokenizer unusable, --max-length too small...): one line, no traceback."""


class LongMode(StrEnum):
    SPLIT = "split"
    TRUNCATE = "truncate"
    DROP = "drop"


@dataclass(frozen=True)
class TokenizeOptions:
    tokenizer: Path
    position: Position = Position.BEFORE_SPEAKER
    max_length: int = 4096
    long: LongMode = LongMode.SPLIT
    system_format: SystemFormat = SystemFormat.OPENCHAT
    eot: str = templates.DEFAULT_EOT
    val_fraction: float = 0.01
    seed: int = 0
    batch_rows: int = 1024  # conversations per encode call

    def to_json(self) -> dict:
        return {
            "tokenizer": str(self.tokenizer),
            "position": str(self.position),
            "max_length": self.max_length,
            "long": str(self.long),
            "system_format": str(self.system_format),
            "eot": self.eot,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }
