"""The C-RLFT weighted loss: reference values, masking, weighting, and the global-mean property."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from crlft_train.loss import (
    IGNORE_INDEX,
    check_sequence_starts_ignored,
    per_sequence_weights,
    sequence_ids_from_lengths,
    token_losses,
    weighted_mean_loss,
    weighted_sums,
)

VOCAB = 11


def random_row(
    generator: torch.Generator, lengths: list[int], class_ids: list[int]
) -> dict[str, torch.Tensor]:
    """One packed row of sequences: first token of each unsupervised, some prompt tokens too."""
    total = sum(lengths)
    logits = torch.randn(total, VOCAB, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, VOCAB, (total,), generator=generator)
    prompt = torch.rand(total, generator=generator) < 0.3
    starts = torch.cumsum(torch.tensor([0, *lengths[:-1]]), 0)
    prompt[starts] = True
    labels[prompt] = IGNORE_INDEX
    classes = torch.repeat_interleave(torch.tensor(class_ids), torch.tensor(lengths))
    class_weight = torch.tensor([1.0, 0.1], dtype=torch.float64)[classes]
    weights = torch.where(prompt, 0.0, class_weight)
    return {"logits": logits, "labels": labels, "weights": weights, "classes": classes}


def reference_global_mean(rows: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Σ w·CE / Σ w over all rows, computed independently with the usual shift-then-CE."""
    numerator = torch.zeros((), dtype=torch.float64)
    denominator = torch.zeros((), dtype=torch.float64)
    for row in rows:
        ce = F.cross_entropy(
            row["logits"][:-1], row["labels"][1:], ignore_index=IGNORE_INDEX, reduction="none"
        )
        numerator = numerator + (row["weights"][1:] * ce).sum()
        denominator = denominator + row["weights"][1:].sum()
    return numerator / denominator


def test_token_losses_match_a_hand_computed_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 3.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([IGNORE_INDEX, 2, 1])

    def ce(row: list[float], target: int) -> float:
        return math.log(sum(math.exp(v) for v in row)) - row[target]

    expected = [0.0, ce([2.0, 0.0, -1.0], 2), ce([0.5, 0.5, 0.0], 1)]
    assert token_losses(logits, labels).tolist() == pytest.approx(expected, abs=1e-12)


def test_token_losses_position_zero_and_ignored_labels_cost_nothing() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, VOCAB, generator=generator)
    labels = torch.randint(0, VOCAB, (2, 6), generator=generator)
    labels[0, 3] = labels[1, 5] = IGNORE_INDEX
    losses = token_losses(logits, labels)
    assert losses.shape == labels.shape
    assert (losses[:, 0] == 0).all()
    assert losses[0, 3] == 0 and losses[1, 5] == 0
    assert (losses[0, [1, 2, 4, 5]] > 0).all()


def test_token_losses_batched_equals_row_by_row() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, VOCAB, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, VOCAB, (3, 5), generator=generator)
    batched = token_losses(logits, labels)
    for b in range(3):
        assert torch.allclose(batched[b], token_losses(logits[b], labels[b]))


def test_token_losses_upcast_half_precision_logits() -> None:
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(6, VOCAB, generator=generator) * 4
    labels = torch.randint(0, VOCAB, (6,), generator=generator)
    losses = token_losses(logits.bfloat16(), labels)
    assert losses.dtype == torch.float32
    assert torch.allclose(losses, token_losses(logits.bfloat16().float(), labels))


def test_token_losses_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="disagree"):
        token_losses(torch.zeros(4, VOCAB), torch.zeros(5, dtype=torch.long))


def test_shift_never_crosses_a_packed_boundary() -> None:
    """With the first token of each sequence ignored, packing equals scoring sequences apart."""
    generator = torch.Generator().manual_seed(3)
    row = random_row(generator, [4, 6, 3], [0, 1, 0])
    packed = token_losses(row["logits"], row["labels"])
    start = 0
    for length in [4, 6, 3]:
        alone = token_losses(
            row["logits"][start : start + length], row["labels"][start : start + length]
        )
        assert torch.equal(packed[start : start + length], alone)
        start += length


