"""`sharegpt-tools tokenize`: labeled/ (or subsampled/) → tokenized/ (the trainer's contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import MofNCompleteColumn, TextColumn
from rich.table import Table

from sharegpt_tools.cli.common import WorkspaceOption, console, defaults, fail, progress_bar
from sharegpt_tools.tokenize.options import LongMode, TokenizeOptions
from sharegpt_tools.tokenize.templates import Position, SystemFormat

DEFAULT = defaults(TokenizeOptions)

TEMPLATE = "Template"
LENGTH = "Length"
SPLIT = "Validation split"
IO = "Input and output"


def tokenize(
    tokenizer: Annotated[
        Path,
        typer.Option(
            help="Local Hugging Face tokenizer folder (fast tokenizer: tokenizer.json).",
            file_okay=False,
            rich_help_panel=IO,
        ),
    ],
    position: Annotated[
        Position,
        typer.Option(
            help="Where the condition tag goes (paper App. A); none = ablation without tags.",
            rich_help_panel=TEMPLATE,
        ),
    ] = DEFAULT.position,
    system_format: Annotated[
        SystemFormat,
        typer.Option(
            help="A leading system turn: openchat = the bare text closed by the end-of-turn "
            "token, as OpenChat writes it; prefixed = `System: ` before it.",
            rich_help_panel=TEMPLATE,
        ),
    ] = DEFAULT.system_format,
    eot: Annotated[
        str,
        typer.Option(
            help="End-of-turn special token (added to the tokenizer when missing).",
            rich_help_panel=TEMPLATE,
        ),
    ] = DEFAULT.eot,
    max_length: Annotated[
        int,
        typer.Option(min=1, help="Longest row in tokens.", rich_help_panel=LENGTH),
    ] = DEFAULT.max_length,
    long: Annotated[
        LongMode,
        typer.Option(
            help="Longer conversations: split at exchange boundaries (header repeated), "
            "truncate to the first --max-length tokens, or drop.",
            rich_help_panel=LENGTH,
        ),
    ] = DEFAULT.long,
    val_fraction: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Share of conversations in the validation split (0 = no validation split).",
            rich_help_panel=SPLIT,
        ),
    ] = DEFAULT.val_fraction,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the split: a conversation's split depends on (id, seed) only.",
            rich_help_panel=SPLIT,
        ),
    ] = DEFAULT.seed,
    input_dir: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Stage folder to read instead of subsampled/ or labeled/.",
            exists=True,
            file_okay=False,
            rich_help_panel=IO,
        ),
    ] = None,
    workspace: WorkspaceOption = Path("data"),
) -> None:
    """Tokenize [bold]WORKSPACE/subsampled/[/] (when it is up to date with labeled/) or
    [bold]WORKSPACE/labeled/[/] into [bold]WORKSPACE/tokenized/[/]: a Hugging Face `datasets`
    folder with input_ids, labels (-100 where no loss), loss_weights, attention_mask, length, class,
    id and piece, plus the tokenizer with the end-of-turn token and a manifest.

    Assistant tokens and the end-of-turn closing them get class weight × turn weight.

    Everything else gets weight 0; text inside turns is plain text, never control tokens.
    """
    from sharegpt_tools.tokenize.options import TokenizeError
    from sharegpt_tools.tokenize.stage import resolve_input, run_tokenize
    from sharegpt_tools.workspace import StageError, Workspace

    options = TokenizeOptions(
        tokenizer=tokenizer,
        position=position,
        max_length=max_length,
        long=long,
        system_format=system_format,
        eot=eot,
        val_fraction=val_fraction,
        seed=seed,
    )
    ws = Workspace(workspace)
    try:
        source = resolve_input(ws, input_dir)
        console.print(f"reading [bold]{source.path}[/] ({source.note})", highlight=False)
        with progress_bar(
            MofNCompleteColumn(), TextColumn("conversations, {task.fields[tokens]:,} tokens")
        ) as bar:
            task = bar.add_task("tokenizing", total=None, tokens=0)

            def report(done: int, total: int, tokens: int) -> None:
                bar.update(task, completed=done, total=total, tokens=tokens)

            result = run_tokenize(ws, options, input_dir, progress=report)
    except (StageError, TokenizeError) as exc:
        fail(str(exc))
    print_summary(result.manifest)
    console.print(
        f"wrote [bold]{result.stage}[/] (train"
        + (", validation" if "validation" in result.manifest["splits"] else "")
        + ", tokenizer/, manifest.json)",
        highlight=False,
    )


def section_style(tokenizer: dict) -> str:
    """How the tokenizer starts the text after BOS / end-of-turn, as the rows were built."""
    if not tokenizer.get("dummy_prefix"):
        return "no word-start prefix (byte-level style)"
    if tokenizer.get("word_start_after_special_tokens"):
        return "SentencePiece word-start ▁ after every special token (legacy, as OpenChat)"
    return "SentencePiece word-start ▁ only at the start of a text (legacy: false)"


def unsupervised_classes(manifest: dict) -> list[str]:
    """One warning per class that has a reward but kept no supervised token: it would train
    nothing (all of it, at loss 0, when every class is so), which no exit code would reveal."""
    warnings = []
    for name, stats in manifest["counts"]["by_class"].items():
        weight = manifest["templates"]["by_class"].get(name, {}).get("weight")
        if stats.get("supervised_tokens", 0) == 0 and weight != 0:
            warnings.append(
                f"class {name} has no supervised token left (--max-length "
                f"{manifest['max_length']:,}, --long {manifest['long']}): the model learns "
                "nothing from it; raise --max-length or use --long split"
            )
    return warnings


def print_summary(manifest: dict) -> None:
    counts = manifest["counts"]
    templates = manifest["templates"]["by_class"]
    table = Table(title=f"tokenize ({manifest['templates']['position']})", header_style="bold")
    for column in ("class", "weight", "conversations", "rows", "tokens", "supervised"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, stats in counts["by_class"].items():
        weight = templates.get(name, {}).get("weight")
        table.add_row(
            name,
            "" if weight is None else f"{weight:g}",
            f"{stats.get('conversations_out', 0):,} / {stats.get('conversations_in', 0):,}",
            f"{stats.get('rows', 0):,}",
            f"{stats.get('tokens', 0):,}",
            f"{stats.get('supervised_tokens', 0):,}",
        )
    table.add_section()
    table.add_row(
        "all", "", f"{counts['conversations_in']:,}", f"{counts['rows']:,}",
        f"{counts['tokens']:,}", f"{counts['supervised_tokens']:,}", style="bold",
    )  # fmt: skip
    console.print(table)
    for warning in unsupervised_classes(manifest):
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    lines = [
        f"max length {manifest['max_length']:,}, --long {manifest['long']}: "
        f"{counts['long_conversations']:,} longer; {counts['split_conversations']:,} split into "
        f"{counts['pieces_from_splits']:,} pieces ({counts['truncated_exchanges']:,} exchanges "
        f"truncated); {counts['truncated_conversations']:,} truncated; "
        f"{counts['dropped_too_long']:,} dropped",
        f"rows dropped with no supervised token left: "
        f"{counts['dropped_no_supervision_after_truncation']:,}; rows kept whose turns all "
        f"have weight 0: {counts['rows_without_supervision']:,}",
        "splits: " + ", ".join(f"{k} {v:,} rows" for k, v in counts["rows_by_split"].items()),
    ]
    tokenizer = manifest["tokenizer"]
    added = ", ".join(tokenizer["added_special_tokens"]) or "nothing"
    lines.append(
        f"tokenizer {tokenizer['class']}: vocab {tokenizer['vocab_size_before']:,} → "
        f"{tokenizer['vocab_size_after']:,} (added {added}); {section_style(tokenizer)}"
    )
    console.print("\n".join(lines), highlight=False, markup=False)
