"""Exact and near-duplicate detection.

Exact: a 64-bit hash of the normalised text of all turns (case and whitespace folded).

Near: MinHash signatures over word n-grams, banded as datasketch's `MinHashLSH` would band them for
the threshold. A chunk of conversations is hashed at once (`WordTable`): one vectorised pass over
all their words, and a one-permutation MinHash with optimal densification (`Signer`): each n-gram
is hashed once and falls into one of `num_perm` bins, instead of being permuted `num_perm` times.
Two signatures agree at a position with probability equal to the sets' Jaccard similarity, as with
classic MinHash (Shrivastava, "Optimal Densification for Fast and Accurate Minwise Hashing",
ICML 2017); `benchmarks/near_dup_quality.py` measures the recall and precision against datasketch.

We do not keep an in-memory `MinHashLSH` index: at 9 bands it costs several KB of Python objects per
conversation. Instead the workers compute each conversation's band hashes, and the main process
looks each chunk's up in a compact sorted index of band keys (`NearDupIndex`, ~16 bytes per key),
confirming each candidate pair with the signatures' estimated Jaccard similarity (read back from a
file) before rejecting anything. Rows are judged as they arrive, so the stage writes its output in
one pass.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from pathlib import Path

import numpy as np

# Words, but each CJK/kana/hangul character on its own: those scripts do not separate words.
CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF))
HAS_CJK = re.compile("[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES) + "]")
_MIX = np.random.default_rng(20230701).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True, slots=True)
class NearDupParams:
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5


@dataclass(frozen=True, slots=True)
class WordTable:
    """The word hashes of a chunk of conversations, flat, with the offsets of turns.

    `hashes[turn_starts[t]:turn_starts[t + 1]]` are the words of turn t, and the turns of
    conversation c are `conversation_turns[c]` up to `conversation_turns[c + 1]`. Computed once,
    used by both the exact keys and the MinHash signatures.
    """

    hashes: np.ndarray  # uint64, one per word
    turn_starts: np.ndarray  # int64, turns + 1 word offsets
    conversation_turns: np.ndarray  # int64, conversations + 1 turn offsets

    @classmethod
    def of(cls, conversations: list[list[str]]) -> WordTable:
        return cls.of_lowered([[value.lower() for value in values] for values in conversations])

    @classmethod
    def of_lowered(cls, conversations: list[list[str]]) -> WordTable:
        """Hash the words of every turn (lower-cased already) in one vectorised pass over all
        the turns' bytes joined by newlines (a word's hash depends on its bytes only, and a
        newline ends a word), cut at the turns' byte offsets; then re-hash the turns with CJK
        text in them one by one."""
        lowered = [value for values in conversations for value in values]
        turns = [value.encode("utf-8") for value in lowered]
        blob = b"\n".join(turns)
        hashes, starts = whitespace_word_spans(blob)
        ends = np.cumsum([len(data) + 1 for data in turns], dtype=np.int64)  # + the newline
        cuts = np.concatenate(([0], np.searchsorted(starts, ends)))  # word offset of each turn
        cjk = cjk_turns(blob, ends, lowered)
        if cjk:
            hashes, cuts = with_cjk_turns(hashes, cuts, {i: lowered[i] for i in cjk})
        turns_per = [len(values) for values in conversations]
        return cls(hashes, cuts, np.concatenate(([0], np.cumsum(turns_per, dtype=np.int64))))

    def __len__(self) -> int:
        return self.conversation_turns.size - 1

    def word_bounds(self) -> np.ndarray:
        """Word offsets of each conversation (conversations + 1)."""
        return self.turn_starts[self.conversation_turns]

    def turns_of(self, conversation: int) -> list[np.ndarray]:
        first, last = self.conversation_turns[conversation : conversation + 2]
        starts = self.turn_starts
        return [self.hashes[starts[t] : starts[t + 1]] for t in range(first, last)]

    def exact_keys(self) -> list[int]:
        """Two conversations get the same key when every turn has the same sequence of
        lower-cased words: case and spacing are folded (and, in CJK text, punctuation), turn
        boundaries kept.

        The key hashes the number of turns, each turn's word count, then all the words: that
        sequence determines every turn's words, so no two different conversations share it.
        """
        counts = np.diff(self.turn_starts)
        words, turns = self.word_bounds(), self.conversation_turns
        keys = []
        for c in range(len(self)):
            first, last = turns[c], turns[c + 1]
            digest = hashlib.blake2b(int(last - first).to_bytes(8, "little"), digest_size=8)
            digest.update(counts[first:last].tobytes())
            digest.update(self.hashes[words[c] : words[c + 1]].tobytes())
            keys.append(int.from_bytes(digest.digest(), "little"))
        return keys


def cjk_turns(blob: bytes, ends: np.ndarray, turns: list[str]) -> list[int]:
    """The turns with CJK text: those holding a UTF-8 lead byte of U+3000–U+DFFF, confirmed by
    the CJK pattern (a vectorised byte test spares the regex the many turns without)."""
    codes = np.frombuffer(blob, dtype=np.uint8)
    leads = np.flatnonzero((codes - np.uint8(0xE3)) <= np.uint8(0xED - 0xE3))  # wraps below E3
    if leads.size == 0:
        return []
    candidates = np.unique(np.searchsorted(ends, leads, side="right"))
    return [int(i) for i in candidates if HAS_CJK.search(turns[i])]


def with_cjk_turns(
    hashes: np.ndarray, cuts: np.ndarray, cjk: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """The flat hashes and turn offsets with each CJK turn's whitespace words replaced by its
    own words (every CJK character one word, punctuation dropped: `cjk_word_hashes`), all CJK
    turns in one pass (a newline between them ends a word)."""
    order = sorted(cjk)
    texts = [cjk[turn] for turn in order]
    words, starts = cjk_word_spans("\n".join(texts))
    ends = np.cumsum([len(text) + 1 for text in texts])
    own = np.split(words, np.searchsorted(starts, ends[:-1]))
    parts, counts = [], np.diff(cuts)
    taken = 0
    for turn, turn_words in zip(order, own, strict=True):
        parts.append(hashes[taken : cuts[turn]])
        parts.append(turn_words)
        counts[turn] = turn_words.size
        taken = cuts[turn + 1]
    parts.append(hashes[taken:])
    return np.concatenate(parts), np.concatenate(([0], np.cumsum(counts)))


def turn_word_hashes(values: list[str]) -> list[np.ndarray]:
    """The word hashes of each turn of one conversation (see `WordTable`)."""
    return WordTable.of([values]).turns_of(0)


def exact_key(values: list[str]) -> int:
    """Hash of the conversation's text with case and whitespace folded (`WordTable.exact_keys`)."""
    return WordTable.of([values]).exact_keys()[0]


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of `text` (see `ngram_hashes`)."""
    return ngram_hashes(word_hashes(text), n)


def ngram_hashes(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams, computed without building n-gram strings.

    Repeated n-grams are left in: a minimum does not change when values repeat, and
    de-duplicating (np.unique) would cost more than the repeats do.

    Each token gets a 64-bit hash; an n-gram's hash mixes its tokens' hashes with fixed odd
    multipliers in uint64 arithmetic and folds to 32 bits (the n-gram identities that the
    near-duplicate quality benchmark counts).
    """
    if token_hashes.size == 0:
        return np.empty(0, dtype=np.uint64)
    width = min(n, token_hashes.size)
    mixed = mix_ngrams(token_hashes, width, token_hashes.size - width + 1)
    return (mixed >> np.uint64(32)) ^ (mixed & np.uint64(0xFFFFFFFF))


