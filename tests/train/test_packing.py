"""The multipack sampler: nothing dropped, nothing over capacity, deterministic, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from crlft_train.packing import (
    MultipackSampler,
    SequenceTooLongError,
    pack_epoch,
    packing_efficiency,
    split_bin,
)

RANK_COUNTS = (1, 2, 3, 8)


def sharegpt_like_lengths(n: int, seed: int = 0) -> np.ndarray:
    """Long-tailed lengths like ShareGPT conversations: lognormal, median ~540, 20..4096."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(6.3, 1.1, n), 20, 4096).astype(np.int64)


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A random dataset size (often tiny) and a capacity from 'huge' to 'one sequence per bin'."""
    n = int(rng.choice([0, 1, 2, 3, 5, 7, 20, 100, 700]))
    capacity = int(rng.choice([8, 64, 300, 2048]))
    return rng.integers(1, capacity + 1, size=n), capacity


def assert_valid_plan(
    steps: list[list[list[int]]], lengths: np.ndarray, capacity: int, num_ranks: int
) -> None:
    flat = sorted(index for step in steps for micro_batch in step for index in micro_batch)
    assert flat == list(range(len(lengths))), "every index exactly once per epoch"
    for step in steps:
        assert len(step) == num_ranks
        for micro_batch in step:
            assert int(lengths[micro_batch].sum()) <= capacity
    empty_steps = [i for i, step in enumerate(steps) if any(not mb for mb in step)]
    assert empty_steps in ([], [len(steps) - 1]), "only the last step may leave a rank idle"
    assert all(any(step) for step in steps), "no step is entirely empty"


@pytest.mark.parametrize("num_ranks", RANK_COUNTS)
def test_every_index_appears_exactly_once_and_bins_fit(num_ranks: int) -> None:
    rng = np.random.default_rng(num_ranks)
    for trial in range(40):
        lengths, capacity = random_case(rng)
        steps = pack_epoch(lengths, capacity, num_ranks, seed=trial, epoch=trial % 3)
        assert_valid_plan(steps, lengths, capacity, num_ranks)


@pytest.mark.parametrize("num_ranks", RANK_COUNTS)
def test_sharegpt_like_epoch_is_valid(num_ranks: int) -> None:
    lengths = sharegpt_like_lengths(3000, seed=num_ranks)
    assert_valid_plan(pack_epoch(lengths, 16384, num_ranks, 0, 0), lengths, 16384, num_ranks)


def test_adversarial_lengths_still_pack_every_sequence() -> None:
    """Sequences just over half the capacity fill no bin well: the carry must still terminate."""
    for lengths, capacity in [
        (np.full(50, 5000), 8193),
        (np.full(37, 8193), 16384),
        (np.full(10, 16384), 16384),
        (np.arange(1, 300), 300),
    ]:
        for num_ranks in RANK_COUNTS:
            steps = pack_epoch(lengths, capacity, num_ranks, 1, 2)
            assert_valid_plan(steps, lengths, capacity, num_ranks)


def test_tiny_dataset_trains_with_fewer_sequences_than_ranks() -> None:
    steps = pack_epoch([10, 20, 30], 1000, num_ranks=8, seed=0, epoch=0)
    assert len(steps) == 1
    assert sorted(len(mb) for mb in steps[0]) == [0, 0, 0, 0, 0, 1, 1, 1]


def test_short_last_step_splits_a_bin_rather_than_idling_a_rank() -> None:
    steps = pack_epoch([10, 20, 30, 40], 1000, num_ranks=2, seed=0, epoch=0)
    assert len(steps) == 1
    assert all(steps[0]), "both ranks get sequences"
    assert sorted(sum([10, 20, 30, 40][i] for i in mb) for mb in steps[0]) == [50, 50]


def test_split_bin_gives_two_balanced_nonempty_halves() -> None:
    lens = [7, 1, 5, 3, 2]
    first, second = split_bin([0, 1, 2, 3, 4], lens)
    assert first and second and sorted(first + second) == [0, 1, 2, 3, 4]
    assert abs(sum(lens[i] for i in first) - sum(lens[i] for i in second)) <= 1


def test_empty_dataset_has_no_steps() -> None:
    assert pack_epoch([], 100, 4, 0, 0) == []
    assert packing_efficiency([], [], 100) == 0.0


def test_same_seed_and_epoch_give_the_same_plan_on_every_rank() -> None:
    lengths = sharegpt_like_lengths(2000)
    assert pack_epoch(lengths, 16384, 4, 7, 3) == pack_epoch(list(lengths), 16384, 4, 7, 3)


def test_different_epochs_and_seeds_give_different_plans() -> None:
    lengths = sharegpt_like_lengths(2000)
    plans = [pack_epoch(lengths, 16384, 4, seed, epoch) for seed, epoch in [(0, 0), (0, 1), (1, 0)]]
    assert plans[0] != plans[1] and plans[0] != plans[2]


def test_bins_of_a_step_have_similar_token_totals() -> None:
    lengths = sharegpt_like_lengths(5000)
    steps = pack_epoch(lengths, 16384, 8, 0, 0)
    for step in steps[:-1]:
        totals = [int(lengths[mb].sum()) for mb in step]
        assert max(totals) - min(totals) <= 0.02 * 16384


def test_efficiency_at_least_99_percent_on_sharegpt_like_lengths() -> None:
    lengths = sharegpt_like_lengths(20_000)
    for num_ranks in (1, 8):
        steps = pack_epoch(lengths, 16384, num_ranks, 0, 0)
        assert packing_efficiency(lengths, steps, 16384) >= 0.99


def test_efficiency_counts_tokens_over_non_empty_bins() -> None:
    steps = [[[0, 1], [2]], [[3], []]]
    assert packing_efficiency([4, 4, 6, 2], steps, 10) == pytest.approx(16 / 30)


def test_too_long_sequence_error_names_the_longest_index_and_length() -> None:
    with pytest.raises(SequenceTooLongError, match=r"sequence 2 has 900 tokens.*=512") as info:
        pack_epoch([10, 600, 900, 20], 512, 2, 0, 0)
    assert (info.value.index, info.value.length, info.value.batch_max_len) == (2, 900, 512)
    assert isinstance(info.value, ValueError)
    with pytest.raises(SequenceTooLongError):
        MultipackSampler([10, 600], 512, 1)


@pytest.mark.parametrize(
    ("lengths", "capacity", "ranks", "message"),
    [
        ([3, 0], 10, 1, "sequence 1 has length 0"),
        ([3], 0, 1, "batch_max_len must be at least 1"),
        ([3], 10, 0, "num_ranks must be at least 1"),
    ],
)
def test_invalid_arguments_are_rejected(
    lengths: list[int], capacity: int, ranks: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pack_epoch(lengths, capacity, ranks, 0, 0)


def test_sampler_iterates_the_epoch_plan() -> None:
    lengths = sharegpt_like_lengths(1500)
    sampler = MultipackSampler(lengths, 16384, 3, seed=5)
    sampler.set_epoch(2)
    assert list(sampler) == pack_epoch(lengths, 16384, 3, 5, 2)
    assert len(sampler) == sampler.steps_per_epoch() == sampler.steps_per_epoch(2)
    assert list(sampler) == [], "an exhausted epoch yields nothing until the next set_epoch"
    sampler.set_epoch(3)
    assert list(sampler) == pack_epoch(lengths, 16384, 3, 5, 3)


def test_resume_from_state_dict_yields_exactly_the_remaining_steps() -> None:
    lengths = sharegpt_like_lengths(1500)
    sampler = MultipackSampler(lengths, 8192, 2, seed=11)
    sampler.set_epoch(1)
    full = sampler.plan()
    iterator = iter(sampler)
    trained = [next(iterator) for _ in range(5)]
    state = sampler.state_dict()
    assert state["epoch"] == 1 and state["step"] == 5

    resumed = MultipackSampler(lengths, 8192, 2, seed=0)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # the training loop's usual call keeps the restored position
    assert trained + list(resumed) == full
    resumed.set_epoch(2)
    assert next(iter(resumed)) == pack_epoch(lengths, 8192, 2, 11, 2)[0]


def test_resume_refuses_a_state_from_another_world_size() -> None:
    lengths = sharegpt_like_lengths(100)
    state = MultipackSampler(lengths, 8192, 2).state_dict()
    with pytest.raises(ValueError, match="num_ranks=2, this run has 4"):
        MultipackSampler(lengths, 8192, 4).load_state_dict(state)
