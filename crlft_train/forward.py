"""The packed forward pass and its weighted loss sums: what training, evaluation, crlft-eval
and the benchmarks share.

`packed_loss_sums` runs one packed micro-batch (whole sequences side by side, attention never
crossing a sequence) and returns Σ w·CE, Σ w and the per-class sums (`loss.WeightedSums`);
`summed_losses` accumulates them without gradients over a `scoring_plan`. Reductions across
ranks are float64 sums (`all_reduce_sum`), so the same tokens give the same mean however they
are packed or split over ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist

from crlft_contract import IGNORE_INDEX, class_loss_key
from crlft_train import loss
from crlft_train.attention import VARLEN, varlen_inputs
from crlft_train.chunked_ce import linear_cross_entropy
from crlft_train.data import PackedBatch, pack
from crlft_train.model import unwrapped
from crlft_train.packing import MultipackSampler


def packed_loss_sums(
    model: torch.nn.Module,
    batch: PackedBatch,
    num_classes: int,
    per_sequence_loss: bool,
    device: torch.device,
    chunked: bool = False,
) -> loss.WeightedSums:
    """Σ w·CE, Σ w and per-class sums of one packed micro-batch (model: engine or plain module).

    Attention never crosses a sequence boundary and costs Σ L² rather than T² for the whole pack:
    with varlen attention the packed row runs as it is (`crlft_train.attention`); otherwise its
    sequences run side by side as right-padded sub-batches (a dense block-diagonal mask over the
    packed row made the step 0.53× a padded loop on a CPU, benchmarks/README.md). The result
    equals `loss.weighted_sums(loss.token_losses(packed logits, labels), weights)` (tested).

    `chunked`: the LM head's cross-entropy a chunk of tokens at a time (`chunked_ce`), never
    holding the [targets × vocab] logits, for the models whose head is a plain linear layer
    (`chunkable_head`); others, and ZeRO-3's partitioned heads, take the plain path.
    """
    targets = batch.labels[0, 1:]
    positions, weights = target_weights(batch, per_sequence_loss)
    if positions.numel() == 0:
        positions = torch.zeros(1, dtype=torch.long)  # keeps the graph; its weight is 0
        weights = torch.zeros(1)
    wanted = targets[positions].clamp(min=0).to(device)
    head = chunkable_head(model) if chunked else None
    if head is None:
        logits = outputs_at(model, batch, positions, device, head=True)
        token_ce = torch.nn.functional.cross_entropy(logits.float(), wanted, reduction="none")
    else:
        hidden = outputs_at(model, batch, positions, device, head=False)
        token_ce = linear_cross_entropy(hidden, head, wanted)
    classes = batch.class_ids[0, 1:][positions].to(device)
    return loss.weighted_sums(token_ce, weights.to(device), classes, num_classes)


def target_weights(
    batch: PackedBatch, per_sequence_loss: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The packed-row positions that predict a target, and the loss weight of each target.

    Known before any forward (the weights are data): the trainer sums them over a whole step to
    get the weighted mean's denominator first.
    """
    weights = batch.weights[0, 1:]
    if per_sequence_loss:
        weights = loss.per_sequence_weights(
            weights, loss.sequence_ids_from_lengths(batch.lengths)[1:]
        )
    positions = torch.nonzero(batch.labels[0, 1:] != IGNORE_INDEX).squeeze(1)
    return positions, weights[positions]


def weight_sum(batches: list[PackedBatch], per_sequence_loss: bool) -> torch.Tensor:
    """Σ w of the targets of `batches` (float64), without a forward."""
    total = torch.zeros((), dtype=loss.SUM_DTYPE)
    for batch in batches:
        total += target_weights(batch, per_sequence_loss)[1].to(loss.SUM_DTYPE).sum()
    return total


# Causal LMs whose logits are exactly `lm_head(hidden)` (no bias, scaling or soft-capping after
# the head), so that the chunked cross-entropy may apply the head itself.
CHUNKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def chunkable_head(model: torch.nn.Module) -> torch.Tensor | None:
    """The LM head's weight, when the chunked cross-entropy can apply the head itself; else None
    (take the plain path)."""
    module = unwrapped(model)
    head = module.get_output_embeddings()
    if module.config.model_type not in CHUNKABLE_MODEL_TYPES or head is None:
        return None
    rows = getattr(head, "token_adapter", None)  # peft's trainable new-token rows (LoRA runs)
    if rows is not None:
        layer, weight = rows.base_layer, rows.get_merged_weights(rows.active_adapters)
    elif type(head) is torch.nn.Linear:
        layer, weight = head, head.weight
    else:
        return None  # a LoRA-adapted head, or another wrapper
    if layer.bias is not None or hasattr(layer.weight, "ds_id"):
        return None  # a biased head, or ZeRO-3's partitioned weight (gathered only in forward)
    return weight


