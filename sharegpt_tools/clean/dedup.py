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


def turn_word_hashes(values: list[str]) -> list[np.ndarray]:
    """The word hashes of each turn: computed once, used by both the exact and the MinHash key.

    Without CJK text the turns are hashed in one vectorised pass over their bytes joined by
    newlines (a word's hash depends on its bytes only, and a newline ends a word), then split at
    the turns' byte offsets: one numpy pass per conversation instead of one per turn.
    """
    lowered = [value.lower() for value in values]
    if len(lowered) < 2 or any(HAS_CJK.search(value) for value in lowered):
        return [word_hashes(value) for value in values]
    encoded = [value.encode("utf-8") for value in lowered]
    hashes, starts = whitespace_word_spans(b"\n".join(encoded))
    ends = np.cumsum([len(data) + 1 for data in encoded])[:-1]  # each turn's end + its newline
    return np.split(hashes, np.searchsorted(starts, ends))


def exact_key(values: list[str]) -> int:
    """Hash of the conversation's text with case and whitespace folded (see `exact_key_of`)."""
    return exact_key_of(turn_word_hashes(values))


def exact_key_of(turn_hashes: list[np.ndarray]) -> int:
    """Two conversations get the same key when every turn has the same sequence of lower-cased
    words: case and spacing are folded (and, in CJK text, punctuation), turn boundaries kept."""
    digest = hashlib.blake2b(digest_size=8)
    for hashes in turn_hashes:
        digest.update(hashes.tobytes())
        digest.update(b"\x1f")  # one byte: a turn boundary never looks like 8 hash bytes
    return int.from_bytes(digest.digest(), "little")


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of `text` (see `ngram_hashes`)."""
    return ngram_hashes(word_hashes(text), n)


def ngram_hashes(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams, computed without building n-gram strings.

    Repeated n-grams are left in: a minimum does not change when values repeat, and
    de-duplicating (np.unique) would cost more than the repeats do.

    Each token gets a 64-bit hash; an n-gram's hash mixes its tokens' hashes with fixed odd
    multipliers in uint64 arithmetic and folds to 32 bits (what datasketch's permutations take).
    """
    if token_hashes.size == 0:
        return np.empty(0, dtype=np.uint64)
    width = min(n, token_hashes.size)
    count = token_hashes.size - width + 1
    mixed = np.zeros(count, dtype=np.uint64)
    for k in range(width):
        mixed += token_hashes[k : k + count] * _MIX[k]
    return (mixed >> np.uint64(32)) ^ (mixed & np.uint64(0xFFFFFFFF))


def word_hashes(text: str) -> np.ndarray:
    """One 64-bit hash per word of `text` (lower-cased; CJK characters are words of their own)."""
    lowered = text.lower()
    if HAS_CJK.search(lowered):
        tokens = TOKEN.findall(lowered)
        return np.fromiter(map(token_hash, tokens), dtype=np.uint64, count=len(tokens))
    return whitespace_word_hashes(lowered.encode("utf-8"))


@lru_cache(maxsize=1 << 18)
def token_hash(token: str) -> int:
    # Words follow Zipf's law: a cache hit is several times cheaper than encoding and hashing.
    return zlib.crc32(token.encode("utf-8"))


# Polynomial hashing of the UTF-8 bytes, vectorised: with C = cumsum(b_j · P^-j) (mod 2^64),
# the hash of the bytes [s, e) is Σ b_j · P^(e-1-j) = P^(e-1) · (C[e] - C[s]). P is odd, hence
# invertible modulo 2^64, and uint64 arithmetic wraps modulo 2^64 by itself.
_P = np.uint64(0x100000001B3)
_P_INVERSE = np.uint64(pow(int(_P), -1, 2**64))
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True


@lru_cache(maxsize=1)
def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """P^k and P^-k (mod 2^64) for k < size; cached, the size grows by doubling."""

    def powers_of(base: np.uint64) -> np.ndarray:
        factors = np.full(size, base, dtype=np.uint64)
        factors[0] = 1
        return np.cumprod(factors, dtype=np.uint64)  # wraps modulo 2^64, as intended

    return powers_of(_P), powers_of(_P_INVERSE)


def power_tables(length: int) -> tuple[np.ndarray, np.ndarray]:
    size = 1 << max(16, (length + 1).bit_length())
    return _powers(size)


def whitespace_word_hashes(data: bytes) -> np.ndarray:
    """Hashes of the whitespace-separated words of UTF-8 `data`, without a Python-level loop."""
    return whitespace_word_spans(data)[0]


def whitespace_word_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, byte offsets where each word starts) of the whitespace-separated words."""
    codes = np.frombuffer(data, dtype=np.uint8)
    empty = (np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64))
    if codes.size == 0:
        return empty
    is_word = ~_WHITESPACE[codes]
    edges = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return empty
    forward, backward = power_tables(codes.size)
    with np.errstate(over="ignore"):
        weighted = np.cumsum(codes * backward[: codes.size], dtype=np.uint64)
        prefix = np.concatenate((np.zeros(1, dtype=np.uint64), weighted))  # stays uint64
        return forward[ends - 1] * (prefix[ends] - prefix[starts]), starts


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


@dataclass(frozen=True)
class MinHashScheme:
    """datasketch's permutations and LSH band layout, made once in the main process.

    Workers receive this small object instead of importing datasketch (whose `lsh` module pulls
    in scipy: ~0.45 s per process) and apply the permutations with numpy (`Signer.signature`).
    """

    a: np.ndarray  # uint32 multipliers of datasketch's affine32 permutations
    b: np.ndarray  # uint32 offsets
    bands: int
    rows: int

    @classmethod
    def from_datasketch(cls, params: NearDupParams) -> MinHashScheme:
        from datasketch import MinHash

        a, b = MinHash(num_perm=params.num_perm, seed=1, scheme="affine32").permutations
        bands, rows = band_layout(params.threshold, params.num_perm)
        return cls(np.asarray(a, np.uint32), np.asarray(b, np.uint32), bands, rows)


def fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: the pre-mix datasketch's affine32 scheme applies."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


class Signer:
    """MinHash signature and band hashes of a conversation (runs in the worker processes)."""

    def __init__(self, params: NearDupParams, scheme: MinHashScheme | None = None) -> None:
        self.params = params
        self.scheme = scheme or MinHashScheme.from_datasketch(params)
        self.bands, self.rows = self.scheme.bands, self.scheme.rows

    def signature(self, values: list[str]) -> np.ndarray | None:
        """datasketch's affine32 MinHash of the word n-grams, as one numpy expression.

        Equal to `MinHash(num_perm, seed=1).update_batch(hashes)` with identity hashing (a test
        checks it), without datasketch's per-element Python loop. None for a text without a
        single word: it has nothing to be similar by.
        """
        return self.signature_of(turn_word_hashes(values))

    def signature_of(self, turn_hashes: list[np.ndarray]) -> np.ndarray | None:
        """The signature from the turns' word hashes (n-grams run across turn boundaries)."""
        hashes = ngram_hashes(np.concatenate(turn_hashes), self.params.ngram)
        if hashes.size == 0:
            return None
        mixed = fmix32(hashes.astype(np.uint32))[:, None]
        with np.errstate(over="ignore"):  # uint32 arithmetic wraps, as the scheme intends
            permuted = mixed * self.scheme.a[None, :] + self.scheme.b[None, :]
        return permuted.min(axis=0)

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
