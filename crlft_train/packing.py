"""The multipack sampler: whole sequences into micro-batches of at most `batch_max_len` tokens.

Padding-free packing wastes no compute on pad tokens, so the only loss is the room left at the end
of each micro-batch ("bin"). The allocation is a pure function of (lengths, batch_max_len,
num_ranks, seed, epoch): every rank computes the same plan without communicating and picks its own
micro-batch from each step.

How an epoch is packed:

1. Shuffle the dataset indices with `numpy.random.default_rng((seed, epoch))`.
2. Walk the shuffled order in *windows* of about `window_bins` bins' worth of tokens and pack each
   window with first-fit-decreasing (FFD). A small window keeps the composition of a micro-batch
   random (FFD over the whole epoch would put all the longest sequences together at the start and
   all the shortest at the end). FFD leaves the last bins of a window under-filled: their
   sequences are carried into the next window, where smaller sequences fill the gaps (the carry is
   capped at half a window, so every window consumes new data and the walk always ends).
3. Group the bins into steps of `num_ranks × accumulation` bins with similar token totals (bins
   sorted by total, then cut into consecutive groups), and shuffle the order of the steps.

With gradient accumulation an optimiser step is `accumulation` micro-batches on each rank: rank r
trains `step[r::num_ranks]`, one after the other. Steps 1 and 2 do not depend on the number of
ranks, and step 3 only on the product: 1 rank × 4 micro-batches and 2 ranks × 2 train the same
sequences in every optimiser step (the trainer's loss is then the same global weighted mean).

No sequence is ever dropped (the reference sampler drops the epoch's tail, so a tiny dataset never
trains). When the bins do not divide evenly into steps, the last step is short: its bins are first
split (a bin holding several sequences becomes two) to give as many ranks as possible real work,
and any rank still left without a sequence gets an empty micro-batch `[]`. The data module turns
an empty micro-batch into a one-token, zero-weight dummy, so every rank still runs forward and
backward and the collective operations stay in step, while the loss and its gradient are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

MicroBatch = list[int]
"""Dataset indices of the whole sequences packed into one micro-batch (possibly empty)."""
Step = list[MicroBatch]
"""`num_ranks × accumulation` micro-batches; rank r trains step[r::num_ranks] (`rank_share`)."""

DEFAULT_WINDOW_BINS = 8
MIN_FILL = 0.99  # bins filled less than this are dissolved and their sequences packed again


class SequenceTooLongError(ValueError):
    """A sequence cannot fit in any micro-batch: `batch_max_len` is below its length."""

    def __init__(self, index: int, length: int, batch_max_len: int) -> None:
        self.index = index
        self.length = length
        self.batch_max_len = batch_max_len
        super().__init__(
            f"sequence {index} has {length} tokens, more than batch_max_len={batch_max_len}: "
            "every sequence must fit whole in one micro-batch"
        )


def pack_epoch(
    lengths: Sequence[int] | np.ndarray,
    batch_max_len: int,
    num_ranks: int,
    seed: int,
    epoch: int,
    *,
    window_bins: int = DEFAULT_WINDOW_BINS,
    accumulation: int = 1,
) -> list[Step]:
    """Allocate every sequence of one epoch to exactly one (step, rank, micro-batch).

    Returns a list of steps; each step holds `num_ranks × accumulation` micro-batches (lists of
    dataset indices), each with at most `batch_max_len` tokens in total. Raises
    `SequenceTooLongError` (a `ValueError`) naming the longest sequence when it does not fit in
    `batch_max_len`.
    """
    lens = validated_lengths(lengths, batch_max_len)
    if num_ranks < 1:
        raise ValueError(f"num_ranks must be at least 1, got {num_ranks}")
    if accumulation < 1:
        raise ValueError(f"accumulation must be at least 1, got {accumulation}")
    if window_bins < 1:
        raise ValueError(f"window_bins must be at least 1, got {window_bins}")
    rng = np.random.default_rng((seed, epoch))
    order = rng.permutation(len(lens))
    bins = pack_in_windows(order, lens, batch_max_len, window_bins)
    return group_into_steps(bins, lens.tolist(), num_ranks * accumulation, rng)


def rank_share(step: Step, rank: int, num_ranks: int) -> list[MicroBatch]:
    """The micro-batches rank `rank` trains in `step`, in order (one without accumulation)."""
    return step[rank::num_ranks]


def validated_lengths(lengths: Sequence[int] | np.ndarray, batch_max_len: int) -> np.ndarray:
    """Lengths as an int64 array, after checking each sequence can fit in a micro-batch."""
    if batch_max_len < 1:
        raise ValueError(f"batch_max_len must be at least 1, got {batch_max_len}")
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lens.size == 0:
        return lens
    if lens.min() < 1:
        bad = int(np.argmin(lens))
        raise ValueError(f"sequence {bad} has length {int(lens[bad])}: lengths must be positive")
    longest = int(np.argmax(lens))
    if lens[longest] > batch_max_len:
        raise SequenceTooLongError(longest, int(lens[longest]), batch_max_len)
    return lens


def pack_in_windows(
    order: np.ndarray, lens: np.ndarray, capacity: int, window_bins: int
) -> list[MicroBatch]:
    """FFD-pack the shuffled order window by window, re-packing under-filled bins later."""
    lens_list: list[int] = lens.tolist()
    order_list: list[int] = order.tolist()
    ends = np.cumsum(lens[order]) if len(order) else np.zeros(0, dtype=np.int64)
    window_tokens = window_bins * capacity
    max_carry_tokens = window_tokens // 2
    bins: list[MicroBatch] = []
    carry: list[int] = []
    carry_tokens = 0
    start = 0
    while start < len(order_list):
        consumed = int(ends[start - 1]) if start else 0
        # Take new sequences until the window holds window_tokens (at least one new sequence).
        stop = int(np.searchsorted(ends, consumed + window_tokens - carry_tokens, side="left"))
        stop = max(start + 1, min(stop + 1, len(order_list)))
        window = carry + order_list[start:stop]
        start = stop
        packed = first_fit_decreasing(window, lens_list, capacity)
        if start == len(order_list):
            bins.extend(items for _, items in packed)
            break
        kept, carry, carry_tokens = dissolve_underfilled(packed, capacity, max_carry_tokens)
        bins.extend(kept)
    return bins


def first_fit_decreasing(
    indices: list[int], lens: list[int], capacity: int
) -> list[tuple[int, MicroBatch]]:
    """Classic FFD: longest first, each into the first bin with room. Returns (tokens, indices)."""
    room: list[int] = []
    contents: list[MicroBatch] = []
    for index in sorted(indices, key=lens.__getitem__, reverse=True):
        size = lens[index]
        for b, free in enumerate(room):
            if free >= size:
                room[b] = free - size
                contents[b].append(index)
                break
        else:
            room.append(capacity - size)
            contents.append([index])
    return [(capacity - free, items) for free, items in zip(room, contents, strict=True)]


def dissolve_underfilled(
    packed: list[tuple[int, MicroBatch]], capacity: int, max_carry_tokens: int
) -> tuple[list[MicroBatch], list[int], int]:
    """Split a window's bins into those kept and the sequences carried to the next window.

    The emptiest bins go first, as long as the carry stays within `max_carry_tokens` (the cap
    guarantees progress: each window then takes at least half a window of new sequences).
    """
    threshold = MIN_FILL * capacity
    underfilled = sorted(
        (b for b, (tokens, _) in enumerate(packed) if tokens < threshold),
        key=lambda b: packed[b][0],
    )
    dissolved: set[int] = set()
    carry: list[int] = []
    carry_tokens = 0
    for b in underfilled:
        tokens, items = packed[b]
        if carry_tokens + tokens > max_carry_tokens:
            break
        dissolved.add(b)
        carry.extend(items)
        carry_tokens += tokens
    kept = [items for b, (_, items) in enumerate(packed) if b not in dissolved]
    return kept, carry, carry_tokens


def group_into_steps(
    bins: list[MicroBatch], lens: list[int], per_step: int, rng: np.random.Generator
) -> list[Step]:
    """Cut bins into steps of `per_step` with similar totals; a short last step is completed.

    Ranks wait for the slowest one at every step, so bins of a step should carry similar work:
    sorting by token total before cutting does that. The steps are then shuffled so the order of
    training does not follow bin fullness; the short step, if any, comes last.
    """
    by_total = sorted(bins, key=lambda items: bin_tokens(items, lens), reverse=True)
    full_count = len(by_total) // per_step * per_step
    steps = [by_total[i : i + per_step] for i in range(0, full_count, per_step)]
    steps = [steps[i] for i in rng.permutation(len(steps))]
    rest = by_total[full_count:]
    if rest:
        steps.append(complete_short_step(rest, lens, per_step))
    return steps


def complete_short_step(bins: list[MicroBatch], lens: list[int], per_step: int) -> Step:
    """Give idle slots work by splitting multi-sequence bins; pad the rest with empty ones."""
    bins = [list(items) for items in bins]
    while len(bins) < per_step:
        splittable = [b for b, items in enumerate(bins) if len(items) > 1]
        if not splittable:
            break
        heaviest = max(splittable, key=lambda b: bin_tokens(bins[b], lens))
        first, second = split_bin(bins[heaviest], lens)
        bins[heaviest] = first
        bins.append(second)
    bins.sort(key=lambda items: bin_tokens(items, lens), reverse=True)
    return bins + [[] for _ in range(per_step - len(bins))]


def split_bin(items: MicroBatch, lens: list[int]) -> tuple[MicroBatch, MicroBatch]:
    """Two non-empty halves of similar token totals (greedy: longest into the lighter half)."""
    ordered = sorted(items, key=lens.__getitem__, reverse=True)
    halves: tuple[MicroBatch, MicroBatch] = ([ordered[0]], [ordered[1]])
    totals = [lens[ordered[0]], lens[ordered[1]]]
    for index in ordered[2:]:
        lighter = 0 if totals[0] <= totals[1] else 1
        halves[lighter].append(index)
        totals[lighter] += lens[index]
    return halves


def bin_tokens(items: MicroBatch, lens: Sequence[int]) -> int:
    return sum(lens[i] for i in items)


def packing_efficiency(
    lengths: Sequence[int] | np.ndarray, steps: list[Step], batch_max_len: int
) -> float:
    """Tokens trained / token capacity of the non-empty micro-batches (1.0 = no room wasted).

    Empty micro-batches are not counted: they are the unavoidable remainder of the last step. With
    no sequence at all the efficiency is 0.0.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    micro_batches = [items for step in steps for items in step if items]
    if not micro_batches:
        return 0.0
    tokens = sum(int(lens[items].sum()) for items in micro_batches)
    return tokens / (len(micro_batches) * batch_max_len)