def word_hashes(text: str) -> np.ndarray:
    """One 64-bit hash per word of `text` (lower-cased; CJK characters are words of their own)."""
    lowered = text.lower()
    if HAS_CJK.search(lowered):
        return cjk_word_hashes(lowered)
    return whitespace_word_hashes(lowered.encode("utf-8"))


def cjk_word_hashes(lowered: str) -> np.ndarray:
    """Words of a lower-cased text with CJK in it: each CJK character is a word of its own, and
    so is each run of other letters and digits (punctuation and spaces separate words)."""
    return cjk_word_spans(lowered)[0]


def cjk_word_spans(lowered: str) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, code point offsets where each word starts) of the words of `cjk_word_hashes`.

    Vectorised over the code points, with the polynomial hash of `whitespace_word_spans` taken
    over code points instead of bytes (an ASCII word hashes alike in both). Numpy's per-call cost
    is much of the time for one short turn: join a chunk's turns and call this once.
    """
    points = np.frombuffer(lowered.encode("utf-32-le"), dtype=np.uint32)
    if points.size == 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    cjk = np.zeros(points.size, dtype=bool)
    for low, high in CJK_RANGES:
        cjk |= (points >= low) & (points <= high)
    lettered = is_alphanumeric(points) & ~cjk
    edge = np.concatenate(([False], lettered, [False]))
    runs_start = np.flatnonzero(edge[1:-1] & ~edge[:-2])
    runs_end = np.flatnonzero(edge[1:-1] & ~edge[2:]) + 1
    singles = np.flatnonzero(cjk)
    starts = np.concatenate((runs_start, singles))
    ends = np.concatenate((runs_end, singles + 1))
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    return span_hashes(points.astype(np.uint64), starts, ends), starts


def is_alphanumeric(points: np.ndarray) -> np.ndarray:
    """str.isalnum() of each code point: a table for the Basic Multilingual Plane, the few code
    points beyond it (emoji, rare scripts) one by one."""
    table = alphanumeric_table()
    inside = points < table.size
    result = np.zeros(points.size, dtype=bool)
    result[inside] = table[points[inside]]
    for i in np.flatnonzero(~inside):
        result[i] = chr(points[i]).isalnum()
    return result


@lru_cache(maxsize=1)
def alphanumeric_table() -> np.ndarray:
    return np.array([chr(point).isalnum() for point in range(0x10000)], dtype=bool)


# Polynomial hashing of the UTF-8 bytes, vectorised: with C = cumsum(b_j · P^-j) (mod 2^64),
# the hash of the bytes [s, e) is Σ b_j · P^(e-1-j) = P^(e-1) · (C[e] - C[s]). P is odd, hence
# invertible modulo 2^64, and uint64 arithmetic wraps modulo 2^64 by itself.
_P = np.uint64(0x100000001B3)
_P_INVERSE = np.uint64(pow(int(_P), -1, 2**64))


_power_tables: list[tuple[np.ndarray, np.ndarray]] = []  # the largest made so far


def power_tables(length: int) -> tuple[np.ndarray, np.ndarray]:
    """P^k and P^-k (mod 2^64) for k ≤ length at least. Only ever grows (by doubling): chunks of
    alternating sizes would otherwise rebuild a megabyte table per call."""
    if not _power_tables or _power_tables[0][0].size <= length:
        size = 1 << max(16, (length + 1).bit_length())
        _power_tables[:] = [(powers_of(_P, size), powers_of(_P_INVERSE, size))]
    return _power_tables[0]


def powers_of(base: np.uint64, size: int) -> np.ndarray:
    factors = np.full(size, base, dtype=np.uint64)
    factors[0] = 1
    return np.cumprod(factors, dtype=np.uint64)  # wraps modulo 2^64, as intended


def whitespace_word_hashes(data: bytes) -> np.ndarray:
    """Hashes of the whitespace-separated words of UTF-8 `data`, without a Python-level loop."""
    return whitespace_word_spans(data)[0]


def whitespace_word_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, byte offsets where each word starts) of the whitespace-separated words."""
    codes = np.frombuffer(data, dtype=np.uint8)
    empty = (np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64))
    if codes.size == 0:
        return empty
    # ASCII whitespace is space or \t \n \v \f \r (9–13): two SIMD compares, no table lookup.
    is_word = (codes != 32) & ((codes - np.uint8(9)) > np.uint8(4))
    starts = np.flatnonzero(is_word[1:] > is_word[:-1]) + 1
    ends = np.flatnonzero(is_word[1:] < is_word[:-1]) + 1
    if is_word[0]:
        starts = np.concatenate(([0], starts))
    if is_word[-1]:
        ends = np.concatenate((ends, [codes.size]))
    if starts.size == 0:
        return empty
    return span_hashes(codes, starts, ends), starts


