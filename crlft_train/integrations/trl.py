"""C-RLFT in TRL: `SFTTrainer` with the reward-weighted loss of `crlft-train`.

Plain TRL keeps `input_ids` and `labels` of a tokenized folder and drops `loss_weights`, so
C-RLFT silently becomes SFT (every supervised token weighs 1), and its default `max_length=1024`
would cut the rows without cutting their weights. `CRLFTTrainer` keeps the rows as `tokenize`
wrote them (no re-preparation, no truncation, no column dropped), pads them with
`WeightedCollator`, and minimises Σ w·CE / Σ w, where Σ w is the loss weight of every supervised
token of the optimiser step: all its gradient-accumulation micro-batches, on every process. On
one batch its loss is `crlft-train`'s (tested).

    from datasets import load_from_disk
    from transformers import AutoTokenizer
    from trl import SFTConfig
    from crlft_train.integrations.trl import CRLFTTrainer

    data = load_from_disk("data/tokenized")
    trainer = CRLFTTrainer(
        model="path/to/model",
        args=SFTConfig(output_dir="runs/trl", per_device_train_batch_size=4),
        train_dataset=data["train"],
        processing_class=AutoTokenizer.from_pretrained("data/tokenized/tokenizer"),
    )
    trainer.train()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import SFTConfig, SFTTrainer

from crlft_contract import IGNORE_INDEX
from crlft_train import loss

WEIGHTS = "loss_weights"


@dataclass
class WeightedCollator:
    """Right-pads rows of the tokenized contract into a batch: input_ids (pad id), attention_mask,
    labels (the ignore index on padding) and loss_weights (0 on padding)."""

    pad_token_id: int = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        shape = (len(features), width)
        batch = {
            "input_ids": torch.full(shape, self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros(shape, dtype=torch.long),
            "labels": torch.full(shape, IGNORE_INDEX, dtype=torch.long),
            WEIGHTS: torch.zeros(shape, dtype=torch.float32),
        }
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            batch["input_ids"][row, :n] = torch.as_tensor(feature["input_ids"])
            batch["attention_mask"][row, :n] = 1
            batch["labels"][row, :n] = torch.as_tensor(feature["labels"])
            batch[WEIGHTS][row, :n] = torch.as_tensor(feature[WEIGHTS])
        return batch


class CRLFTTrainer(SFTTrainer):
    """`SFTTrainer` on a `sharegpt-tools tokenize` dataset with C-RLFT's weighted loss."""

    def __init__(
        self,
        model: Any,
        args: SFTConfig | None = None,
        data_collator: Any = None,
        **kwargs: Any,
    ) -> None:
        args = args or SFTConfig(output_dir="trl-output")
        # The rows are final: TRL must neither re-tokenize, truncate nor pack them, and must pass
        # loss_weights (not an argument of the model's forward) through to the collator.
        args.remove_unused_columns = False
        args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
        if data_collator is None:
            pad = getattr(kwargs.get("processing_class"), "pad_token_id", None)
            data_collator = WeightedCollator(0 if pad is None else pad)
        super().__init__(model, args=args, data_collator=data_collator, **kwargs)
        # compute_loss divides by the step's Σ w itself: no further 1/accumulation scaling.
        self.loss_is_scaled_for_ga = True

    def _get_num_items_in_batch(
        self, batch_samples: list[dict[str, torch.Tensor]], device: torch.device
    ) -> torch.Tensor:
        """Σ w of the optimiser step (every micro-batch; every process when averaging tokens
        across devices): the denominator of the weighted mean, as `crlft-train` all-reduces it."""
        total = sum(
            (sample[WEIGHTS][..., 1:].to(loss.SUM_DTYPE).sum() for sample in batch_samples),
            start=torch.zeros((), dtype=loss.SUM_DTYPE),
        ).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total.reshape(1)).sum()
        return total

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Σ w·CE of this micro-batch over the step's Σ w (this batch's when not given)."""
        weights = inputs.pop(WEIGHTS)
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        sums = loss.weighted_sums(loss.token_losses(outputs.logits, labels), weights)
        denominator = sums.weight_sum if num_items_in_batch is None else num_items_in_batch
        result = loss.weighted_mean_loss(sums.loss_sum, denominator).float()
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            result = result * self.accelerator.num_processes  # DDP averages the gradients
        return (result, outputs) if return_outputs else result
