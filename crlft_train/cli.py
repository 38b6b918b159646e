"""`crlft-train` and `crlft-chat`: thin commands over `train.train` and the final HF folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
console = Console(stderr=True)

MODEL = "Model"
OPTIM = "Optimisation"
RUN = "Run"


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_lr(value: str) -> float | None:
    if value == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither 'auto' nor a number") from None


def train_command(
    data: Annotated[
        Path, typer.Argument(help="Workspace (uses DATA/tokenized/) or a tokenized folder.")
    ],
    output: Annotated[Path, typer.Option(help="Run folder.", rich_help_panel=RUN)] = Path(
        "runs/crlft"
    ),
    model: Annotated[
        Path | None,
        typer.Option(help="Local Hugging Face causal LM folder.", rich_help_panel=MODEL),
    ] = None,
    model_config: Annotated[
        str,
        typer.Option(
            help="Random-init model when no --model: 'tiny' or a config.json.",
            rich_help_panel=MODEL,
        ),
    ] = "tiny",
    epochs: Annotated[int, typer.Option(min=1, rich_help_panel=OPTIM)] = 5,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps.", rich_help_panel=OPTIM)
    ] = None,
    lr: Annotated[
        str,
        typer.Option(
            help="Peak learning rate, or 'auto' (scaled with sqrt(tokens per step)).",
            rich_help_panel=OPTIM,
        ),
    ] = "auto",
    batch_max_len: Annotated[
        int,
        typer.Option(
            min=16, help="Tokens per packed micro-batch on each rank.", rich_help_panel=OPTIM
        ),
    ] = 8192,
    per_sequence_loss: Annotated[
        bool,
        typer.Option(
            help="Normalise each conversation's weights by its supervised tokens first.",
            rich_help_panel=OPTIM,
        ),
    ] = False,
    zero: Annotated[int, typer.Option(min=0, max=3, help="ZeRO stage.", rich_help_panel=RUN)] = 0,
    deepspeed: Annotated[
        Path | None,
        typer.Option(
            help="DeepSpeed JSON config to start from.",
            exists=True,
            dir_okay=False,
            rich_help_panel=RUN,
        ),
    ] = None,
    bf16: Annotated[
        bool | None,
        typer.Option(
            "--bf16/--fp32",
            help="Precision (default: bf16 on GPU, fp32 on CPU).",
            rich_help_panel=RUN,
        ),
    ] = None,
    gradient_checkpointing: Annotated[bool, typer.Option(rich_help_panel=RUN)] = False,
    attention: Annotated[
        str,
        typer.Option(
            help="How packed sequences attend: 'varlen' runs the packed row with flash-attention's "
            "variable-length kernel (CUDA; a slow reference elsewhere), 'padded' runs the "
            "sequences as padded sub-batches; 'auto' picks varlen on CUDA.",
            rich_help_panel=RUN,
        ),
    ] = "auto",
    resume: Annotated[
        bool,
        typer.Option(help="Continue from the run folder's latest checkpoint.", rich_help_panel=RUN),
    ] = False,
    seed: Annotated[int, typer.Option(rich_help_panel=RUN)] = 0,
    eval_every: Annotated[int, typer.Option(min=0, rich_help_panel=RUN)] = 0,
    save_every: Annotated[
        int,
        typer.Option(min=0, help="Checkpoint every N steps (0: at the end).", rich_help_panel=RUN),
    ] = 0,
    export_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also write a Hugging Face folder every N steps, under snapshots/step-N/ "
            "(to evaluate the model along the run).",
            rich_help_panel=RUN,
        ),
    ] = 0,
) -> None:
    """Train a class-conditioned policy with the C-RLFT reward-weighted loss (DeepSpeed).

    Runs as a single process, or under `deepspeed --num_gpus N` / `torchrun`.
    """
    from crlft_train.checkpoint import CheckpointError
    from crlft_train.config import ConfigError, TrainConfig
    from crlft_train.data import DataError
    from crlft_train.model import ModelError
    from crlft_train.packing import SequenceTooLongError
    from crlft_train.train import TrainingError, train

    config = TrainConfig(
        data=data, output=output, model=model, model_config=model_config, epochs=epochs,
        max_steps=max_steps, lr=parse_lr(lr), batch_max_len=batch_max_len,
        per_sequence_loss=per_sequence_loss, zero_stage=zero, deepspeed_config=deepspeed,
        bf16=bf16, gradient_checkpointing=gradient_checkpointing, attention=attention,
        resume=resume, seed=seed,
        eval_every=eval_every, save_every=save_every, export_every=export_every,
    )  # fmt: skip
    try:
        final = train(config)
    except SequenceTooLongError as exc:
        fail(f"{exc}: raise --batch-max-len, or re-tokenize with a smaller --max-length")
    except (CheckpointError, ConfigError, DataError, ModelError, TrainingError) as exc:
        fail(str(exc))
    except EOFError as exc:  # click would print a bare "Aborted." and hide where it came from
        raise RuntimeError(f"unexpected end of a file: {exc}") from exc
    if final is not None:
        console.print(f"final Hugging Face model: [bold]{final}[/]")


def chat_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (uses RUN_DIR/final/) or a model.")],
    condition: Annotated[
        str | None, typer.Option(help="Condition tag to prompt with (default: the expert one).")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="One prompt; without it, an interactive chat.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 256,
) -> None:
    """Generate with the trained model and its chat template; --condition GPT3 shows what the
    sub-optimal condition produces (paper Fig. 5)."""
    from crlft_train.chat import ChatError, chat

    try:
        chat(run_dir, condition, prompt, max_new_tokens)
    except ChatError as exc:
        fail(str(exc))


def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (uses RUN_DIR/final/) or a model.")],
    data: Annotated[
        Path, typer.Argument(help="Workspace (uses DATA/tokenized/) or a tokenized folder.")
    ],
    batch_max_len: Annotated[int, typer.Option(min=16, help="Tokens per scored batch.")] = 4096,
) -> None:
    """Condition diagnostics: each validation class's loss under every class's condition tag.

    Writes RUN_DIR/condition_eval.json. A positive condition gap (expert responses are more likely
    under the expert tag than under the sub-optimal one) shows the conditions were learned.
    """
    from rich.progress import MofNCompleteColumn

    from crlft_train.chat import ChatError
    from crlft_train.condition_eval import evaluate_conditions, write_result
    from crlft_train.data import DataError
    from crlft_train.metrics import console
    from sharegpt_tools.cli.common import progress_bar

    try:
        with progress_bar(MofNCompleteColumn()) as bar:
            task = bar.add_task("scoring", total=None)
            table = evaluate_conditions(
                run_dir, data, batch_max_len,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (ChatError, DataError) as exc:
        fail(str(exc))
    console.print(condition_table(table))
    out = write_result(run_dir, data, table)
    console.print(f"written to [bold]{out}[/]")


def condition_table(table: object) -> object:
    """The class × condition losses as a rich table, with the condition gap per class."""
    from rich.table import Table

    from crlft_train.metrics import loss_or_dash

    view = Table(title="mean loss per supervised token: validation class × condition tag")
    view.add_column("class (data)")
    for tag, owner in table.conditions.items():
        view.add_column(f"under {tag or '(no tag)'} ({owner})", justify="right")
    view.add_column("condition gap", justify="right")
    view.add_column("tokens", justify="right")
    for name in table.classes:
        row = table.loss[name]
        gap = table.gap(name)
        gap_text = "—" if gap is None else f"{gap:+.4f}"
        view.add_row(
            name, *(loss_or_dash(row[tag], 4) for tag in table.conditions), gap_text,
            f"{table.tokens[name]:,}",
        )  # fmt: skip
    return view


def quiet_transformers() -> None:
    """No per-file progress bars when saving or loading a small model: the run prints its own."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def main() -> None:
    quiet_transformers()
    typer.run(train_command)


def chat_main() -> None:
    quiet_transformers()
    typer.run(chat_command)


def eval_main() -> None:
    quiet_transformers()
    typer.run(eval_command)