def test_check_sequence_starts_ignored_flags_a_target_at_a_boundary() -> None:
    labels = torch.tensor([IGNORE_INDEX, 5, 6, IGNORE_INDEX, 7, 8])
    check_sequence_starts_ignored(labels, [3, 3])
    check_sequence_starts_ignored(labels.unsqueeze(0), [3, 3])
    with pytest.raises(ValueError, match="packed sequence 1 starts with a target"):
        check_sequence_starts_ignored(labels, [4, 2])
    with pytest.raises(ValueError, match="lengths sum to 5"):
        check_sequence_starts_ignored(labels, [3, 2])


def test_weights_scale_each_token_contribution() -> None:
    losses = torch.tensor([0.0, 2.0, 3.0, 5.0], dtype=torch.float64)
    weights = torch.tensor([0.0, 1.0, 0.1, 0.1], dtype=torch.float64)
    sums = weighted_sums(losses, weights)
    assert sums.loss_sum.item() == pytest.approx(2.0 + 0.3 + 0.5)
    assert sums.weight_sum.item() == pytest.approx(1.2)
    assert sums.per_class == {}
    expert_only = weighted_sums(losses, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    suboptimal_only = weighted_sums(losses, torch.tensor([0.0, 0.0, 1.0, 1.0]).double())
    assert sums.loss_sum.item() == pytest.approx(
        expert_only.loss_sum.item() + 0.1 * suboptimal_only.loss_sum.item()
    )


def test_weighted_mean_matches_reference_and_ignores_masked_tokens() -> None:
    generator = torch.Generator().manual_seed(4)
    row = random_row(generator, [7, 9], [0, 1])
    sums = weighted_sums(token_losses(row["logits"], row["labels"]), row["weights"])
    loss = weighted_mean_loss(sums.loss_sum, sums.weight_sum)
    assert torch.allclose(loss, reference_global_mean([row]))
    garbage = row["logits"].clone()
    garbage[row["labels"].roll(-1) == IGNORE_INDEX] = 1e3  # logits that predict ignored tokens
    garbage[-1] = 1e3  # the last position predicts nothing
    again = weighted_sums(token_losses(garbage, row["labels"]), row["weights"])
    assert torch.allclose(again.loss_sum, sums.loss_sum)


def test_per_class_sums_add_up_to_the_total() -> None:
    generator = torch.Generator().manual_seed(5)
    row = random_row(generator, [5, 8, 6, 4], [0, 1, 1, 0])
    classes = torch.where(row["weights"] == 0, -1, row["classes"])  # any id on unsupervised
    sums = weighted_sums(token_losses(row["logits"], row["labels"]), row["weights"], classes, 3)
    assert sorted(sums.per_class) == [0, 1, 2]
    per_class = list(sums.per_class.values())
    assert torch.allclose(sum(c.loss_sum for c in per_class), sums.loss_sum)
    assert torch.allclose(sum(c.weight_sum for c in per_class), sums.weight_sum)
    supervised = int((row["weights"] != 0).sum())
    assert int(sum(c.token_count for c in per_class)) == supervised
    assert sums.per_class[2].token_count == 0
    expert = (row["classes"] == 0) & (row["weights"] != 0)
    assert int(sums.per_class[0].token_count) == int(expert.sum())
    assert torch.allclose(sums.per_class[1].weight_sum, 0.1 * sums.per_class[1].token_count)


def test_sums_are_float64_so_many_small_weights_keep_the_mean_exact() -> None:
    """float32 per-class sums of 200k tokens of weight 0.1 were off by 2e-3 relative; two
    packings of the same tokens (validation, crlft-eval) then disagree."""
    generator = torch.Generator().manual_seed(0)
    count = 200_000
    losses = torch.rand(count, generator=generator) * 10  # float32, as the trainer's CE
    sums = weighted_sums(losses, torch.full((count,), 0.1), torch.zeros(count, dtype=torch.long), 1)
    assert sums.loss_sum.dtype == sums.weight_sum.dtype == torch.float64
    part = sums.per_class[0]
    exact = losses.double().mean().item()
    assert (part.loss_sum / part.weight_sum).item() == pytest.approx(exact, rel=1e-12)
    assert (sums.loss_sum / sums.weight_sum).item() == pytest.approx(exact, rel=1e-12)
    losses.requires_grad_(True)  # gradients still reach the float32 per-token losses
    weighted_sums(losses, torch.full((count,), 0.1)).loss_sum.backward()
    assert losses.grad.dtype == torch.float32


def test_per_class_ids_default_to_the_largest_id_seen() -> None:
    sums = weighted_sums(torch.ones(3), torch.ones(3), torch.tensor([0, 2, 2]))
    assert sorted(sums.per_class) == [0, 1, 2]
    assert sums.per_class[2].token_count == 2


@pytest.mark.parametrize("num_ranks", [1, 2, 3])
def test_micro_batch_shares_sum_to_the_global_weighted_mean_and_its_gradient(
    num_ranks: int,
) -> None:
    """Gradient accumulation over micro-batches and ranks == one pass over the global batch.

    Each micro-batch's loss is its Σ w·CE over the step's all-reduced Σ w; backward is called per
    micro-batch, as the training loop does, and the gradients accumulate on the shared leaf.
    """
    generator = torch.Generator().manual_seed(10 + num_ranks)
    micro_batches_per_rank = 2
    rows = [
        random_row(
            generator,
            [int(n) for n in torch.randint(2, 9, (3,), generator=generator)],
            [int(c) for c in torch.randint(0, 2, (3,), generator=generator)],
        )
        for _ in range(num_ranks * micro_batches_per_rank)
    ]
    leaves = [row["logits"].clone().requires_grad_() for row in rows]
    reference_leaves = [row["logits"].clone().requires_grad_() for row in rows]

    reference = reference_global_mean(
        [{**row, "logits": leaf} for row, leaf in zip(rows, reference_leaves, strict=True)]
    )
    reference.backward()

    sums = [
        weighted_sums(token_losses(leaf, row["labels"]), row["weights"])
        for row, leaf in zip(rows, leaves, strict=True)
    ]
    weight_sum_global = torch.stack([s.weight_sum for s in sums]).sum()  # the all-reduce
    total = torch.zeros((), dtype=torch.float64)
    for share in sums:
        loss = weighted_mean_loss(share.loss_sum, weight_sum_global)
        loss.backward()
        total = total + loss.detach()

    assert torch.allclose(total, reference.detach())
    for leaf, reference_leaf in zip(leaves, reference_leaves, strict=True):
        assert torch.allclose(leaf.grad, reference_leaf.grad, atol=1e-12)


def test_zero_weight_step_gives_zero_loss_and_gradient_not_nan() -> None:
    """The one-token, zero-weight dummy micro-batch of an idle rank still back-propagates."""
    logits = torch.randn(1, VOCAB, dtype=torch.float64, requires_grad=True)
    labels = torch.full((1,), IGNORE_INDEX)
    sums = weighted_sums(token_losses(logits, labels), torch.zeros(1, dtype=torch.float64))
    loss = weighted_mean_loss(sums.loss_sum, sums.weight_sum)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_per_sequence_weights_give_each_sequence_equal_total_weight() -> None:
    lengths = [3, 7, 5]
    weights = torch.tensor(
        [0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0.1, 0.1, 0.1, 0.1], dtype=torch.float64
    )
    ids = sequence_ids_from_lengths(lengths)
    assert ids.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    normalised = per_sequence_weights(weights, ids)
    totals = torch.zeros(3, dtype=torch.float64).index_add(0, ids, normalised)
    assert totals.tolist() == pytest.approx([1.0, 1.0, 0.1])
    assert torch.equal(normalised == 0, weights == 0)
    batched = per_sequence_weights(weights.reshape(3, 5), ids.reshape(3, 5))
    assert torch.allclose(batched.reshape(-1), normalised)


def test_per_sequence_weights_leave_unsupervised_sequences_at_zero() -> None:
    weights = torch.tensor([0.0, 0.0, 0.0, 1.0])
    normalised = per_sequence_weights(weights, torch.tensor([4, 4, 9, 9]))
    assert normalised.tolist() == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="must have the weights' shape"):
        per_sequence_weights(weights, torch.tensor([0, 1]))
