"""crlft_train.integrations.trl: TRL's SFTTrainer with C-RLFT's weighted loss, against
`crlft-train`'s own loss on the same rows (real TRL, real transformers Trainer, CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tokenized_fixtures import toy_tokenizer  # noqa: F401
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

from crlft_train.data import load_tokenized, pack
from crlft_train.forward import packed_loss_sums
from crlft_train.integrations.trl import CRLFTTrainer
from crlft_train.model import build_model
from train.test_train import workspace  # noqa: F401  (the same tokenized workspace)


def trainer_on(workspace: Path, output: Path) -> tuple[CRLFTTrainer, object, object]:  # noqa: F811
    data = load_tokenized(workspace)
    tokenizer = AutoTokenizer.from_pretrained(str(data.tokenizer_dir))
    model = build_model(None, str(workspace / "tiny.json"), len(tokenizer), seed=0)
    args = SFTConfig(
        output_dir=str(output), per_device_train_batch_size=3, gradient_accumulation_steps=2,
        max_steps=2, learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, seed=0,
    )  # fmt: skip
    trainer = CRLFTTrainer(
        model=model, args=args, train_dataset=data.train, processing_class=tokenizer
    )
    return trainer, model, data


def test_trl_gives_crlft_trains_weighted_loss_over_an_accumulated_step(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two micro-batches of 3 rows each, over the step's Σ w, add up to crlft-train's loss of
    the 6 rows (a packed forward, float64 sums); plain TRL's unweighted loss is another number."""
    trainer, model, data = trainer_on(workspace, tmp_path / "trl")
    rows = [data.train[i] for i in range(6)]
    assert {r["class"] for r in rows} == {"gpt4", "gpt35"}  # weights 1.0 and 0.1 both present
    class_index = {name: i for i, name in enumerate(data.classes)}
    model.eval()
    with torch.no_grad():
        reference = packed_loss_sums(
            model, pack(rows, class_index), len(class_index), False, torch.device("cpu")
        )
        micro = [trainer.data_collator(rows[:3]), trainer.data_collator(rows[3:])]
        denominator = trainer._get_num_items_in_batch(micro, torch.device("cpu"))
        assert float(denominator) == pytest.approx(float(reference.weight_sum), rel=1e-9)
        ours = sum(float(trainer.compute_loss(model, dict(b), num_items_in_batch=denominator))
                   for b in micro)  # fmt: skip
        whole = float(reference.loss_sum / reference.weight_sum)
        assert ours == pytest.approx(whole, rel=1e-5)
        alone = float(trainer.compute_loss(model, trainer.data_collator(rows)))  # one batch
        assert alone == pytest.approx(whole, rel=1e-5)

    # What plain TRL would train instead: every supervised token weighs 1, so the sub-optimal
    # class's share of the loss is its share of the tokens, not of the weights.
    def gpt35_share(weight_of: object) -> float:
        weights = [(r["class"], w) for r in rows for w in map(weight_of, r["loss_weights"])]
        return sum(w for c, w in weights if c == "gpt35") / sum(w for _, w in weights)

    crlft, plain = gpt35_share(lambda w: w), gpt35_share(lambda w: float(w > 0))
    assert plain > 2 * crlft, (plain, crlft)


def test_plain_trl_drops_the_weights_that_crlft_trainer_keeps(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Why the integration exists: TRL's own SFTTrainer feeds the model input_ids and labels only,
    so on this folder it trains plain SFT."""
    trainer, model, data = trainer_on(workspace, tmp_path / "ours")
    plain = SFTTrainer(
        model=model,
        args=SFTConfig(output_dir=str(tmp_path / "plain"), per_device_train_batch_size=3,
                       report_to="none", use_cpu=True,
                       dataset_kwargs={"skip_prepare_dataset": True}),
        train_dataset=data.train,
        processing_class=trainer.processing_class,
    )  # fmt: skip
    assert "loss_weights" not in next(iter(plain.get_train_dataloader()))
    assert "loss_weights" in next(iter(trainer.get_train_dataloader()))


def test_trl_trains_on_the_tokenized_folder_as_it_is(workspace: Path, tmp_path: Path) -> None:  # noqa: F811
    """No re-preparation (no truncation to TRL's max_length, loss_weights kept), two optimiser
    steps of two accumulated micro-batches, a finite loss each."""
    trainer, _, data = trainer_on(workspace, tmp_path / "trl")
    assert "loss_weights" in trainer.train_dataset.column_names
    assert trainer.train_dataset["input_ids"] == data.train["input_ids"]
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
