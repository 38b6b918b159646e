"""Pure pieces of the trainer: schedule, auto LR, embedding resize, DeepSpeed config checks."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from crlft_train.config import ConfigError, TrainConfig, auto_peak_lr, lr_at
from crlft_train.ds_config import load_deepspeed_config
from crlft_train.model import random_init_config, resize_embeddings


def test_schedule_warms_up_then_decays_to_ten_percent() -> None:
    warmup = TrainConfig(data=Path("d"), warmup_ratio=0.1).warmup_count(100)
    lrs = [lr_at(step, 100, 1.0, warmup, 0.1) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in pairwise(lrs[9:]))  # monotone decay after the warm-up
    assert lrs[-1] == pytest.approx(0.1)


def test_auto_lr_scales_with_the_square_root_of_tokens_per_step() -> None:
    small = auto_peak_lr(65_536, 10_000_000)
    assert small == pytest.approx(1e-3)
    assert auto_peak_lr(4 * 65_536, 10_000_000) == pytest.approx(2 * small)
    assert auto_peak_lr(65_536, 7_000_000_000) == pytest.approx(2e-5)


def test_warmup_steps_win_over_the_ratio_and_the_floor_is_lr_min_ratio() -> None:
    config = TrainConfig(data=Path("d"), warmup_ratio=0.5, warmup_steps=3, lr_min_ratio=0.25)
    assert config.warmup_count(100) == 3 and config.warmup_count(2) == 2
    lrs = [
        lr_at(step, 100, 2.0, config.warmup_count(100), config.lr_min_ratio) for step in range(100)
    ]
    assert lrs[:3] == pytest.approx([2 / 3, 4 / 3, 2.0]) and lrs[-1] == pytest.approx(0.5)
    assert TrainConfig(data=Path("d"), warmup_ratio=0.0).warmup_count(100) == 0


@pytest.mark.parametrize(
    ("world", "accumulation", "capacity"),
    [(1, 24, 196_608), (2, 12, 196_608), (3, 8, 196_608), (5, 5, 204_800), (8, 3, 196_608),
     (32, 1, 262_144)],
)  # fmt: skip
def test_batch_tokens_gives_about_the_same_global_batch_on_any_number_of_ranks(
    world: int, accumulation: int, capacity: int
) -> None:
    """The paper's ~200k tokens per step at --batch-max-len 8192; --lr auto scales with it."""
    config = TrainConfig(data=Path("d"), batch_tokens=200_000, batch_max_len=8192)
    assert config.accumulation_steps(world) == accumulation
    assert config.step_token_capacity(world) == capacity
    assert TrainConfig(data=Path("d")).accumulation_steps(world) == 1
    paper = auto_peak_lr(config.step_token_capacity(world), 13_000_000_000)
    assert paper == pytest.approx(2e-5 * math.sqrt(capacity / 65_536))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="--zero"):
        TrainConfig(data=Path("d"), zero_stage=4).validate()
    with pytest.raises(ConfigError, match="--lr"):
        TrainConfig(data=Path("d"), lr=math.nan).validate()
    with pytest.raises(ConfigError, match="--batch-tokens 4096 is less than one micro-batch"):
        TrainConfig(data=Path("d"), batch_tokens=4096).validate()
    for bad, flag in (
        ({"betas": (0.9, 1.0)}, "--adam-beta2"),
        ({"lr_min_ratio": 2.0}, "--lr-min"),
        ({"warmup_steps": -1}, "--warmup-steps"),
        ({"weight_decay": -1}, "--weight"),
    ):
        with pytest.raises(ConfigError, match=flag):
            TrainConfig(data=Path("d"), **bad).validate()


def test_new_embedding_rows_are_the_mean_of_the_old_ones() -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(random_init_config("tiny", 100))
    old_input = model.get_input_embeddings().weight.detach().clone()
    old_output = model.get_output_embeddings().weight.detach().clone()
    assert resize_embeddings(model, 102) == 2
    new_input = model.get_input_embeddings().weight
    new_output = model.get_output_embeddings().weight
    torch.testing.assert_close(new_input[:100], old_input)
    torch.testing.assert_close(new_input[101], old_input.mean(dim=0))
    torch.testing.assert_close(new_output[100], old_output.mean(dim=0))
    assert resize_embeddings(model, 50) == 0  # never shrinks


def test_deepspeed_config_typos_and_bad_sections(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text('{"zero_optimization": {"stage": 2}, "gradient_clipping": 1.0}')
    assert load_deepspeed_config(path)["zero_optimization"] == {"stage": 2}
    path.write_text('{"zero_optimisation": {"stage": 2}}')
    with pytest.raises(ConfigError, match="did you mean 'zero_optimization'"):
        load_deepspeed_config(path)
    path.write_text('{"zero_optimization": {"stage": 2, "bogus": 1}}')
    with pytest.raises(ConfigError, match="bogus"):
        load_deepspeed_config(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_deepspeed_config(path)


def test_length_groups_cover_every_sequence_and_bound_the_padding() -> None:
    from crlft_train.forward import length_groups

    lengths = [100, 90, 10, 12, 4000, 95, 11, 700, 650]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        real = sum(lengths[i] for i in group)
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 1.25 * real


def test_a_class_absent_from_a_step_logs_null_not_nan() -> None:
    """metrics.jsonl stays strict JSON, and the terminal line shows a dash."""
    import json

    from crlft_train.forward import class_losses
    from crlft_train.metrics import summary_line

    totals = torch.tensor([[6.0, 2.0], [0.0, 0.0]])  # gpt4: Σ w·CE 6 over Σ w 2; gpt35 absent
    losses = class_losses({"gpt4": 0, "gpt35": 1}, totals)
    assert losses == {"loss/gpt4": 3.0, "loss/gpt35": None}
    json.dumps(losses, allow_nan=False)
    record = {"step": 1, "loss": 3.0, "lr": 1e-3, "tokens_per_s": 10.0, "packing_efficiency": 1}
    assert "gpt4 3.000 gpt35 —" in summary_line({**record, **losses})
