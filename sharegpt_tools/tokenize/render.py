"""Tokenized rows as the model sees them: each row decoded with the folder's own tokenizer, every
run of equally weighted tokens styled by its weight (what `sharegpt-tools render` prints)."""

from __future__ import annotations

import random
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

FULL_WEIGHT = "bold black on green"
PART_WEIGHT = "black on yellow"
NO_WEIGHT = "dim"
SHOWN_AS_IS = "\n\t"  # the only control characters printed raw: the row's own layout


class Split(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"


class RenderError(ValueError):
    """No such split, id or row: one line for the CLI."""


def chosen_rows(
    stage: Path, split: Split, conversation_id: str | None, sample: int, seed: int
) -> tuple[Any, list[int]]:
    """The split of a tokenized folder and the indices to show: every row (piece) of
    `conversation_id`, else `sample` random rows in file order."""
    import datasets
    import pyarrow.compute as pc

    splits = datasets.load_from_disk(str(stage))
    if split not in splits:
        raise RenderError(f"{stage} has no split {split.value!r} (it has {', '.join(splits)})")
    rows = splits[split]
    if conversation_id is not None:
        hits = pc.indices_nonzero(pc.equal(rows.data.column("id"), conversation_id)).to_pylist()
        if not hits:
            raise RenderError(f"no row with id {conversation_id!r} in the {split} split of {stage}")
        return rows, hits
    if len(rows) == 0:
        raise RenderError(f"the {split} split of {stage} is empty")
    return rows, sorted(random.Random(seed).sample(range(len(rows)), min(sample, len(rows))))


def print_rows(out: Console, stage: Path, rows: Any, hits: list[int], split: Split) -> None:
    """The weight legend, then each chosen row: a title, its highlighted text, its counts."""
    from transformers import AutoTokenizer

    from sharegpt_tools.tokenize.chat_tokenizer import TOKENIZER_DIR

    tokenizer = AutoTokenizer.from_pretrained(str(stage / TOKENIZER_DIR), local_files_only=True)
    out.print(
        Text.assemble(
            "weight: ", ("1", FULL_WEIGHT), "  ", ("0 < w < 1", PART_WEIGHT), "  ", ("0", NO_WEIGHT)
        )
    )
    for index in hits:
        row = rows[index]
        title = f"{row['id']}  piece {row['piece']}  class {row['class']}  ({split} row {index})"
        out.rule(Text(visible_controls(title)))  # Text: brackets in an id are not rich markup
        out.print(highlighted(tokenizer, row["input_ids"], row["loss_weights"]))
        out.print(row_summary(row))


def row_summary(row: dict) -> str:
    """Token count, supervised tokens with their distinct weights, and the class."""
    weights = sorted({round(w, 4) for w in row["loss_weights"] if w > 0})
    supervised = sum(1 for w in row["loss_weights"] if w > 0)
    return (
        f"{row['length']:,} tokens, {supervised:,} supervised "
        f"(weights {', '.join(f'{w:g}' for w in weights) or 'none'}), class {row['class']}"
    )


def highlighted(tokenizer: Any, input_ids: list[int], weights: list[float]) -> Text:
    """The decoded row, one style per run of equally weighted tokens."""
    text = Text()
    start = 0
    for end in range(1, len(input_ids) + 1):
        if end == len(input_ids) or weights[end] != weights[start]:
            piece = tokenizer.decode(
                input_ids[start:end], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            text.append(visible_controls(piece), style=style_of(weights[start]))
            start = end
    return text


def visible_controls(text: str) -> str:
    """Control characters of the data (an ANSI escape in a pasted terminal log, a bell) as
    `\\x1b`-style text: printed raw they would restyle or garble the user's terminal."""
    if text.isprintable():
        return text
    return "".join(
        f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" and c not in SHOWN_AS_IS else c
        for c in text
    )


def style_of(weight: float) -> str:
    if weight >= 1.0:
        return FULL_WEIGHT
    return PART_WEIGHT if weight > 0 else NO_WEIGHT
