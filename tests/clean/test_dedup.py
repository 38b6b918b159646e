"""Exact keys, MinHash banding and near-duplicate clustering."""

from __future__ import annotations

import numpy as np

from sharegpt_tools.clean.dedup import (
    NearDupParams,
    Signer,
    exact_key,
    find_near_duplicates,
    shingle_hashes,
)

BASE = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch and "
    "the children count the clouds drifting over the hills toward the distant blue sea today. "
    "Later in the afternoon the wind turns cold, the baker closes his shop early, the old "
    "train whistles twice at the crossing, and everyone in the village hurries home before the "
    "first heavy drops of rain begin to fall on the dusty road that leads to the river bridge."
)


def test_exact_key_folds_case_and_whitespace() -> None:
    assert exact_key(["Hello  World", "x"]) == exact_key(["hello world ", "x"])
    assert exact_key(["hello", "world"]) != exact_key(["hello world"])


def test_cjk_is_shingled_per_character() -> None:
    assert len(shingle_hashes("光合作用是如何进行的", 3)) == 8


def run(texts: list[str], threshold: float = 0.8) -> list[tuple[int, int]]:
    signer = Signer(NearDupParams(threshold=threshold))
    signatures = [signer.signature([t]) for t in texts]
    bands = np.stack([signer.band_hashes(s) for s in signatures])
    found = find_near_duplicates(bands, lambda idx: {i: signatures[i] for i in idx}, threshold)
    return [(d.index, d.kept) for d in found]


def test_near_duplicates_point_at_the_earliest_kept_row() -> None:
    near = BASE.replace("lazy", "sleepy")
    unrelated = "A completely different sentence about databases, indexes and query planners."
    assert run([BASE, unrelated, near, near + " indeed"]) == [(2, 0), (3, 0)]


def test_dissimilar_texts_are_not_flagged() -> None:
    half = " ".join(BASE.split()[:40]) + " but then something else entirely happened to everyone"
    assert run([BASE, half]) == []


def test_numpy_signature_equals_datasketch_minhash() -> None:
    """Our vectorised permutations reproduce datasketch's affine32 MinHash exactly."""
    from datasketch import MinHash

    signer = Signer(NearDupParams())
    reference = MinHash(num_perm=128, seed=1, hashfunc=int)
    reference.update_batch(shingle_hashes(BASE, 5).tolist())
    assert (signer.signature([BASE]) == reference.hashvalues).all()


def test_one_pass_over_a_conversation_gives_each_turns_own_word_hashes() -> None:
    """`turn_word_hashes` hashes the turns joined (one numpy pass): the same arrays as hashing
    each turn alone, whatever the turns hold."""
    from sharegpt_tools.clean.dedup import turn_word_hashes, word_hashes

    conversations = [
        ["Hello there", "General Kenobi!\n\nYou are a bold one."],
        ["", "  \t ", "word", "Ünïcödé café naïve", "x\ny\r\nz"],
        ["trailing space ", " leading space", "émoji 🙂 here", "Groß STRASSE"],
        ["one turn only"],
        ["mixed 中文 text", "and english"],  # CJK: hashed turn by turn
    ]
    for turns in conversations:
        got = turn_word_hashes(turns)
        expected = [word_hashes(turn) for turn in turns]
        assert len(got) == len(expected)
        for mine, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(mine, theirs)
