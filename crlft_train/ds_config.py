"""A user's DeepSpeed JSON, checked before training starts.

DeepSpeed validates the inside of its sections (`zero_optimization.bogus` is refused) but
silently ignores an unknown top-level key, so a typo such as `zero_optimisation` would train
without ZeRO. Unknown top-level keys are refused here, with the closest known key as a hint.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from crlft_train.config import ConfigError

# Top-level sections DeepSpeed reads that are not among `deepspeed.runtime.constants`.
SECTIONS = {
    "zero_optimization", "activation_checkpointing", "flops_profiler", "tensorboard", "wandb",
    "csv_monitor", "comet", "monitor_config", "comms_logger", "aio", "elasticity", "amp",
    "compression_training", "data_efficiency", "autotuning", "nebula", "sparse_attention",
    "pipeline", "curriculum_learning", "sparse_gradients", "gradient_predivide_factor",
    "zero_allow_untested_optimizer", "weight_quantization", "hybrid_engine", "eigenvalue",
    "progressive_layer_drop", "quantize_training", "checkpoint", "timers", "dataloader_drop_last",
    "seq_parallel_communication_data_type", "graph_harvesting", "compile",
    "use_data_before_expert_parallelism",
}  # fmt: skip


def known_keys() -> set[str]:
    import deepspeed.runtime.constants as constants

    names = {
        value
        for name, value in vars(constants).items()
        if name.isupper() and isinstance(value, str) and value.isidentifier()
    }
    return names | SECTIONS


def load_deepspeed_config(path: Path) -> dict:
    """The parsed JSON, or a ConfigError naming the file and the offending key."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a DeepSpeed config is a JSON object")
    known = known_keys()
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}: unknown DeepSpeed config key {key!r}{hint}")
    check_sections(path, config)
    return config


def check_sections(path: Path, config: dict) -> None:
    """DeepSpeed's own validation of the sections, reported as one line."""
    from deepspeed.runtime.config import DeepSpeedConfig
    from pydantic import ValidationError

    probe = {**config, "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1}
    probe.pop("train_batch_size", None)
    try:
        DeepSpeedConfig(probe, mpu=None)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: {exc.title}: {where}: {first['msg']}") from exc
