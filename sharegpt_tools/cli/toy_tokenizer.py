"""`sharegpt-tools toy-tokenizer`: train a small byte-level BPE locally (no downloads here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sharegpt_tools.cli.common import WorkspaceOption, console, fail
from sharegpt_tools.synthetic.toy_tokenizer import DEFAULT_VOCAB_SIZE, MIN_VOCAB_SIZE


def toy_tokenizer(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Texts to train on: plain-text files (one text per line) or conversation "
            ".parquet files. Default: WORKSPACE/clean/conversations.parquet.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Tokenizer folder to write (default WORKSPACE/tokenizer).",
            file_okay=False,
        ),
    ] = None,
    vocab_size: Annotated[
        int,
        typer.Option(
            min=MIN_VOCAB_SIZE,
            help=f"Vocabulary size; {MIN_VOCAB_SIZE} (the 256 bytes + 4 special tokens) learns "
            "no merges: a byte-level tokenizer, one token per ASCII character.",
        ),
    ] = DEFAULT_VOCAB_SIZE,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Train a byte-level BPE tokenizer (`<s>`, `</s>`, `<unk>`, `<pad>`) with `tokenizers` and
    save it as a Hugging Face folder that `AutoTokenizer.from_pretrained` loads: for the demo and
    the tests, in place of a downloaded model's tokenizer."""
    import itertools

    from sharegpt_tools.synthetic.toy_tokenizer import file_texts, stage_texts, train_toy_tokenizer
    from sharegpt_tools.workspace import CONVERSATIONS, StageError, Workspace

    ws = Workspace(workspace)
    if files:
        sources = [str(f) for f in files]
        texts = itertools.chain.from_iterable(
            stage_texts(f) if f.suffix == ".parquet" else file_texts([f]) for f in files
        )
    else:
        try:
            ws.require("clean")
        except StageError as exc:
            fail(str(exc))
        parquet = ws.stage("clean") / CONVERSATIONS
        sources = [str(parquet)]
        texts = stage_texts(parquet)
    out = output or ws.root / "tokenizer"
    console.print(f"training a {vocab_size:,}-token byte-level BPE on {', '.join(sources)}")
    train_toy_tokenizer(texts, out, vocab_size)
    console.print(f"wrote [bold]{out}[/] (tokenizer.json, tokenizer_config.json)", highlight=False)
