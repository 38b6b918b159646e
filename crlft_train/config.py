"""One validated dataclass of hyper-parameters, with the OpenChat paper's defaults.

The optimiser and schedule follow the paper: AdamW (β1 0.9, β2 0.95, ε 1e-5, weight decay 0.1),
linear warm-up then cosine decay to 10% of the peak. `--lr auto` scales the peak learning rate with
the square root of the tokens per optimiser step (see `auto_peak_lr`). An optimiser step is
`accumulation_steps` packed micro-batches on each rank: `--batch-tokens` gives the global batch in
tokens (the paper's is ~200k), whatever the number of ranks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

# `--lr auto`: a peak LR at a reference batch of 65,536 tokens per step, scaled by
# sqrt(tokens per step / 65,536). The reference LR depends on the regime: 2e-5 is a usual full
# fine-tuning peak for pretrained 7B-13B Llama-family models; a small model trained from random
# initialisation (the tiny preset, the benchmarks) needs far more, so models under 100M parameters
# use 1e-3.
AUTO_LR_REFERENCE_TOKENS = 65_536
AUTO_LR_SMALL_MODEL = 1e-3
AUTO_LR_FINETUNE = 2e-5
# LoRA adapters start at zero and move a few parameters: the usual peak is 10× full fine-tuning's
# (the QLoRA paper's 2e-4 for 7B–13B models).
AUTO_LR_LORA = 2e-4
SMALL_MODEL_PARAMS = 100_000_000


class Attention(StrEnum):
    """How packed sequences attend (see crlft_train.attention); a choice on the command line."""

    AUTO = "auto"  # varlen on CUDA when torch has its flash-attention varlen kernel, else padded
    VARLEN = "varlen"
    PADDED = "padded"


ATTENTION_MODES = tuple(mode.value for mode in Attention)


class Offload(StrEnum):
    """What ZeRO keeps in CPU memory instead of the GPU's (--offload)."""

    NONE = "none"
    OPTIMIZER = "optimizer"  # the optimiser states and fp32 master weights (ZeRO 1–3)
    PARAMS = "params"  # those and the 16-bit parameters themselves (ZeRO-3)


OFFLOAD_MODES = tuple(mode.value for mode in Offload)


class ConfigError(ValueError):
    """An invalid combination of options: printed as one line by the CLI."""


