"""`crlft-train`, `crlft-chat` and `crlft-eval`: thin commands over `train.train`, the final HF
folder and `condition_eval`.

This module imports neither torch nor DeepSpeed at the top: `--help` works without the `train`
extra, and a command run without it says how to install it (`require`) instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from crlft_train.config import Attention, Offload, TrainConfig

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
console = Console(stderr=True)
TRAIN_EXTRA = "pip install 'sharegpt-tools[train]'"
QLORA_EXTRA = "pip install 'sharegpt-tools[train,qlora]'"
# crlft-train's option defaults are TrainConfig's: declared once.
DEFAULT = SimpleNamespace(
    **{f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
)

MODEL = "Model"
LORA = "LoRA (peft)"
OPTIM = "Optimisation"
RUN = "Run"


def hide_flag_type_placeholders() -> None:
    """typer's help shows a `<bool>` type beside on/off flags as if they took a value; a flag's
    help row shows no type instead. (`sharegpt-tools` does the same for its commands: the two
    packages import nothing from each other.)"""
    option = typer.core.TyperOption
    shown = option.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: object) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    option.display_type_rich = display_type_rich  # type: ignore[method-assign]


hide_flag_type_placeholders()


def fail(message: str, code: int = 2) -> NoReturn:
    # Escaped: a message is text, and `sharegpt-tools[train]` would read as a markup tag.
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def require(command: str, *modules: str, extra: str = TRAIN_EXTRA) -> None:
    """One line naming the extra that installs a missing module (exit 2)."""
    missing = [name for name in modules if not importable(name)]
    if missing:
        names = " and ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        fail(f"{command} needs {names}, which {verb} not installed: {extra}")


def importable(name: str) -> bool:
    """Whether `import name` can find the module, without importing it (DeepSpeed takes seconds)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a module stubbed as None
        return False


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
    output: Annotated[Path, typer.Option(help="Run folder.", rich_help_panel=RUN)] = DEFAULT.output,
    model: Annotated[
        Path | None,
        typer.Option(help="Local Hugging Face causal LM folder.", rich_help_panel=MODEL),
    ] = DEFAULT.model,
    model_config: Annotated[
        str,
        typer.Option(
            help="Random-init model when no --model: 'tiny' or a config.json.",
            rich_help_panel=MODEL,
        ),
    ] = DEFAULT.model_config,
    lora_r: Annotated[
        int,
        typer.Option(
            min=0,
            help="Train rank-R LoRA adapters on the frozen model instead of all its weights "
            "(0: full fine-tuning). The new tokens' embedding rows train too.",
            rich_help_panel=LORA,
        ),
    ] = DEFAULT.lora_r,
    lora_alpha: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="LoRA alpha: adapters scaled by alpha / r (default: r, scale 1).",
            rich_help_panel=LORA,
        ),
    ] = DEFAULT.lora_alpha,
    lora_dropout: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.99, help="Dropout on the adapters' input.", rich_help_panel=LORA
        ),
    ] = DEFAULT.lora_dropout,
    lora_targets: Annotated[
        str,
        typer.Option(
            help="Layers that get adapters: 'all-linear' (every linear layer but the LM head) or "
            "module names, e.g. 'q_proj,k_proj,v_proj,o_proj'.",
            rich_help_panel=LORA,
        ),
    ] = DEFAULT.lora_targets,
    qlora: Annotated[
        bool,
        typer.Option(
            help="QLoRA: load the frozen --model in 4 bits (NF4, bitsandbytes).",
            rich_help_panel=LORA,
        ),
    ] = DEFAULT.qlora,
    save_adapter: Annotated[
        bool,
        typer.Option(
            help="final/ holds the adapter alone (load it with peft's AutoPeftModelForCausalLM) "
            "instead of the model with the adapters merged in.",
            rich_help_panel=LORA,
        ),
    ] = DEFAULT.save_adapter,
    epochs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Passes over the training split (--max-steps may stop sooner).",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.epochs,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps.", rich_help_panel=OPTIM)
    ] = DEFAULT.max_steps,
    lr: Annotated[
        str,
        typer.Option(
            help="Peak learning rate, or 'auto' (scaled with sqrt(tokens per step)). On --resume "
            "a different value wins over the checkpoint's from its step on.",
            rich_help_panel=OPTIM,
        ),
    ] = "auto",
    batch_max_len: Annotated[
        int,
        typer.Option(
            min=16, help="Tokens per packed micro-batch on each rank.", rich_help_panel=OPTIM
        ),
    ] = DEFAULT.batch_max_len,
    batch_tokens: Annotated[
        int | None,
        typer.Option(
            min=16,
            help="Global batch in tokens per optimiser step (the paper: 200000), on any number "
            "of ranks: each rank accumulates round(N / (--batch-max-len × ranks)) packed "
            "micro-batches per step. Default: one micro-batch per rank.",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.batch_tokens,
    warmup_ratio: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.99,
            help="Linear warm-up over this share of the steps.",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.warmup_ratio,
    warmup_steps: Annotated[
        int | None,
        typer.Option(
            min=0, help="Warm-up steps (wins over --warmup-ratio).", rich_help_panel=OPTIM
        ),
    ] = DEFAULT.warmup_steps,
    lr_min_ratio: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="The cosine decay ends at this share of the peak lr.",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.lr_min_ratio,
    weight_decay: Annotated[
        float,
        typer.Option(
            min=0.0, help="AdamW weight decay (not on biases and norms).", rich_help_panel=OPTIM
        ),
    ] = DEFAULT.weight_decay,
    adam_beta2: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="AdamW β2 (β1 is 0.9).", rich_help_panel=OPTIM),
    ] = DEFAULT.betas[1],
    max_grad_norm: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Clip the global gradient norm to this (0: no clipping).",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.max_grad_norm,
    per_sequence_loss: Annotated[
        bool,
        typer.Option(
            help="Normalise each conversation's weights by its supervised tokens first.",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.per_sequence_loss,
    chunked_loss: Annotated[
        bool,
        typer.Option(
            help="Compute the LM head's cross-entropy a chunk of tokens at a time, never holding "
            "the [tokens × vocab] logits (Llama, Mistral, Qwen heads; others and ZeRO-3 take the "
            "plain path).",
            rich_help_panel=OPTIM,
        ),
    ] = DEFAULT.chunked_loss,
    zero: Annotated[
        int, typer.Option(min=0, max=3, help="ZeRO stage.", rich_help_panel=RUN)
    ] = DEFAULT.zero_stage,
    offload: Annotated[
        Offload,
        typer.Option(
            help="Keep in CPU memory instead of the GPU's: 'optimizer' (the optimiser states and "
            "fp32 master weights; needs --zero 1-3) or 'params' (those and the parameters; "
            "--zero 3). Slower steps, far less GPU memory. NVMe: a --deepspeed file.",
            rich_help_panel=RUN,
            case_sensitive=False,
        ),
    ] = Offload.NONE,
    deepspeed: Annotated[
        Path | None,
        typer.Option(
            help="DeepSpeed JSON config to start from.",
            exists=True,
            dir_okay=False,
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.deepspeed_config,
    bf16: Annotated[
        bool | None,
        typer.Option(
            "--bf16/--fp32",
            help="Precision (default: bf16 on GPU, fp32 on CPU).",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.bf16,
    gradient_checkpointing: Annotated[
        bool,
        typer.Option(
            help="Recompute activations during backward: much less memory, about a third more "
            "compute per step.",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.gradient_checkpointing,
    attention: Annotated[
        Attention,
        typer.Option(
            help="How packed sequences attend: 'varlen' runs the packed row with flash-attention's "
            "variable-length kernel (CUDA; a slow reference elsewhere), 'padded' runs the "
            "sequences as padded sub-batches; 'auto' picks varlen on CUDA.",
            rich_help_panel=RUN,
            case_sensitive=False,
        ),
    ] = Attention.AUTO,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the run folder's newest loadable checkpoint. What fixes the data "
            "order and the saved state (DATA, --batch-max-len, --batch-tokens, --seed, the model, "
            "--zero, precision, ranks) must match it; other options (--lr, --epochs, --max-steps, "
            "--weight-decay, --eval-every...) may differ: the command line wins, and the run says "
            "which differ.",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.resume,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the run already in --output: its checkpoints, final/, snapshots/, "
            "metrics and TensorBoard files are removed first (without it, or --resume, a folder "
            "holding a run is refused).",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.overwrite,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the random initialisation and of the data order (shuffle and packing).",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.seed,
    eval_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="Validation loss every N steps (0: only at the end; there is always one at the "
            "end). Needs a validation split.",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.eval_every,
    save_every: Annotated[
        int,
        typer.Option(min=0, help="Checkpoint every N steps (0: at the end).", rich_help_panel=RUN),
    ] = DEFAULT.save_every,
    export_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also write a Hugging Face folder every N steps, under snapshots/step-N/ "
            "(to evaluate the model along the run).",
            rich_help_panel=RUN,
        ),
    ] = DEFAULT.export_every,
) -> None:
    """Train a class-conditioned policy with the C-RLFT reward-weighted loss (DeepSpeed).

    Runs as a single process, or under `deepspeed --num_gpus N` / `torchrun`.
    """
    require("crlft-train", "torch", "deepspeed", *(["peft"] if lora_r else []))
    if qlora:
        require("--qlora", "bitsandbytes", extra=QLORA_EXTRA)
    from crlft_train.checkpoint import CheckpointError
    from crlft_train.config import ConfigError, TrainConfig
    from crlft_train.data import DataError
    from crlft_train.model import ModelError
    from crlft_train.packing import SequenceTooLongError
    from crlft_train.train import TrainingError, train

    config = TrainConfig(
        data=data, output=output, model=model, model_config=model_config, epochs=epochs,
        max_steps=max_steps, lr=parse_lr(lr), batch_max_len=batch_max_len,
        batch_tokens=batch_tokens, warmup_ratio=warmup_ratio, warmup_steps=warmup_steps,
        lr_min_ratio=lr_min_ratio, weight_decay=weight_decay,
        betas=(DEFAULT.betas[0], adam_beta2), max_grad_norm=max_grad_norm,
        per_sequence_loss=per_sequence_loss, chunked_loss=chunked_loss, lora_r=lora_r,
        lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets,
        qlora=qlora, save_adapter=save_adapter, zero_stage=zero, offload=offload.value,
        deepspeed_config=deepspeed,
        bf16=bf16, gradient_checkpointing=gradient_checkpointing, attention=attention.value,
        resume=resume, overwrite=overwrite, seed=seed,
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
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Most tokens generated per answer (greedy decoding).")
    ] = 256,
) -> None:
    """Generate with the trained model and its chat template; --condition GPT3 shows what the
    sub-optimal condition produces (paper Fig. 5)."""
    require("crlft-chat", "torch")
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
    require("crlft-eval", "torch")
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    from crlft_train.chat import ChatError
    from crlft_train.condition_eval import evaluate_conditions, write_result
    from crlft_train.data import DataError
    from crlft_train.metrics import console

    columns = (*Progress.get_default_columns()[:2], MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
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
    import logging

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    # bitsandbytes (imported by peft) warns on some CPUs that it cannot download an optional
    # kernel from the Hub; its own fallback runs, and these machines are offline by design.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def command_app(command: Callable[..., None]) -> typer.Typer:
    """The one-command app `typer.run` would build (tests read its options through click)."""
    app = typer.Typer(add_completion=False)
    app.command()(command)
    return app


def main() -> None:
    quiet_transformers()
    command_app(train_command)()


def chat_main() -> None:
    quiet_transformers()
    command_app(chat_command)()


def eval_main() -> None:
    quiet_transformers()
    command_app(eval_command)()
