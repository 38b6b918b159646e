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
    lrs = [lr_at(step, 100, 1.0, 0.1, 0.1) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in pairwise(lrs[9:]))  # monotone decay after the warm-up
    assert lrs[-1] == pytest.approx(0.1)


def test_auto_lr_scales_with_the_square_root_of_tokens_per_step() -> None:
    small = auto_peak_lr(65_536, 10_000_000)
    assert small == pytest.approx(1e-3)
    assert auto_peak_lr(4 * 65_536, 10_000_000) == pytest.approx(2 * small)
    assert auto_peak_lr(65_536, 7_000_000_000) == pytest.approx(2e-5)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="--zero"):
        TrainConfig(data=Path("d"), zero_stage=4).validate()
    with pytest.raises(ConfigError, match="--lr"):
        TrainConfig(data=Path("d"), lr=math.nan).validate()


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
