"""Exact and near-duplicate detection.

Exact: a 64-bit hash of the normalised text of all turns (case and whitespace folded).

Near: MinHash signatures (datasketch) over word n-grams, banded as datasketch's `MinHashLSH` would
band them for the threshold. We do not keep an in-memory `MinHashLSH` index: at 9 bands it costs
several KB of Python objects per conversation. Instead the workers compute each conversation's band
hashes, the stage spills them with the candidate rows, and `find_near_duplicates` groups equal band
hashes with a sort over a compact (n × bands) uint64 array — the datatrove recipe — then confirms
each candidate pair with the signatures' estimated Jaccard similarity before rejecting anything.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Words, but each CJK/kana/hangul character on its own: those scripts do not separate words.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
TOKEN = re.compile(rf"[{CJK}]|[^\W_]+", re.U)
HAS_CJK = re.compile(rf"[{CJK}]")
_MIX = np.random.default_rng(20230701).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True, slots=True)
class NearDupParams:
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5


def exact_key(values: list[str]) -> int:
    """Hash of the conversation's text with case and whitespace folded."""
    text = "\x1f".join(" ".join(v.lower().split()) for v in values)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words. Plain whitespace splitting (punctuation stays attached, which only makes
    the comparison a little stricter) is several times faster than a regex; text with CJK
    characters, which separate no words, gets one token per character instead."""
    lowered = text.lower()
    if HAS_CJK.search(lowered):
        return TOKEN.findall(lowered)
    return lowered.split()


def shingles(text: str, n: int) -> set[bytes]:
    """The word n-grams themselves (for reading and tests; the signer hashes them directly)."""
    tokens = tokenize_words(text)
    if len(tokens) <= n:
        return {" ".join(tokens).encode("utf-8")} if tokens else set()
    return {" ".join(tokens[i : i + n]).encode("utf-8") for i in range(len(tokens) - n + 1)}


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the distinct word n-grams, computed without building n-gram strings.

    Each token is hashed once (crc32); an n-gram's hash mixes its tokens' hashes with fixed odd
    multipliers in uint64 arithmetic, then folds to 32 bits (what datasketch's permutations take).
    About 5x faster than joining and hashing every n-gram string in Python.
    """
    tokens = tokenize_words(text)
    if not tokens:
        return np.empty(0, dtype=np.uint64)
    token_hashes = np.fromiter(map(token_hash, tokens), dtype=np.uint64, count=len(tokens))
    width = min(n, len(tokens))
    count = len(tokens) - width + 1
    mixed = np.zeros(count, dtype=np.uint64)
    for k in range(width):
        mixed += token_hashes[k : k + count] * _MIX[k]
    folded = (mixed >> np.uint64(32)) ^ (mixed & np.uint64(0xFFFFFFFF))
    return np.unique(folded)


@lru_cache(maxsize=1 << 18)
def token_hash(token: str) -> int:
    # Words follow Zipf's law: a cache hit is several times cheaper than encoding and hashing.
    return zlib.crc32(token.encode("utf-8"))


def identity(value: int) -> int:
    return value


@lru_cache(maxsize=8)
def band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch chooses for this threshold and signature size.

    Every candidate pair is verified against the signatures afterwards, so a false positive costs
    only a comparison while a false negative is a duplicate kept: weigh recall 9:1 (at 0.8 and 128
    permutations: 14 bands of 9 rows, 87% recall at similarity 0.8 instead of 40% with 9 × 13).
    """
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    return lsh.b, lsh.r


class Signer:
    """MinHash signature and band hashes of a conversation (runs in the worker processes)."""

    def __init__(self, params: NearDupParams) -> None:
        from datasketch import MinHash

        self.params = params
        self.bands, self.rows = band_layout(params.threshold, params.num_perm)
        # One template MinHash: copying its permutations is cheaper than regenerating them. The
        # shingles arrive already hashed (see `shingle_hashes`), so its hash function is identity.
        self._template = MinHash(num_perm=params.num_perm, seed=1, hashfunc=identity)

    def signature(self, values: list[str]) -> np.ndarray | None:
        """None for a text without a single word: it has nothing to be similar by."""
        hashes = shingle_hashes(" ".join(values), self.params.ngram)
        if hashes.size == 0:
            return None
        minhash = self._template.copy()
        minhash.update_batch(hashes.tolist())
        return minhash.hashvalues.astype(np.uint32)

    def band_hashes(self, signature: np.ndarray) -> np.ndarray:
        used = signature[: self.bands * self.rows].astype(np.uint64).reshape(self.bands, self.rows)
        # A multiply-add hash of each band's rows: equal bands give equal 64-bit keys.
        return (used * _MIX[: self.rows]).sum(axis=1, dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class NearDuplicate:
    index: int  # row index (in candidate order) of the duplicate
    kept: int  # row index of the conversation kept in its place
    similarity: float  # estimated Jaccard similarity to `kept`


def candidate_pairs(bands: np.ndarray) -> set[tuple[int, int]]:
    """(earlier, later) row pairs that share at least one band bucket."""
    pairs: set[tuple[int, int]] = set()
    n = bands.shape[0]
    if n < 2:
        return pairs
    for column in bands.T:
        order = np.argsort(column, kind="stable")
        sorted_keys = column[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
            members = order[start : start + size]  # stable sort: ascending row order
            first = int(members[0])
            pairs.update((first, int(later)) for later in members[1:])
    return pairs


def find_near_duplicates(
    bands: np.ndarray,
    signature_of: Callable[[list[int]], dict[int, np.ndarray]],
    threshold: float,
) -> list[NearDuplicate]:
    """Rows to reject as near duplicates, each pointing at the earliest row of its cluster.

    `signature_of(indexes)` loads the signatures of just the rows involved in candidate pairs, so
    memory follows the number of duplicates, not the size of the input.
    """
    pairs = candidate_pairs(bands)
    if not pairs:
        return []
    signatures = signature_of(sorted({i for pair in pairs for i in pair}))
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    similarity: dict[int, float] = {}
    for earlier, later in sorted(pairs):
        estimate = float(np.mean(signatures[earlier] == signatures[later]))
        if estimate < threshold:
            continue  # an LSH false positive
        a, b = root(earlier), root(later)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the earliest row of a cluster is the one kept
        similarity.setdefault(later, estimate)
    return [
        NearDuplicate(index=i, kept=root(i), similarity=similarity.get(i, 1.0))
        for i in sorted(parent)
        if root(i) != i
    ]
