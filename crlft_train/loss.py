"""The C-RLFT loss as pure torch functions: a reward-weighted next-token cross-entropy.

C-RLFT (OpenChat) trains on mixed-quality conversations with each target token weighted by the
reward of its source (expert 1.0, sub-optimal 0.1 by default). The loss of a step is the
token-level weighted mean over the *global* batch, every micro-batch of every rank:

    L = Σ_t w_t · CE_t / Σ_t w_t

Each micro-batch contributes `weighted_mean_loss(loss_sum_local, weight_sum_global)`, i.e. its
own Σ w·CE divided by the all-reduced Σ w of the whole step. Because the denominator is the same
constant everywhere, the gradients that gradient accumulation sums over micro-batches (and that
data parallelism sums over ranks) add up to exactly the gradient of L. (DeepSpeed *averages*
gradients over ranks and, by default, divides the loss by the accumulation steps in `backward`:
the trainer undoes both scalings, which is its business, not this module's.)

Alignment: `labels`, `weights` and `classes` are aligned with `input_ids`, as in Hugging Face
causal LMs: the entry at position t describes token t *as a target*, predicted from the logits at
t - 1. The shift happens here, in `token_losses`.

Sequence boundaries in a packed row: the logits at the last token of one sequence would
"predict" the first token of the next. This module relies on the data module's guarantee that
the first token of every packed sequence has label -100 and weight 0 (the tokenized contract
already gives BOS and template prefixes no loss, and the packer enforces it), so no loss ever
crosses a boundary. `check_sequence_starts_ignored` verifies that guarantee.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from crlft_contract import IGNORE_INDEX

SUM_DTYPE = torch.float64  # Σ w·CE and Σ w, whatever the logits' dtype (see `weighted_sums`)


class ClassSums(NamedTuple):
    """Additive per-class totals (all-reducible). Mean CE of the class = loss_sum / weight_sum."""

    loss_sum: torch.Tensor  # Σ w·CE over the class's tokens
    token_count: torch.Tensor  # supervised (non-zero weight) tokens of the class
    weight_sum: torch.Tensor  # Σ w over the class's tokens


class WeightedSums(NamedTuple):
    loss_sum: torch.Tensor  # Σ w·CE over the micro-batch: the numerator of the step's loss
    weight_sum: torch.Tensor  # Σ w over the micro-batch: all-reduce it for the denominator
    per_class: dict[int, ClassSums]


def added(first: WeightedSums, second: WeightedSums) -> WeightedSums:
    """The sums of two micro-batches (of one rank's accumulated step), detached: for logging."""

    def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.detach() + b.detach()

    per_class = {
        c: ClassSums(*map(add, part, second.per_class[c])) for c, part in first.per_class.items()
    }
    return WeightedSums(
        add(first.loss_sum, second.loss_sum), add(first.weight_sum, second.weight_sum), per_class
    )


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each target token, aligned with `labels`; 0 where no loss.

    `logits` is [T, V] or [B, T, V], `labels` [T] or [B, T]. The entry at t is the loss of
    predicting labels[t] from logits[t - 1], so position 0 (nothing predicts it) and every -100
    label get 0. Half-precision logits are upcast to float32 first: a bf16 log-softmax over a
    large vocabulary loses most of the loss's precision.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree: "
            "logits must be labels' shape plus a vocabulary dimension"
        )
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    predicting = logits[..., :-1, :]
    targets = labels[..., 1:]
    shifted = F.cross_entropy(
        predicting.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).reshape(targets.shape)
    nothing_predicts_position_zero = shifted.new_zeros((*targets.shape[:-1], 1))
    return torch.cat([nothing_predicts_position_zero, shifted], dim=-1)


def weighted_sums(
    per_token_loss: torch.Tensor,
    weights: torch.Tensor,
    classes: torch.Tensor | None = None,
    num_classes: int | None = None,
) -> WeightedSums:
    """Σ w·CE and Σ w of a micro-batch (float64), and the same per class for logging.

    `weights` and `classes` are aligned like `labels` (the weight and class of the target token);
    weights must be 0 wherever the label is -100 (the tokenized contract guarantees it). A token
    is *supervised* when its weight is non-zero; unsupervised tokens may carry any class id (e.g.
    -1). Pass `num_classes` (from the manifest) so every rank returns the same class ids, which
    the caller can then stack and all-reduce; without it the ids are 0..max(classes).
    """
    if per_token_loss.shape != weights.shape:
        raise ValueError(
            f"per-token loss {tuple(per_token_loss.shape)} and weights "
            f"{tuple(weights.shape)} must have the same shape"
        )
    # float64 sums: a float32 Σ of thousands of 0.1 weights (scatter-added one token at a time
    # per class) drifts by ~1e-5 relative, so two packings of the same tokens (the trainer's
    # validation, crlft-eval) would report different losses. The per-token losses stay in their
    # dtype; only the sums are wide, and gradients flow back through the cast unchanged.
    weights = weights.to(SUM_DTYPE)
    contributions = weights * per_token_loss.to(SUM_DTYPE)
    per_class: dict[int, ClassSums] = {}
    if classes is not None:
        per_class = class_sums(contributions, weights, classes, num_classes)
    return WeightedSums(contributions.sum(), weights.sum(), per_class)


