"""`sharegpt-tools render`: tokenized rows as the model sees them, weighted tokens highlighted."""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from sharegpt_tools.cli.common import WorkspaceOption, fail

FULL_WEIGHT = "bold black on green"
PART_WEIGHT = "black on yellow"
NO_WEIGHT = "dim"
SHOWN_AS_IS = "\n\t"  # the only control characters printed raw: the row's own layout


class Split(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"


def render(
    id_: Annotated[
        str | None,
        typer.Option("--id", help="Show every row (piece) of this conversation id."),
    ] = None,
    sample: Annotated[
        int, typer.Option(min=1, help="Without --id: how many random rows to show.")
    ] = 1,
    split: Annotated[Split, typer.Option(help="Split to read.")] = Split.TRAIN,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Print rows of [bold]WORKSPACE/tokenized/[/] decoded with its own tokenizer: tokens with
    weight 1 on [bold black on green]green[/], 0 < weight < 1 on [black on yellow]yellow[/],
    weight 0 [dim]dim[/]; then token count, supervised tokens and class."""
    import random

    import pyarrow.compute as pc

    from sharegpt_tools.tokenize.chat_tokenizer import TOKENIZER_DIR
    from sharegpt_tools.workspace import StageError, Workspace

    ws = Workspace(workspace)
    try:
        ws.require("tokenized")
    except StageError as exc:
        fail(str(exc))
    import datasets
    from transformers import AutoTokenizer

    stage = ws.stage("tokenized")
    splits = datasets.load_from_disk(str(stage))
    if split not in splits:
        fail(f"{stage} has no split {split.value!r} (it has {', '.join(splits)})")
    rows = splits[split]
    if id_ is not None:
        hits = pc.indices_nonzero(pc.equal(rows.data.column("id"), id_)).to_pylist()
        if not hits:
            fail(f"no row with id {id_!r} in the {split} split of {stage}")
    elif len(rows) == 0:
        fail(f"the {split} split of {stage} is empty")
    else:
        hits = sorted(random.Random(seed).sample(range(len(rows)), min(sample, len(rows))))
    tokenizer = AutoTokenizer.from_pretrained(str(stage / TOKENIZER_DIR), local_files_only=True)
    out = Console(highlight=False)
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
        weights = sorted({round(w, 4) for w in row["loss_weights"] if w > 0})
        supervised = sum(1 for w in row["loss_weights"] if w > 0)
        out.print(
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