def span_hashes(units: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The polynomial hash of each span [start, end) of `units` (bytes or code points)."""
    forward, backward = power_tables(units.size)
    prefix = np.empty(units.size + 1, dtype=np.uint64)  # prefix[0] = 0, then the running sums
    prefix[0] = 0
    with np.errstate(over="ignore"):
        np.multiply(units, backward[: units.size], out=prefix[1:])
        np.cumsum(prefix[1:], out=prefix[1:])
        return forward[ends - 1] * (prefix[ends] - prefix[starts])


# How band_layout weighs false positives against false negatives (see there).
FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


@lru_cache(maxsize=8)
def band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's `MinHashLSH(threshold, num_perm, weights=(0.1,
    0.9))` chooses: the layout with the least weighted error, where the false positive error is
    the area under the LSH curve P(s) = 1 - (1 - s^rows)^bands below the threshold and the false
    negative error the area above it under 1 - P(s).

    Every candidate pair is verified against the signatures afterwards, so a false positive costs
    only a comparison while a false negative is a duplicate kept: weigh recall 9:1 (at 0.8 and 128
    permutations: 14 bands of 9 rows, 87% recall at similarity 0.8 instead of 40% with 9 × 13).

    The integrands are polynomials of degree ≤ num_perm, which Gauss–Legendre quadrature with
    num_perm / 2 + 1 nodes integrates exactly; so no scipy (datasketch imports it: ~1 s).
    """
    layouts = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([b for b, _ in layouts], dtype=np.float64)[:, None]
    rows = np.array([r for _, r in layouts], dtype=np.float64)[:, None]
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def area(low: float, high: float, complement: bool) -> np.ndarray:
        s = (high - low) / 2 * nodes + (high + low) / 2  # the nodes mapped onto [low, high]
        collide = 1 - (1 - s[None, :] ** rows) ** bands
        values = 1 - collide if complement else collide
        return (high - low) / 2 * (values @ weights)

    error = FALSE_POSITIVE_WEIGHT * area(0.0, threshold, False)
    error += FALSE_NEGATIVE_WEIGHT * area(threshold, 1.0, True)
    return layouts[int(np.argmin(error))]  # the first of equals, in datasketch's loop order


@dataclass(frozen=True, slots=True)
class MinHashScheme:
    """The signature's parameters and the LSH band layout they call for."""

    params: NearDupParams
    bands: int
    rows: int

    @classmethod
    def for_params(cls, params: NearDupParams) -> MinHashScheme:
        return cls(params, *band_layout(params.threshold, params.num_perm))


def fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: every output bit depends on every input bit, so the high
    and the low half of a mixed n-gram hash can serve as independent bin and value."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(33))
        values = values * np.uint64(0xFF51AFD7ED558CCD)
        values = values ^ (values >> np.uint64(33))
        values = values * np.uint64(0xC4CEB9FE1A85EC53)
        return values ^ (values >> np.uint64(33))


@dataclass(frozen=True, slots=True)
class Signatures:
    """One row of `num_perm` uint32 values per conversation of a chunk; rows of conversations
    without a single word are meaningless (`has_words` False): they have nothing to be similar
    by."""

    values: np.ndarray  # (conversations, num_perm) uint32
    has_words: np.ndarray  # (conversations,) bool


class Signer:
    """MinHash signatures and band hashes of a chunk of conversations (in the worker processes).

    One-permutation hashing: each word n-gram's 64-bit hash picks a bin (its high half) and a
    value (its low half), and a bin keeps its smallest value — O(n-grams) work instead of
    datasketch's O(n-grams × num_perm). A bin no n-gram fell into (short texts) is filled by
    optimal densification: it copies the first filled bin along its own fixed random sequence of
    the other bins. Because the sequence is the same for every text, two texts still agree at a
    position with probability equal to their Jaccard similarity.
    """

    def __init__(self, scheme: MinHashScheme) -> None:
        self.scheme = scheme
        self.params = scheme.params
        self.bands, self.rows = scheme.bands, scheme.rows
        self.probes = probe_sequences(self.params.num_perm)

    def signatures(self, words: WordTable) -> Signatures:
        k = self.params.num_perm
        hashes, owners = shingle_hashes_of(words, self.params.ngram)
        mixed = fmix64(hashes)
        bins = ((mixed >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)  # multiply-shift
        slots = owners * k + bins.astype(np.int64)
        values = np.full(len(words) * k, np.iinfo(np.uint32).max, dtype=np.uint32)
        np.minimum.at(values, slots, (mixed & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        filled = np.zeros(len(words) * k, dtype=bool)
        filled[slots] = True
        values, filled = values.reshape(-1, k), filled.reshape(-1, k)
        has_words = filled.any(axis=1)
        self._densify(values, filled, has_words)
        return Signatures(values, has_words)

    def _densify(self, values: np.ndarray, filled: np.ndarray, has_words: np.ndarray) -> None:
        """Each empty bin of a conversation with words copies the first filled bin of its probe
        sequence: a few vectorised rounds for the many bins that find one at once, then one
        gather over the whole sequence for the rest (short texts, with few filled bins)."""
        rows, columns = np.nonzero(~filled & has_words[:, None])
        for attempt in range(1, min(4, self.params.num_perm)):
            if rows.size == 0:
                return
            source = self.probes[columns, attempt]
            hit = filled[rows, source]
            values[rows[hit], columns[hit]] = values[rows[hit], source[hit]]
            rows, columns = rows[~hit], columns[~hit]
        if rows.size:
            sequences = self.probes[columns]  # (pending, num_perm) bins in probe order
            first = filled[rows[:, None], sequences].argmax(axis=1)
            values[rows, columns] = values[rows, sequences[np.arange(rows.size), first]]

    def band_hashes(self, signatures: np.ndarray) -> np.ndarray:
        """(conversations, bands) uint64: a multiply-add hash of each band's rows, so equal
        bands give equal 64-bit keys."""
        used = signatures[:, : self.bands * self.rows].astype(np.uint64)
        used = used.reshape(-1, self.bands, self.rows)
        with np.errstate(over="ignore"):
            return (used * _MIX[: self.rows]).sum(axis=2, dtype=np.uint64)


@lru_cache(maxsize=4)
def probe_sequences(k: int) -> np.ndarray:
    """(k, k) bins: row i is bin i, then the other bins in a fixed random order (seeded, so every
    worker and every run densifies alike)."""
    rng = np.random.default_rng(20231001)
    probes = np.empty((k, k), dtype=np.int64)
    for i in range(k):
        others = np.delete(np.arange(k), i)
        probes[i] = np.concatenate(([i], rng.permutation(others)))
    return probes


def shingle_hashes_of(words: WordTable, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash, conversation index) of every word n-gram of the chunk.

    N-grams run across the turns of a conversation, never across conversations; a conversation
    of fewer than n words is one n-gram of all its words (as `ngram_hashes`).
    """
    flat, bounds = words.hashes, words.word_bounds()
    sizes = np.diff(bounds)
    owner_of_word = np.repeat(np.arange(len(words), dtype=np.int64), sizes)
    hashes, owners = [np.empty(0, dtype=np.uint64)], [np.empty(0, dtype=np.int64)]
    if flat.size >= n:
        count = flat.size - n + 1
        whole = owner_of_word[:count] == owner_of_word[n - 1 :]
        hashes.append(mix_ngrams(flat, n, count)[whole])
        owners.append(owner_of_word[:count][whole])
    for c in np.flatnonzero((sizes > 0) & (sizes < n)):
        hashes.append(mix_ngrams(flat[bounds[c] : bounds[c + 1]], int(sizes[c]), 1))
        owners.append(np.array([c], dtype=np.int64))
    return np.concatenate(hashes), np.concatenate(owners)


def mix_ngrams(token_hashes: np.ndarray, width: int, count: int) -> np.ndarray:
    """The 64-bit hash of each of the first `count` n-grams of `width` tokens: their hashes
    mixed with fixed odd multipliers in uint64 arithmetic."""
    mixed = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(width):
            mixed += token_hashes[k : k + count] * _MIX[k]
    return mixed


@dataclass(frozen=True, slots=True)
class NearDuplicate:
    index: int  # row index (in candidate order) of the duplicate
    kept: int  # row index of the conversation kept in its place
    similarity: float  # estimated Jaccard similarity to the first earlier row it resembles


class BandIndex:
    """Band key → the first row that had it, for millions of keys in little memory.

    Keys live in sorted numpy runs merged like a binary counter (a log-structured index): 16 bytes
    per key instead of a Python dict's ~100, a chunk's keys looked up in one vectorised search per
    run, and each key merged into a larger run about log2(rows / chunk) times in all.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their first rows)

    def first_rows(self, keys: np.ndarray) -> np.ndarray:
        """The first row of each of the sorted `keys`' buckets, -1 for keys never added."""
        found = np.full(keys.size, -1, dtype=np.int64)
        for run_keys, run_rows in self.runs:
            at = np.minimum(np.searchsorted(run_keys, keys), run_keys.size - 1)
            hit = run_keys[at] == keys
            found[hit] = run_rows[at[hit]]
        return found

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Add sorted keys the index does not hold yet, each once, with their first rows."""
        if not keys.size:
            return
        run = (keys, rows)
        # Each run is more than twice the next: log2(keys) runs at most, whatever the chunks add.
        while self.runs and self.runs[-1][0].size <= 2 * run[0].size:
            run = merge_runs(self.runs.pop(), run)
        self.runs.append(run)

    @property
    def size(self) -> int:
        return sum(keys.size for keys, _ in self.runs)


def merge_runs(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted (keys, rows) runs with no key in common → one, in linear time."""
    at = np.searchsorted(a[0], b[0]) + np.arange(b[0].size)  # where b's keys land in the merge
    from_a = np.ones(a[0].size + b[0].size, dtype=bool)
    from_a[at] = False
    merged = []
    for values_a, values_b in zip(a, b, strict=True):
        values = np.empty(from_a.size, dtype=values_a.dtype)
        values[at] = values_b
        values[from_a] = values_a
        merged.append(values)
    return merged[0], merged[1]


class SignatureFile:
    """Every row's signature, appended to a file and read back by row: only the rows of candidate
    pairs are ever read, so memory does not grow with the input (512 bytes a row on disk)."""

    def __init__(self, path: Path, num_perm: int) -> None:
        self.path = path
        self.width = num_perm * 4  # uint32 values
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def append(self, signatures: np.ndarray) -> None:
        data = np.ascontiguousarray(signatures, dtype=np.uint32).tobytes()
        while data:
            data = data[os.write(self.fd, data) :]

    def read(self, row: int) -> np.ndarray:
        return np.frombuffer(os.pread(self.fd, self.width, row * self.width), dtype=np.uint32)

    def close(self) -> None:
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


class NearDupIndex:
    """Near duplicates found as the rows arrive, in input order (the stage needs no second pass).

    A row's candidates are the first rows of the band buckets it falls into (the datatrove recipe:
    one comparison per bucket, not one per pair of members); a candidate whose signature agrees
    with the row's on at least `threshold` of the positions makes the row a near duplicate. It
    then points at the kept row of that candidate's cluster (the earliest kept row when it
    resembles several clusters). A row is only ever rejected for resembling an earlier row: a
    later row that resembles two kept rows does not reject the second one after the fact.
    """

    def __init__(self, threshold: float, num_perm: int, signature_path: Path) -> None:
        self.threshold = threshold
        self.buckets = BandIndex()
        self.signatures = SignatureFile(signature_path, num_perm)
        self.rows = 0
        self.kept_as: dict[int, int] = {}  # near-duplicate row → the kept row it duplicates

    def add_chunk(self, bands: np.ndarray, signatures: np.ndarray) -> list[NearDuplicate]:
        """Index the next rows ((rows, bands) uint64 band hashes, (rows, num_perm) uint32
        signatures) and return those that are near duplicates of an earlier row."""
        count, width = bands.shape
        first_row = self.rows
        rows = np.repeat(np.arange(first_row, first_row + count, dtype=np.int64), width)
        # Each band has buckets of its own: equal hashes of two different bands are no match.
        keys = (bands ^ fmix64(np.arange(1, width + 1, dtype=np.uint64))).ravel()
        # Sorted distinct keys, each with its first row in the chunk (row-major: the earliest).
        distinct, first_at, inverse = np.unique(keys, return_index=True, return_inverse=True)
        firsts = self.buckets.first_rows(distinct)
        new = firsts < 0
        firsts[new] = rows[first_at[new]]
        self.buckets.add(distinct[new], firsts[new])
        self.signatures.append(signatures)
        self.rows += count
        firsts = firsts[inverse.ravel()]
        earlier = firsts != rows
        # (later, earlier) pairs as one int64 each, sorted: each row's candidates ascending
        pairs = np.unique((rows[earlier] << 32) | firsts[earlier]).tolist()
        found = []
        for later, group in groupby(pairs, key=lambda pair: pair >> 32):
            candidates = [pair & 0xFFFFFFFF for pair in group]
            duplicate = self._verify(later, signatures[later - first_row], candidates)
            if duplicate is not None:
                found.append(duplicate)
        return found

    def _verify(
        self, row: int, signature: np.ndarray, candidates: list[int]
    ) -> NearDuplicate | None:
        similarity, kept = None, None
        for candidate in candidates:
            agree = np.count_nonzero(self.signatures.read(candidate) == signature)
            estimate = agree / signature.size
            if estimate < self.threshold:
                continue  # an LSH false positive
            root = self.kept_as.get(candidate, candidate)
            kept = root if kept is None else min(kept, root)
            similarity = estimate if similarity is None else similarity
        if kept is None or similarity is None:
            return None
        self.kept_as[row] = kept
        return NearDuplicate(index=row, kept=kept, similarity=similarity)

    def close(self) -> None:
        self.signatures.close()
