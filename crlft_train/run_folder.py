"""The run folder (--output): never replace a run by accident, and what --resume may change.

A folder that already holds a run (checkpoints, metrics.jsonl, final/ or snapshots/) is refused
unless --resume continues it or --overwrite replaces it: a fresh run would rewrite metrics.jsonl
and final/ and move `latest` while the old checkpoints stayed, a mix of two runs.

On --resume the options a checkpoint recorded (`crlft_run.json`) are compared with this run's:

* the *plan* fixes the data order, the packed batches and the layout of the saved state (the
  data, --batch-max-len, --seed, the number of ranks, the ZeRO stage, the precision, the model's
  parameters): it must match, or the resumed run would not continue the same run; refused.
* the *options* (--lr, --epochs, --max-steps, --eval-every, ...) may change: the command line
  wins, and the learning-rate schedule continues from the checkpoint's step with the new values.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from crlft_contract import Metric
from crlft_train.checkpoint import CHECKPOINTS, checkpoint_steps, newest_record, read_latest
from crlft_train.config import ConfigError

METRICS = "metrics.jsonl"
# Everything crlft-train (and crlft-eval) writes into a run folder: what --overwrite removes.
# Other files the user put there stay.
RUN_CONTENTS = (
    CHECKPOINTS, "final", ".final.tmp", "snapshots", "tensorboard", METRICS, f".{METRICS}.tmp",
    "condition_eval.json",
)  # fmt: skip

# Plan entries, as the user would name them in a message.
PLAN_NAMES = {
    "data_fingerprint": "DATA (tokenized fingerprint)",
    "sequences": "DATA (training sequences)",
    "batch_max_len": "--batch-max-len",
    "accumulation": "the micro-batches per rank and step (--batch-tokens)",
    "seed": "--seed",
    "world_size": "the number of ranks",
    "zero_stage": "the ZeRO stage (--zero, --deepspeed)",
    "offload": "the ZeRO offload (--offload, --deepspeed)",
    "precision": "the precision (--bf16/--fp32, --deepspeed)",
    "lora": "LoRA (--lora-r, --lora-alpha, --lora-targets, --qlora)",
}
OPTION_FLAGS = {
    "lr": "--lr",
    "warmup_ratio": "--warmup-ratio",
    "warmup_steps": "--warmup-steps",
    "lr_min_ratio": "--lr-min-ratio",
    "weight_decay": "--weight-decay",
    "adam_beta2": "--adam-beta2",
    "max_grad_norm": "--max-grad-norm",
    "epochs": "--epochs",
    "max_steps": "--max-steps",
    "per_sequence_loss": "--per-sequence-loss",
    "chunked_loss": "--chunked-loss",
    "lora_dropout": "--lora-dropout",
    "save_adapter": "--save-adapter",
    "gradient_checkpointing": "--gradient-checkpointing",
    "attention": "--attention",
    "eval_every": "--eval-every",
    "save_every": "--save-every",
    "export_every": "--export-every",
}


@dataclass
class ExistingRun:
    checkpoints: int
    step: int | None  # the newest checkpoint's step, else the last logged one

    def describe(self) -> str:
        plural = "" if self.checkpoints == 1 else "s"
        step = "step unknown" if self.step is None else f"step {self.step}"
        return f"{self.checkpoints} checkpoint{plural}, {step}"


def existing_run(output: Path) -> ExistingRun | None:
    """What of a run `output` holds, or None when it holds none (absent, empty, other files)."""
    folder = output / CHECKPOINTS
    steps = checkpoint_steps(folder) if folder.is_dir() else []
    if steps:
        latest = (read_latest(folder) or "").removeprefix("step-")
        step = int(latest) if latest.isdigit() and int(latest) in steps else steps[-1]
        return ExistingRun(len(steps), step)
    logged = last_logged_step(output / METRICS)
    if logged is not None or (output / "final").exists() or (output / "snapshots").exists():
        return ExistingRun(0, logged if logged is not None else exported_step(output / "final"))
    return None


def last_logged_step(metrics: Path) -> int | None:
    if not metrics.is_file():
        return None
    for line in reversed(metrics.read_text(encoding="utf-8").splitlines()):
        try:
            return int(json.loads(line)[Metric.STEP])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line of a killed run
    return None


def exported_step(final: Path) -> int | None:
    try:
        return int(json.loads((final / "crlft.json").read_text(encoding="utf-8"))["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_output(output: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder holding a run, unless told to continue or replace it."""
    if resume or overwrite:
        return
    found = existing_run(output)
    if found is not None:
        raise ConfigError(
            f"{output} already holds a run ({found.describe()}): pass --resume to continue it "
            "or --overwrite to replace it"
        )


def clear_run(output: Path) -> None:
    """--overwrite: remove what a previous run wrote (rank 0 only, before anything is written)."""
    for name in RUN_CONTENTS:
        path = output / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def show(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "none" if value is None else str(value)


def check_plan(output: Path, plan: dict) -> None:
    """Before anything is loaded: refuse a plan that differs from the newest checkpoint's."""
    found = newest_record(output)
    if found is None:
        return  # no checkpoint, or one written before records: the sampler still checks its plan
    tag, record = found
    recorded = record.get("plan", {})
    differences = [
        f"{PLAN_NAMES[key]} {show(plan.get(key))} (checkpoint: {show(recorded[key])})"
        for key in PLAN_NAMES
        if key in recorded and recorded[key] != plan.get(key)
    ]
    if differences:
        raise ConfigError(
            f"--resume: {'; '.join(differences)}. These fix the data order, the batches or the "
            f"saved state's layout, so they must match {output / CHECKPOINTS / tag}: pass the "
            "checkpoint's values, or --overwrite to start over"
        )


def check_model(output: Path, parameters: dict) -> None:
    """After the model is built, before the checkpoint is loaded into it: the same parameters?

    DeepSpeed would fail to load another architecture's state, and the failure would read as an
    unreadable checkpoint.
    """
    found = newest_record(output)
    recorded = found[1].get("parameters") if found else None
    if recorded is None or recorded == parameters:
        return
    raise ConfigError(
        f"--resume: the model ({parameters['count']:,} parameters, layout {parameters['digest']}) "
        f"is not the checkpoint's ({recorded['count']:,}, layout {recorded['digest']}): pass the "
        "--model / --model-config the run was started with, or --overwrite to start over"
    )


def option_changes(recorded: dict, current: dict) -> str | None:
    """The one-line notice of the options that differ from the checkpoint's, or None."""
    changed = [
        f"{flag} {show(current.get(key))} (checkpoint: {show(recorded[key])})"
        for key, flag in OPTION_FLAGS.items()
        if key in recorded and not same(recorded[key], current.get(key))
    ]
    if not changed:
        return None
    return (
        f"--resume: options differ from the checkpoint's: {'; '.join(changed)}; the command line "
        "wins (the learning-rate schedule continues from the checkpoint's step with these values)"
    )


def same(recorded: object, current: object) -> bool:
    if isinstance(recorded, float) and isinstance(current, float):
        return abs(recorded - current) <= 1e-12 * max(abs(recorded), abs(current))
    return recorded == current
