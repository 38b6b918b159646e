"""`subsample`: keep a fraction of some classes — the paper's data-size experiments (Sec. 5.4).

Always samples from `labeled/`, never from a previous `subsampled/`, so ratios never compound.
Within a class, rows are ranked by a keyed hash of (seed, id) and the first round(ratio × n) are
kept: the selection is deterministic for a seed, and for one seed a smaller ratio keeps a subset of
what a larger one keeps (0.6 ⊂ 0.8 ⊂ 1.0), so the Fig. 6 curves compare nested datasets.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    StageError,
    Workspace,
    stage_manifest,
    write_json_atomic,
)


@dataclass
class SubsampleResult:
    stage: Path
    manifest: dict
    before: dict[str, int]
    after: dict[str, int]


def kept_count(ratio: float, n: int) -> int:
    """round(ratio × n), halves rounded up (Python's round() would round 2.5 down to 2)."""
    return math.floor(ratio * n + 0.5)


def rank_key(seed: int, row_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def check_ratios(ratios: dict[str, float], classes: list[str]) -> None:
    for name, ratio in ratios.items():
        if name not in classes:
            raise StageError(
                f"--class {name!r} is not a class of labeled/ (classes: {', '.join(classes)})"
            )
        if not 0.0 <= ratio <= 1.0 or math.isnan(ratio):
            raise StageError(f"--ratio {ratio} for class {name!r} must be between 0 and 1")


def select_rows(frame: pl.DataFrame, ratios: dict[str, float], seed: int) -> pl.DataFrame:
    """The rows kept, in their original order."""
    ranked = frame.with_row_index("_row").with_columns(
        pl.col("id").map_elements(lambda i: rank_key(seed, i), return_dtype=pl.UInt64).alias("_key")
    )
    kept = []
    for name, group in ranked.group_by("class", maintain_order=True):
        ratio = ratios.get(str(name[0]), 1.0)
        kept.append(group.sort("_key").head(kept_count(ratio, group.height)))
    if not kept:
        return frame.clear()
    return pl.concat(kept).sort("_row").drop("_row", "_key")


def class_counts(frame: pl.DataFrame) -> dict[str, int]:
    return dict(frame.group_by("class", maintain_order=True).len().iter_rows())


def run_subsample(workspace: Workspace, ratios: dict[str, float], seed: int = 0) -> SubsampleResult:
    started = time.perf_counter()
    parent = workspace.require("labeled")
    frame = pl.read_parquet(workspace.stage("labeled") / CONVERSATIONS)
    before = class_counts(frame)
    check_ratios(ratios, list(before))
    kept = select_rows(frame, ratios, seed)
    after = {name: class_counts(kept).get(name, 0) for name in before}
    with workspace.writing_stage("subsampled") as out:
        kept.write_parquet(out / CONVERSATIONS, compression="zstd")
        manifest = stage_manifest(
            "subsampled",
            {"ratios": ratios, "seed": seed},
            {"in": frame.height, "kept": kept.height, "before": before, "after": after},
            {"total_s": time.perf_counter() - started},
            parent=parent,
            files={"conversations": CONVERSATIONS},
        )
        write_json_atomic(out / MANIFEST, manifest)
    return SubsampleResult(workspace.stage("subsampled"), manifest, before, after)
