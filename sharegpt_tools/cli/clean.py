"""`sharegpt-tools clean`: raw dumps → data/clean/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import DownloadColumn, TextColumn
from rich.table import Table

from sharegpt_tools.clean import row_layout
from sharegpt_tools.clean.options import CleanOptions, LangBackend, UnknownAs
from sharegpt_tools.clean.refusals import RefusalMode
from sharegpt_tools.cli.common import WorkspaceOption, console, defaults, fail, progress_bar

DEFAULT = defaults(CleanOptions)

STRUCTURE = "Structure"
DEDUP = "Deduplication"
LANGUAGE = "Language"
MODEL = "Model attribution"
FIELDS = "Row fields (ShareGPT, messages, WildChat and LMSYS rows are detected)"
REFUSAL = "Refusals"
RUN = "Run"


def clean(
    raw: Annotated[
        list[Path],
        typer.Argument(
            help="Raw dumps: JSON array, JSON lines or Parquet (optionally .gz/.zst), or folders "
            "of them (shards, read in name order).",
            metavar="RAW",
            exists=True,
            readable=True,
        ),
    ],
    workspace: WorkspaceOption = Path("data"),
    html: Annotated[
        bool,
        typer.Option(
            help="Convert ChatGPT HTML in assistant turns to Markdown.", rich_help_panel=STRUCTURE
        ),
    ] = DEFAULT.html,
    min_turns: Annotated[
        int,
        typer.Option(
            min=2, help="Turns a conversation needs after repairs.", rich_help_panel=STRUCTURE
        ),
    ] = DEFAULT.min_turns,
    max_turn_chars: Annotated[
        int,
        typer.Option(
            min=0, help="Reject rows with a longer turn (0 = no limit).", rich_help_panel=STRUCTURE
        ),
    ] = DEFAULT.max_turn_chars,
    exact_dedup: Annotated[
        bool, typer.Option(help="Drop exact duplicates (case/space folded).", rich_help_panel=DEDUP)
    ] = DEFAULT.exact_dedup,
    near_dedup: Annotated[
        bool, typer.Option(help="Drop near duplicates (MinHash LSH).", rich_help_panel=DEDUP)
    ] = DEFAULT.near_dedup,
    near_threshold: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=1.0,
            help="Jaccard similarity counted as near duplicate.",
            rich_help_panel=DEDUP,
        ),
    ] = DEFAULT.near_threshold,
    near_ngram: Annotated[
        int,
        typer.Option(
            min=1, help="Word n-gram size of the MinHash shingles.", rich_help_panel=DEDUP
        ),
    ] = DEFAULT.near_ngram,
    num_perm: Annotated[
        int,
        typer.Option(
            min=16,
            help="MinHash signature length (bins of the one-permutation MinHash); more = a "
            "finer similarity estimate, a little slower.",
            rich_help_panel=DEDUP,
        ),
    ] = DEFAULT.num_perm,
    lang: Annotated[
        list[str] | None,
        typer.Option(
            help="Keep only these ISO codes (repeatable: --lang en --lang zh); und = undetermined.",
            rich_help_panel=LANGUAGE,
        ),
    ] = None,
    lang_backend: Annotated[
        LangBackend, typer.Option(help="Language identifier.", rich_help_panel=LANGUAGE)
    ] = DEFAULT.lang_backend,
    lang_threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Below this score the language is 'und'.",
            rich_help_panel=LANGUAGE,
        ),
    ] = DEFAULT.lang_threshold,
    unknown_as: Annotated[
        UnknownAs,
        typer.Option(
            help="What an unattributed row becomes (the paper counts non-GPT-4 as GPT-3.5).",
            rich_help_panel=MODEL,
        ),
    ] = DEFAULT.unknown_model_as,
    models: Annotated[
        Path | None,
        typer.Option(
            help="A model table (YAML: models: [{model: NAME, match: [REGEX, ...]}]) whose entries "
            "win over the built-in one's: how a spelling (gpt-4-0314, claude-2) becomes `model`.",
            exists=True,
            dir_okay=False,
            rich_help_panel=MODEL,
        ),
    ] = DEFAULT.models,
    id_field: Annotated[
        str | None,
        typer.Option(help="The rows' id field (default: detected).", rich_help_panel=FIELDS),
    ] = DEFAULT.id_field,
    turns_field: Annotated[
        str | None,
        typer.Option(help="The rows' list of turns (default: detected).", rich_help_panel=FIELDS),
    ] = DEFAULT.turns_field,
    role_field: Annotated[
        str | None,
        typer.Option(help="A turn's speaker field (default: from/role).", rich_help_panel=FIELDS),
    ] = DEFAULT.role_field,
    text_field: Annotated[
        str | None,
        typer.Option(help="A turn's text field (default: value/content).", rich_help_panel=FIELDS),
    ] = DEFAULT.text_field,
    model_field: Annotated[
        str | None,
        typer.Option(help="The rows' model field (default: model).", rich_help_panel=FIELDS),
    ] = DEFAULT.model_field,
    refusals: Annotated[
        RefusalMode,
        typer.Option(
            help="drop: reject; mark: keep and record the turns (label gives them weight 0); keep.",
            rich_help_panel=REFUSAL,
        ),
    ] = DEFAULT.refusals,
    refusal_phrases: Annotated[
        Path | None,
        typer.Option(
            help="File of phrases (one per line) replacing the built-in list.",
            exists=True,
            dir_okay=False,
            rich_help_panel=REFUSAL,
        ),
    ] = DEFAULT.refusal_phrases,
    workers: Annotated[
        int, typer.Option(min=0, help="Worker processes (0 = one per core).", rich_help_panel=RUN)
    ] = DEFAULT.workers,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Write an empty stage when the inputs hold no rows (else refuse, keep the old).",
            rich_help_panel=RUN,
        ),
    ] = False,
) -> None:
    """Clean raw ShareGPT dumps into [bold]WORKSPACE/clean/[/]: HTML → Markdown, structure checks,
    exact and near dedup, language ID, model attribution, refusal marking; ShareGPT, messages,
    WildChat and LMSYS rows.

    Every input row lands in conversations.parquet or, with a reason, in rejects.parquet.

    manifest.json counts them; the stage is replaced atomically at the end of the run.
    """
    from sharegpt_tools.clean.pipeline import run_clean
    from sharegpt_tools.io.readers import InputError
    from sharegpt_tools.workspace import StageError, Workspace

    options = CleanOptions(
        html=html,
        min_turns=min_turns,
        max_turn_chars=max_turn_chars,
        exact_dedup=exact_dedup,
        near_dedup=near_dedup,
        near_threshold=near_threshold,
        near_ngram=near_ngram,
        num_perm=num_perm,
        languages=tuple(code.strip().lower() for code in lang or ()),
        lang_backend=lang_backend,
        lang_threshold=lang_threshold,
        unknown_model_as=unknown_as,
        refusals=refusals,
        refusal_phrases=refusal_phrases,
        workers=workers,
        id_field=id_field,
        turns_field=turns_field,
        role_field=role_field,
        text_field=text_field,
        model_field=model_field,
        models=models,
    )
    check_model_table(models)
    files = expanded_inputs(list(raw))
    ws = Workspace(workspace)
    console.print(f"reading {', '.join(str(p) for p in raw)}")
    if not allow_empty:
        refuse_empty_inputs(files)
    with progress_bar(DownloadColumn(), TextColumn("{task.fields[rows]:,} rows")) as bar:
        task = bar.add_task("cleaning", total=None, rows=0)

        def report(done: int, total: int, rows: int) -> None:
            bar.update(task, completed=done, total=total, rows=rows)

        try:
            result = run_clean(files, ws, options, progress=report)
        except (InputError, StageError) as exc:  # StageError: e.g. the disk filled up
            bar.stop()
            fail(str(exc))
    print_layouts(result.manifest["inputs"])
    print_summary(result.counts)
    console.print(
        f"wrote [bold]{result.stage}[/] (conversations.parquet, rejects.parquet, manifest.json)"
    )


def check_model_table(path: Path | None) -> None:
    """A bad --models file is one line before any worker starts (each loads the table)."""
    from sharegpt_tools.clean.attribution import ModelTable, ModelTableError

    try:
        ModelTable.load(path)
    except ModelTableError as exc:
        fail(str(exc))


def expanded_inputs(raw: list[Path]) -> list[Path]:
    from sharegpt_tools.io.readers import InputError, expand_folders

    try:
        return expand_folders(raw)
    except InputError as exc:
        fail(str(exc))


def refuse_empty_inputs(raw: list[Path]) -> None:
    """Fail before the stage is touched when there is nothing to clean.

    An empty file or `[]` (a failed export, the wrong path) would otherwise replace a good
    `clean/` stage with an empty one. The peek reads only up to the first row.
    """
    from sharegpt_tools.io.readers import InputError, holds_rows

    try:
        empty = not holds_rows(raw)
    except InputError as exc:
        fail(str(exc))
    if empty:
        named = ", ".join(str(p) for p in raw)
        verb = "holds" if len(raw) == 1 else "hold"
        fail(
            f"{named} {verb} no rows; nothing was written — pass --allow-empty to write an empty "
            "stage"
        )


def print_layouts(inputs: list[dict]) -> None:
    """How each input was read: the layout decides what a row is, so it is shown, not guessed."""
    from sharegpt_tools.io.layout import describe

    for entry in inputs:
        rows = entry.get("rows", 0)
        console.print(
            f"{entry['path']}: {describe(entry)}, {rows:,} row{'' if rows == 1 else 's'}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def print_summary(counts: dict) -> None:
    table = Table(title="clean", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    total = max(counts["in"], 1)

    def row(label: str, value: int, style: str = "") -> None:
        table.add_row(label, f"{value:,}", f"{100 * value / total:.1f}%", style=style)

    row("in", counts["in"], "bold")
    row("kept", counts["kept"], "bold green")
    row("rejected", counts["rejected"], "bold red")
    for reason, value in counts["rejected_by_reason"].items():
        row(f"  {reason}", value)
    table.add_section()
    for layout, value in counts.get("row_layouts", {}).items():
        row(f"rows read as {row_layout.describe(layout)}", value)
    table.add_section()
    for model, value in counts["models"].items():
        row(f"model {model}", value)
    table.add_section()
    languages = list(counts["languages"].items())
    for language, value in languages[:8]:
        row(f"language {language}", value)
    if len(languages) > 8:
        row(f"language ({len(languages) - 8} more)", sum(v for _, v in languages[8:]))
    console.print(table)