def class_sums(
    contributions: torch.Tensor,
    weights: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int | None,
) -> dict[int, ClassSums]:
    """Scatter-add the weighted losses, counts and weights of supervised tokens by class id."""
    if classes.shape != weights.shape:
        raise ValueError(
            f"classes {tuple(classes.shape)} must have the weights' shape {tuple(weights.shape)}"
        )
    supervised = (weights != 0).reshape(-1)
    ids = torch.where(supervised, classes.reshape(-1).long(), 0)
    if num_classes is None:
        num_classes = int(ids.max()) + 1 if ids.numel() else 0
    stacked = torch.stack(
        [contributions.reshape(-1), supervised.to(weights.dtype), weights.reshape(-1)], dim=1
    )
    totals = stacked.new_zeros((num_classes, 3)).index_add(0, ids, stacked)
    return {c: ClassSums(totals[c, 0], totals[c, 1], totals[c, 2]) for c in range(num_classes)}


def weighted_mean_loss(
    loss_sum_local: torch.Tensor, weight_sum_global: torch.Tensor
) -> torch.Tensor:
    """This micro-batch's share of the step's weighted mean loss: Σ_local w·CE / Σ_global w.

    The denominator is a constant (detached): the weight sum of every micro-batch of the step on
    every rank, all-reduced before backward. A step with no supervised token at all (weight sum 0)
    gives a zero loss with zero gradients rather than NaN.
    """
    denominator = weight_sum_global.detach().to(loss_sum_local.dtype)
    return loss_sum_local / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)


def per_sequence_weights(weights: torch.Tensor, sequence_ids: torch.Tensor) -> torch.Tensor:
    """Divide each sequence's weights by its number of supervised tokens (`--per-sequence-loss`).

    With the token-level mean a long answer outweighs a short one in proportion to its length;
    after this, every sequence's weights sum to its mean token weight (its class weight), so each
    conversation counts once. `sequence_ids` gives the sequence of each token (same shape as
    `weights`; see `sequence_ids_from_lengths`). Meant for the collate step, on CPU tensors.
    """
    if sequence_ids.shape != weights.shape:
        raise ValueError(
            f"sequence ids {tuple(sequence_ids.shape)} must have the weights' shape "
            f"{tuple(weights.shape)}"
        )
    unique, inverse = torch.unique(sequence_ids.reshape(-1), return_inverse=True)
    supervised = (weights.reshape(-1) != 0).to(weights.dtype)
    counts = supervised.new_zeros(unique.numel()).index_add(0, inverse, supervised)
    return weights / counts[inverse].clamp_min(1).reshape(weights.shape)


def sequence_ids_from_lengths(lengths: list[int] | torch.Tensor) -> torch.Tensor:
    """Per-token sequence index of a packed row: [3, 2] → [0, 0, 0, 1, 1]."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    return torch.repeat_interleave(torch.arange(len(lengths)), lengths)


def check_sequence_starts_ignored(labels: torch.Tensor, lengths: list[int]) -> None:
    """Raise if the first token of a packed sequence is a target (its loss would cross a boundary).

    `labels` is one packed row ([T] or [1, T]) holding sequences of `lengths` tokens, in order.
    """
    row = labels.reshape(-1)
    if sum(lengths) != row.numel():
        raise ValueError(f"lengths sum to {sum(lengths)} but the row has {row.numel()} tokens")
    if not lengths:
        return
    starts = torch.cumsum(torch.tensor([0, *lengths[:-1]], dtype=torch.long), dim=0)
    bad = (row[starts] != IGNORE_INDEX).nonzero().reshape(-1)
    if bad.numel():
        first = int(bad[0])
        raise ValueError(
            f"packed sequence {first} starts with a target (label {int(row[starts[first]])}); "
            f"the first token of every sequence must have label {IGNORE_INDEX}"
        )