class MultipackSampler:
    """Steps of an epoch, resumable mid-epoch from `state_dict()`.

    Iterating yields the remaining steps of the current epoch (each a list of `num_ranks ×
    accumulation` micro-batches; rank r trains `rank_share(step, r, num_ranks)`) and advances
    `step` as each one is handed out, so a checkpoint taken after training a step resumes at the
    next one. When a data loader prefetches
    steps ahead of training, save the number of steps *trained* instead, as `step`.

    Use: `for epoch in range(start, n): sampler.set_epoch(epoch); for step in sampler: ...`.
    `set_epoch` with the current epoch keeps the position (that is what makes resume work); a new
    epoch starts at step 0. The number of steps may differ slightly between epochs (the packing
    depends on the shuffle): ask `steps_per_epoch(epoch)` for each one.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_max_len: int,
        num_ranks: int,
        seed: int = 0,
        *,
        window_bins: int = DEFAULT_WINDOW_BINS,
        accumulation: int = 1,
    ) -> None:
        self.lengths = validated_lengths(lengths, batch_max_len)
        self.batch_max_len = batch_max_len
        self.num_ranks = num_ranks
        self.seed = seed
        self.window_bins = window_bins
        self.accumulation = accumulation
        self.epoch = 0
        self.step = 0
        self._plan: tuple[int, list[Step]] | None = None

    def plan(self, epoch: int | None = None) -> list[Step]:
        """All steps of an epoch (default: the current one); the last plan is cached."""
        epoch = self.epoch if epoch is None else epoch
        if self._plan is None or self._plan[0] != epoch:
            steps = pack_epoch(
                self.lengths,
                self.batch_max_len,
                self.num_ranks,
                self.seed,
                epoch,
                window_bins=self.window_bins,
                accumulation=self.accumulation,
            )
            self._plan = (epoch, steps)
        return self._plan[1]

    def steps_per_epoch(self, epoch: int | None = None) -> int:
        return len(self.plan(epoch))

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self.step = 0

    def __len__(self) -> int:
        return self.steps_per_epoch()

    def __iter__(self) -> Iterator[Step]:
        steps = self.plan()
        while self.step < len(steps):
            current = steps[self.step]
            self.step += 1
            yield current

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "step": self.step,
            "num_ranks": self.num_ranks,
            "batch_max_len": self.batch_max_len,
            "window_bins": self.window_bins,
            "accumulation": self.accumulation,
            "num_sequences": len(self.lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position; refuse a state whose plan this sampler would not reproduce."""
        for key in ("num_ranks", "batch_max_len", "window_bins", "accumulation", "num_sequences"):
            ours = self.state_dict()[key]
            # A state saved before accumulation existed had one micro-batch per rank and step.
            if int(state.get(key, 1 if key == "accumulation" else ours)) != ours:
                raise ValueError(
                    f"cannot resume the sampler exactly: the checkpoint has {key}={state[key]}, "
                    f"this run has {ours} (the packing plan would differ)"
                )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
