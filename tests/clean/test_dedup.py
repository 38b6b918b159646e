"""Exact keys, MinHash banding and near-duplicate clustering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sharegpt_tools.clean.dedup import (
    BandIndex,
    MinHashScheme,
    NearDupIndex,
    NearDupParams,
    Signer,
    WordTable,
    band_layout,
    exact_key,
    shingle_hashes,
    word_hashes,
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


def signer_for(**params: object) -> Signer:
    return Signer(MinHashScheme.for_params(NearDupParams(**params)))  # type: ignore[arg-type]


def run(
    tmp_path: Path, texts: list[str], threshold: float = 0.8, chunk: int = 256
) -> list[tuple[int, int]]:
    """(row, kept row) of the near duplicates, the rows fed to the index `chunk` at a time."""
    signer = signer_for(threshold=threshold)
    signatures = signer.signatures(WordTable.of([[t] for t in texts])).values
    bands = signer.band_hashes(signatures)
    index = NearDupIndex(threshold, 128, tmp_path / "signatures.bin")
    found = []
    for start in range(0, len(texts), chunk):
        found += index.add_chunk(bands[start : start + chunk], signatures[start : start + chunk])
    index.close()
    assert not (tmp_path / "signatures.bin").exists()
    return [(d.index, d.kept) for d in found]


def test_near_duplicates_point_at_the_earliest_kept_row(tmp_path: Path) -> None:
    near = BASE.replace("lazy", "sleepy")
    unrelated = "A completely different sentence about databases, indexes and query planners."
    texts = [BASE, unrelated, near, near + " indeed"]
    for chunk in (1, 2, 4):  # across chunks and within one: the same verdicts
        assert run(tmp_path, texts, chunk=chunk) == [(2, 0), (3, 0)]


def test_dissimilar_texts_are_not_flagged(tmp_path: Path) -> None:
    half = " ".join(BASE.split()[:40]) + " but then something else entirely happened to everyone"
    assert run(tmp_path, [BASE, half]) == []


def test_a_chain_of_edits_points_at_its_first_row(tmp_path: Path) -> None:
    """Each text is a small edit of the one before: all of them duplicate the first one kept,
    also when a later edit no longer resembles the first text itself."""
    words = BASE.split()
    chain = [" ".join(words)]
    for step in range(1, 6):
        edited = list(words)
        edited[12 * step] = f"changed{step}"
        words = edited
        chain.append(" ".join(edited))
    signer = signer_for()
    first_and_last = signer.signatures(WordTable.of([[chain[0]], [chain[-1]]])).values
    assert np.mean(first_and_last[0] == first_and_last[1]) < 0.8  # not alike by themselves
    assert run(tmp_path, chain, chunk=2) == [(row, 0) for row in range(1, 6)]


def test_a_row_that_resembles_two_kept_rows_does_not_reject_the_later_one(tmp_path: Path) -> None:
    """Rows are judged as they arrive: B (unlike A) stays kept when C, resembling both A and B,
    comes after it; C points at the earlier of the two."""
    blocks = [" ".join(f"w{block}x{i}" for i in range(50)) for block in range(3)]
    a = blocks[0] + " " + blocks[1]
    b = blocks[1] + " " + blocks[2]  # Jaccard with a: ~0.3
    c = " ".join(blocks)  # Jaccard ~0.64 with each
    assert run(tmp_path, [a, b, c], threshold=0.5) == [(2, 0)]


def test_a_chunk_of_rows_seen_before_is_judged_too(tmp_path: Path) -> None:
    """A chunk whose band keys are all in the index already adds no keys and still finds its
    duplicates."""
    texts = [BASE, BASE.replace("lazy", "sleepy")]
    assert run(tmp_path, texts + texts, chunk=2) == [(1, 0), (2, 0), (3, 0)]


def test_the_band_index_keeps_the_first_row_of_each_key() -> None:
    """Against a dict, over many chunks (so that runs merge) with repeated keys."""
    rng = np.random.default_rng(3)
    index, reference = BandIndex(), {}
    for chunk in range(200):
        keys = rng.integers(0, 5000, size=64).astype(np.uint64)
        distinct = np.unique(keys)
        found = index.first_rows(distinct)
        assert found.tolist() == [reference.get(int(k), -1) for k in distinct]
        new = found < 0
        index.add(distinct[new], np.full(int(new.sum()), chunk, dtype=np.int64))
        for k in distinct[new].tolist():
            reference[k] = chunk
    assert index.size == len(reference)
    assert len(index.runs) <= 8  # merged like a binary counter: log2(200) runs at most


def overlapping_pair(rng: np.random.Generator, size: int, shared: int) -> tuple[str, str]:
    """Two texts of `size` distinct words each, `shared` of them in both."""
    words = [f"w{i}" for i in rng.choice(10**9, size=2 * size - shared, replace=False)]
    a = words[:size]
    b = words[:shared] + words[size:]
    return " ".join(rng.permutation(a)), " ".join(rng.permutation(b))


def test_signatures_agree_at_a_rate_equal_to_the_jaccard_similarity() -> None:
    """The one-permutation MinHash estimates Jaccard without bias, for texts shorter than the
    signature (most bins densified) and longer (several n-grams per bin), with about the spread
    of classic MinHash (sqrt(J(1-J)/128) = 0.035 at J = 0.8)."""
    rng = np.random.default_rng(7)
    signer = signer_for(ngram=1)
    for size in (20, 100, 1000):
        for target in (0.3, 0.8):
            shared = round(2 * size * target / (1 + target))
            jaccard = shared / (2 * size - shared)  # |A∩B| / |A∪B|
            pairs = [overlapping_pair(rng, size, shared) for _ in range(300)]
            values = signer.signatures(WordTable.of([[t] for pair in pairs for t in pair])).values
            estimates = (values[0::2] == values[1::2]).mean(axis=1)
            assert abs(estimates.mean() - jaccard) < 0.015, (size, jaccard, estimates.mean())
            assert estimates.std() < 2 * np.sqrt(jaccard * (1 - jaccard) / 128), (size, jaccard)


def test_a_signature_does_not_depend_on_the_rest_of_its_chunk() -> None:
    """Workers sign chunks of any make-up: each conversation's signature and exact key must be
    what it would be alone (n-grams never cross from one conversation to the next)."""
    conversations = [
        [BASE, "and a reply"],
        ["one"],
        [""],
        ["中文 text, 日本語のテキスト", BASE[:80]],
        [BASE.upper(), "x"],
    ]
    signer = signer_for()
    together = WordTable.of(conversations)
    signed = signer.signatures(together)
    for i, conversation in enumerate(conversations):
        alone = WordTable.of([conversation])
        assert together.exact_keys()[i] == alone.exact_keys()[0]
        np.testing.assert_array_equal(signed.values[i], signer.signatures(alone).values[0])
    assert signed.has_words.tolist() == [True, True, False, True, True]


def test_a_one_word_text_gets_a_full_signature() -> None:
    """Densification fills every bin from the one filled bin: no empty-bin sentinel is left to
    make two unrelated short texts look alike."""
    values = signer_for().signatures(WordTable.of([["hello"], ["world"]])).values
    assert len(set(values[0].tolist())) == 1 and len(set(values[1].tolist())) == 1
    assert values[0][0] != values[1][0]


def test_one_pass_over_a_conversation_gives_each_turns_own_word_hashes() -> None:
    """`WordTable` hashes the turns joined (one numpy pass): the same arrays as hashing each
    turn alone, whatever the turns hold."""
    from sharegpt_tools.clean.dedup import turn_word_hashes

    conversations = [
        ["Hello there", "General Kenobi!\n\nYou are a bold one."],
        ["", "  \t ", "word", "Ünïcödé café naïve", "x\ny\r\nz"],
        ["trailing space ", " leading space", "émoji 🙂 here", "Groß STRASSE"],
        ["one turn only"],
        ["mixed 中文 text", "and english"],  # CJK: hashed turn by turn
        ["한국어 텍스트。", "“quoted” — em dash, ½ and 😀", "日本語のテキスト"],
    ]
    table = WordTable.of(conversations)  # all of them in one pass, as a worker's chunk
    for c, turns in enumerate(conversations):
        expected = [word_hashes(turn) for turn in turns]
        for got in (turn_word_hashes(turns), table.turns_of(c)):
            assert len(got) == len(expected)
            for mine, theirs in zip(got, expected, strict=True):
                np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("num_perm", [16, 128, 256])
def test_band_layout_is_the_one_datasketch_chooses(num_perm: int) -> None:
    """The same bands × rows as `MinHashLSH` with our weights, computed without scipy."""
    from datasketch import MinHashLSH

    for threshold in (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95):
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
        assert band_layout(threshold, num_perm) == (lsh.b, lsh.r), threshold