@dataclass
class TrainConfig:
    data: Path
    output: Path = Path("runs/crlft")
    model: Path | None = None
    model_config: str | None = "tiny"  # "tiny" preset or a config.json path; used when no model
    epochs: int = 5
    max_steps: int | None = None
    lr: float | None = None  # None = auto
    warmup_ratio: float = 0.03
    warmup_steps: int | None = None  # given: wins over warmup_ratio
    lr_min_ratio: float = 0.1  # the cosine ends at lr_min_ratio × peak
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-5
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0  # 0 = no clipping
    batch_max_len: int = 8192
    batch_tokens: int | None = None  # global tokens per optimiser step; None = one micro-batch/rank
    zero_stage: int = 0
    offload: str = "none"  # none | optimizer | params (see Offload)
    deepspeed_config: Path | None = None
    bf16: bool | None = None  # None = bf16 on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False
    attention: str = "auto"  # auto | varlen | padded (see crlft_train.attention)
    per_sequence_loss: bool = False
    chunked_loss: bool = True  # the LM head's cross-entropy in chunks (crlft_train.chunked_ce)
    lora_r: int = 0  # LoRA rank (crlft_train.lora); 0 = full fine-tuning
    lora_alpha: float | None = None  # None = lora_r (adapters scaled by 1)
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"  # peft's every-linear-layer-but-the-head, or "q_proj,v_proj"
    qlora: bool = False  # the frozen base in 4 bits (bitsandbytes NF4)
    save_adapter: bool = False  # final/ holds the adapter alone instead of the merged model
    seed: int = 0
    eval_every: int = 0  # 0 = only at the end (there is always a validation at the end)
    save_every: int = 0  # 0 = at the end only
    export_every: int = 0  # Hugging Face snapshots under snapshots/step-N; 0 = final/ only
    log_every: int = 1
    resume: bool = False
    overwrite: bool = False  # replace the run already in `output` (see run_folder)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be ≥ 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be ≥ 1, got {self.max_steps}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"--zero must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.batch_max_len < 16:
            raise ConfigError(f"--batch-max-len must be ≥ 16 tokens, got {self.batch_max_len}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number or 'auto', got {self.lr}")
        if self.attention not in ATTENTION_MODES:
            raise ConfigError(
                f"--attention must be one of {', '.join(ATTENTION_MODES)}, got {self.attention!r}"
            )
        if self.resume and self.overwrite:
            raise ConfigError(
                "--resume continues the run in --output and --overwrite replaces it: pass one"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"--warmup-steps must be ≥ 0, got {self.warmup_steps}")
        if not 0 <= self.lr_min_ratio <= 1:
            raise ConfigError(f"--lr-min-ratio must be in [0, 1], got {self.lr_min_ratio}")
        if not 0 < self.betas[1] < 1:
            raise ConfigError(f"--adam-beta2 must be in (0, 1), got {self.betas[1]}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("--weight-decay and --max-grad-norm must be ≥ 0")
        if self.batch_tokens is not None and self.batch_tokens < self.batch_max_len:
            raise ConfigError(
                f"--batch-tokens {self.batch_tokens} is less than one micro-batch "
                f"(--batch-max-len {self.batch_max_len}): raise it, or lower --batch-max-len"
            )
        self.validate_lora()

    def check_offload(self, zero_stage: int) -> None:
        """--offload against the ZeRO stage in effect (--zero, or a --deepspeed file's)."""
        if self.offload not in OFFLOAD_MODES:
            raise ConfigError(
                f"--offload must be one of {', '.join(OFFLOAD_MODES)}, got {self.offload!r}"
            )
        if self.offload == Offload.OPTIMIZER and zero_stage == 0:
            raise ConfigError("--offload optimizer needs ZeRO: add --zero 2 (or 1, or 3)")
        if self.offload == Offload.PARAMS and zero_stage != 3:
            raise ConfigError(f"--offload params needs --zero 3 (ZeRO stage {zero_stage} here)")

    def validate_lora(self) -> None:
        if self.lora_r < 0:
            raise ConfigError(f"--lora-r must be ≥ 0 (0: full fine-tuning), got {self.lora_r}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora_r == 0 and (self.qlora or self.save_adapter):
            flag = "--qlora" if self.qlora else "--save-adapter"
            raise ConfigError(f"{flag} is for LoRA runs: give --lora-r too (e.g. --lora-r 16)")
        if self.qlora and self.model is None:
            raise ConfigError("--qlora quantises a pretrained model: give --model")
        if self.lora_r and self.zero_stage == 3:
            raise ConfigError(
                "--lora-r with --zero 3 is not supported: the adapters are small and the frozen "
                "base is not partitioned; use --zero 2 (or 0/1)"
            )

    def lora_alpha_value(self) -> float:
        return float(self.lora_r) if self.lora_alpha is None else self.lora_alpha

    def lora_plan(self) -> str:
        """The LoRA settings that fix the trained tensors and their meaning: a resume keeps them."""
        if not self.lora_r:
            return "off"
        base = ", 4-bit base" if self.qlora else ""
        return (
            f"r {self.lora_r}, alpha {self.lora_alpha_value():g}, targets {self.lora_targets}"
            + base
        )

    def accumulation_steps(self, world: int) -> int:
        """Packed micro-batches per rank and optimiser step: --batch-tokens spread over
        --batch-max-len × ranks, rounded (at least 1). Without --batch-tokens, 1."""
        if self.batch_tokens is None:
            return 1
        return max(1, round(self.batch_tokens / (self.batch_max_len * world)))

    def step_token_capacity(self, world: int) -> int:
        """Tokens an optimiser step can hold: what `--lr auto` scales with."""
        return self.batch_max_len * world * self.accumulation_steps(world)

    def warmup_count(self, total_steps: int) -> int:
        """Warm-up steps: --warmup-steps, else --warmup-ratio of the run (at least 1 if > 0)."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        return max(1, round(total_steps * self.warmup_ratio)) if self.warmup_ratio > 0 else 0

    def to_json(self) -> dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        out["betas"] = list(self.betas)
        return out


def auto_peak_lr(tokens_per_step: int, num_params: int, lora: bool = False) -> float:
    """Peak LR scaled with sqrt(tokens per step / reference), as the paper scales it with batch."""
    if num_params < SMALL_MODEL_PARAMS:
        base = AUTO_LR_SMALL_MODEL
    else:
        base = AUTO_LR_LORA if lora else AUTO_LR_FINETUNE
    return base * math.sqrt(tokens_per_step / AUTO_LR_REFERENCE_TOKENS)


def lr_at(step: int, total_steps: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to `min_ratio × peak` at
    the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup - 1)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak * (min_ratio + (1 - min_ratio) * cosine)