def logits_at(
    model: torch.nn.Module, batch: PackedBatch, positions: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """[K, V] logits at packed-row `positions`."""
    return outputs_at(model, batch, positions, device, head=True)


def outputs_at(
    model: torch.nn.Module,
    batch: PackedBatch,
    positions: torch.Tensor,
    device: torch.device,
    head: bool,
) -> torch.Tensor:
    """[K, V] logits (`head`) or [K, H] last hidden states at packed-row `positions`."""
    if unwrapped(model).config._attn_implementation == VARLEN:
        return varlen_outputs_at(model, batch, positions, device, head)
    return padded_outputs_at(model, batch, positions, device, head)


def forward_of(model: torch.nn.Module, head: bool) -> tuple[torch.nn.Module, str]:
    """What to call and which output to read: the whole model for logits, else its base model
    (the decoder with its final norm) for the last hidden states."""
    if head:
        return model, "logits"
    return unwrapped(model).base_model, "last_hidden_state"


def varlen_outputs_at(
    model: torch.nn.Module,
    batch: PackedBatch,
    positions: torch.Tensor,
    device: torch.device,
    head: bool,
) -> torch.Tensor:
    """The packed row in one forward: varlen attention, and the LM head only where needed."""
    call, field = forward_of(model, head)
    extra = {"logits_to_keep": positions.to(device)} if head else {}
    output = call(
        input_ids=batch.input_ids.to(device),
        position_ids=batch.position_ids.to(device),
        use_cache=False,
        **extra,
        **varlen_inputs(batch.lengths, device),
    )
    values = getattr(output, field)[0]
    return values if head else values[positions.to(device)]


def padded_outputs_at(
    model: torch.nn.Module,
    batch: PackedBatch,
    positions: torch.Tensor,
    device: torch.device,
    head: bool,
) -> torch.Tensor:
    """[K, V] logits (or [K, H] hidden states) at packed-row `positions`, computed on padded
    sub-batches of the sequences.

    Position p of the packed row predicts token p + 1, which lies in the same sequence: the first
    token of every sequence is never a target (`data.pack`). Sequences of similar length share a
    sub-batch (`length_groups`), so one long sequence does not pad twenty short ones to its size.
    """
    call, field = forward_of(model, head)
    sequence = loss.sequence_ids_from_lengths(batch.lengths)
    offsets = torch.cumsum(torch.tensor(batch.lengths), 0) - torch.tensor(batch.lengths)
    pieces = torch.split(batch.input_ids[0], batch.lengths)
    rows = sequence[positions]
    chunks, order = [], []
    for group in length_groups(batch.lengths):
        wanted = torch.nonzero(torch.isin(rows, torch.tensor(group))).squeeze(1)
        if wanted.numel() == 0:
            continue  # no supervised token in these sequences: skip their forward
        ids, attention = padded([pieces[i] for i in group])
        output = call(
            input_ids=ids.to(device), attention_mask=attention.to(device), use_cache=False
        )
        slot = {sequence_index: slot for slot, sequence_index in enumerate(group)}
        local_rows = torch.tensor([slot[int(r)] for r in rows[wanted]])
        local_positions = positions[wanted] - offsets[rows[wanted]]
        values = getattr(output, field)
        chunks.append(values[local_rows.to(device), local_positions.to(device)])
        order.append(wanted)
    inverse = torch.argsort(torch.cat(order))
    return torch.cat(chunks)[inverse.to(device)]


def padded(pieces: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [n, longest] token ids and the matching attention mask."""
    width = max(piece.numel() for piece in pieces)
    ids = torch.zeros((len(pieces), width), dtype=torch.long)
    attention = torch.zeros((len(pieces), width), dtype=torch.long)
    for row, piece in enumerate(pieces):
        ids[row, : piece.numel()] = piece
        attention[row, : piece.numel()] = 1
    return ids, attention


def length_groups(lengths: list[int], max_waste: float = 0.25) -> list[list[int]]:
    """Sequence indices in groups of similar length (longest first), each padding at most
    `max_waste` of its real tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        if current and (len(current) + 1) * lengths[current[0]] > (1 + max_waste) * (
            real + lengths[index]
        ):
            groups.append(current)
            current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        groups.append(current)
    return groups


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    value = value.detach().clone().to(loss.SUM_DTYPE)  # sums stay float64 (see loss.weighted_sums)
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def class_losses(
    class_index: dict[str, int], totals: torch.Tensor, validation: bool = False
) -> dict:
    """Mean CE per class over its supervised tokens (Σ w·CE / Σ w: the class weight cancels).

    None (JSON null) for a class with no supervised token in the batch: a step of a rare class's
    absence is normal, and NaN would be invalid JSON in metrics.jsonl.
    """
    out = {}
    for name, i in class_index.items():
        weight = totals[i, 1].item()
        out[class_loss_key(name, validation)] = totals[i, 0].item() / weight if weight else None
    return out


def scoring_plan(lengths: list[int], batch_max_len: int, world: int) -> list[list[list[int]]]:
    """Every row exactly once, packed `batch_max_len` tokens per rank and batch (no shuffling)."""
    clipped = [min(int(n), batch_max_len) for n in lengths]
    return MultipackSampler(clipped, batch_max_len, world, seed=0).plan(0) if clipped else []


def summed_losses(
    model: torch.nn.Module,
    row_batches: Iterable[list[dict]],
    class_index: dict[str, int],
    per_sequence_loss: bool,
    device: torch.device,
    on_batch: Callable[[], None] = lambda: None,
    chunked: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Without gradients: ([Σ w·CE, Σ w], [[Σ w·CE, Σ w] per class]) over batches of rows."""
    totals = torch.zeros(2, dtype=loss.SUM_DTYPE)  # float64 across batches too
    per_class = torch.zeros(len(class_index), 2, dtype=loss.SUM_DTYPE)
    with torch.no_grad():
        for rows in row_batches:
            sums = packed_loss_sums(
                model, pack(rows, class_index), len(class_index), per_sequence_loss, device,
                chunked,
            )  # fmt: skip
            totals += torch.stack([sums.loss_sum, sums.weight_sum]).to(totals)
            for index, part in sums.per_class.items():
                per_class[index] += torch.stack([part.loss_sum, part.weight_sum]).to(totals)
            on_batch()
    return totals, per_class
