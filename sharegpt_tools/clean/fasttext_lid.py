"""fastText's supervised prediction (the lid.176 language model), for a whole chunk of texts in
numpy.

fastText's own `predict` costs ~0.5 µs per character here (each character n-gram is a C++ string,
hashed, then looked up in an `unordered_map` of the pruned model), which made language ID one of
the largest costs of `clean`. The same arithmetic over all texts of a worker's chunk at once is
several times cheaper:

1. tokens are split on fastText's whitespace bytes; each text ends with the end-of-sentence token
   `</s>` (fastText's Python `predict` appends the newline that produces it);
2. every token, wrapped in `<` `>`, gives its UTF-8 character n-grams (minn..maxn characters),
   hashed with 32-bit FNV-1a over the bytes (bytes sign-extended, as fastText's `char` is) into
   `bucket` buckets; a pruned model keeps only some buckets; a token in the vocabulary also adds
   its own row;
3. the text's vector is the mean of those rows of the input matrix (product-quantised in a `.ftz`:
   decoded once at load);
4. the hierarchical softmax gives each label the sum, along its path in the Huffman tree built
   from the label counts, of log(σ + 1e-5) or log(1 - σ + 1e-5) of each node's score; the best
   label and exp(its score) are the prediction.

`tests/clean/test_language.py` checks the labels and scores against fastText itself on texts in
many scripts. The binary format is fastText's `FastText::saveModel` (version 12).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

MAGIC, VERSION = 793712314, 12
LOSS_HS = 1
MODEL_SUPERVISED = 3
# What lid.176.ftz is, and what the tests check against fastText: nothing else is read.
UNSUPPORTED = (
    "only quantised, pruned supervised models with a hierarchical softmax and no word n-grams "
    "(fastText's lid.176.ftz and its like) are supported"
)
EOS = b"</s>"
LABEL_PREFIX = b"__label__"
BOW, EOW = b"<", b">"
FNV_OFFSET, FNV_PRIME = np.uint32(2166136261), np.uint32(16777619)
# A byte as fastText XORs it into the hash: int8_t sign-extended to uint32.
SIGN_EXTENDED = np.array([b if b < 128 else b | 0xFFFFFF00 for b in range(256)], dtype=np.uint32)
PQ_CENTROIDS = 256  # product quantiser: 8-bit codes


class ModelFormatError(ValueError):
    """The file is not a fastText model this reader understands."""


class BinaryReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int | float | bool:
        return self.read(fmt)[0]

    def array(self, dtype: type, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def cstring(self) -> bytes:
        end = self.data.index(b"\0", self.at)
        value = self.data[self.at : end]
        self.at = end + 1
        return value


@dataclass(frozen=True)
class Args:
    dim: int
    word_ngrams: int
    loss: int
    model: int
    bucket: int
    minn: int
    maxn: int

    @classmethod
    def read(cls, reader: BinaryReader) -> Args:
        dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model = reader.read("8i")
        bucket, minn, maxn, _lr_update_rate = reader.read("4i")
        reader.one("d")  # sampling threshold t
        return cls(dim, word_ngrams, loss, model, bucket, minn, maxn)


def read_dense(reader: BinaryReader) -> np.ndarray:
    rows, columns = reader.read("2q")
    return reader.array(np.float32, rows * columns).reshape(rows, columns)


def read_product_quantizer(reader: BinaryReader) -> tuple[int, int, np.ndarray]:
    dim, _subquantizers, sub_dim, last_sub_dim = reader.read("4i")
    centroids = reader.array(np.float32, dim * PQ_CENTROIDS)
    return sub_dim, last_sub_dim, centroids


def decode_product_quantized(reader: BinaryReader) -> np.ndarray:
    """A `QuantMatrix` decoded to the dense (rows, dim) float32 matrix it stands for."""
    has_norms = bool(reader.one("?"))
    rows, dim = reader.read("2q")
    codes = reader.array(np.uint8, reader.one("i"))
    sub_dim, last_sub_dim, centroids = read_product_quantizer(reader)
    subquantizers = len(codes) // rows
    matrix = np.empty((rows, dim), dtype=np.float32)
    codes = codes.reshape(rows, subquantizers).astype(np.int64)
    for m in range(subquantizers):
        # fastText lays the centroids out by subquantizer: m * 256 * sub_dim, then code * width.
        width = last_sub_dim if m == subquantizers - 1 else sub_dim
        base = m * PQ_CENTROIDS * sub_dim
        columns = base + codes[:, m : m + 1] * width + np.arange(width)
        matrix[:, m * sub_dim : m * sub_dim + width] = centroids[columns]
    if has_norms:
        norm_codes = reader.array(np.uint8, rows).astype(np.int64)
        _, _, norm_centroids = read_product_quantizer(reader)
        matrix *= norm_centroids[norm_codes][:, None]
    return matrix


def huffman_paths(counts: list[int]) -> np.ndarray:
    """(labels, depth) columns of [log σ | log(1 - σ) | 0] that each label's path from the root
    adds up, for the tree fastText's `HierarchicalSoftmaxLoss::buildTree` builds: node n's σ
    when the path goes right (binary) there, its 1 - σ when left; shorter paths padded with the
    zero column."""
    labels = len(counts)
    nodes = 2 * labels - 1
    count = [float(c) for c in counts] + [1e15] * (labels - 1)
    parent, binary = [-1] * nodes, [False] * nodes
    leaf, node = labels - 1, labels
    for i in range(labels, nodes):
        chosen = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                chosen.append(leaf)
                leaf -= 1
            else:
                chosen.append(node)
                node += 1
        count[i] = count[chosen[0]] + count[chosen[1]]
        parent[chosen[0]] = parent[chosen[1]] = i
        binary[chosen[1]] = True
    internal = labels - 1
    paths = []
    for label in range(labels):
        path, j = [], label
        while parent[j] != -1:
            path.append(parent[j] - labels + (0 if binary[j] else internal))
            j = parent[j]
        paths.append(path[::-1])  # from the root, in the order fastText's search adds them
    depth = max(len(path) for path in paths)
    padded = [path + [2 * internal] * (depth - len(path)) for path in paths]
    return np.array(padded, dtype=np.int64)


class FastTextModel:
    """A quantised supervised fastText model (`.ftz`, as lid.176), predicting one label per text."""

    def __init__(self, path: Path) -> None:
        reader = BinaryReader(Path(path).read_bytes())
        if reader.read("2i") != (MAGIC, VERSION):
            raise ModelFormatError(f"{path}: not a fastText model file (version {VERSION})")
        self.args = Args.read(reader)
        args = self.args
        if (
            args.model != MODEL_SUPERVISED
            or args.loss != LOSS_HS
            or args.word_ngrams > 1
            or args.minn < 2
        ):
            raise ModelFormatError(f"{path}: {UNSUPPORTED}")
        self._read_dictionary(reader, path)
        if not reader.one("?"):
            raise ModelFormatError(f"{path}: {UNSUPPORTED}")
        self.input = decode_product_quantized(reader)
        if reader.one("?"):
            raise ModelFormatError(f"{path}: {UNSUPPORTED}")
        self.output = np.ascontiguousarray(read_dense(reader).T)  # (dim, internal nodes + 1)
        self.paths = huffman_paths(self.label_counts)

    def _read_dictionary(self, reader: BinaryReader, path: Path) -> None:
        size, self.nwords, nlabels = reader.read("3i")
        _tokens, pruned = reader.read("2q")
        self.words: dict[bytes, int] = {}
        self.labels: list[str] = []
        self.label_counts: list[int] = []
        for index in range(size):
            entry = reader.cstring()
            count, kind = reader.read("qb")
            if kind == 0:
                self.words[entry] = index
            else:
                self.labels.append(entry.decode("utf-8"))
                self.label_counts.append(count)
        assert len(self.labels) == nlabels
        if pruned < 0:  # -1: not pruned (a .bin); 0: every bucket pruned away
            raise ModelFormatError(f"{path}: {UNSUPPORTED}")
        # Bucket → row of the input matrix; -1 for buckets pruned away.
        self.bucket_rows = np.full(self.args.bucket, -1, dtype=np.int32)
        pairs = reader.array(np.int32, 2 * pruned).reshape(-1, 2)
        self.bucket_rows[pairs[:, 0]] = self.nwords + pairs[:, 1]

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(label, probability) of each text, as `fasttext`'s `predict(text, k=1)` gives them."""
        if not texts:
            return []
        hidden = self.hidden(texts)
        scores = row_products(hidden, self.output)  # (texts, internal nodes + 1)
        sigma = (1.0 / (1.0 + np.exp(-scores.astype(np.float64)))).astype(np.float32)
        sigma = sigma[:, : len(self.labels) - 1]
        terms = np.concatenate(
            (
                np.log(sigma + np.float32(1e-5)),
                np.log(np.float32(1.0) - sigma + np.float32(1e-5)),
                np.zeros((len(texts), 1), dtype=np.float32),
            ),
            axis=1,
        )
        log_prob = terms[:, self.paths[:, 0]]
        for step in range(1, self.paths.shape[1]):  # from the root down, as fastText adds
            log_prob += terms[:, self.paths[:, step]]
        best = log_prob.argmax(axis=1)
        probability = np.exp(log_prob[np.arange(len(texts)), best])
        return [(self.labels[b], float(p)) for b, p in zip(best, probability, strict=True)]

    def hidden(self, texts: list[str]) -> np.ndarray:
        """(texts, dim) float32: the mean input row of each text's words and n-grams.

        A chunk repeats its words a lot: each distinct token's rows are summed once, then every
        occurrence adds that sum.
        """
        tokens = Tokens.of([fasttext_line(text) for text in texts])
        word_rows = np.array([self.words.get(t, -1) for t in tokens.distinct], dtype=np.int64)
        gram_tokens, gram_rows = self.ngram_rows(tokens)
        in_vocabulary = np.flatnonzero(word_rows >= 0)
        owner = np.concatenate((in_vocabulary, gram_tokens))
        rows = np.concatenate((word_rows[in_vocabulary], gram_rows))
        distinct = len(tokens.distinct)
        token_sums = segment_sums(self.input[rows], owner, distinct)
        token_counts = np.bincount(owner, minlength=distinct)
        occurrences = tokens.occurrences
        eos = self.input[self.words.get(EOS, 0)].astype(np.float64)  # predict appends </s>
        sums = segment_sums(token_sums[occurrences], tokens.owners, len(texts)) + eos
        counts = np.bincount(tokens.owners, weights=token_counts[occurrences], minlength=len(texts))
        return (sums / (counts + 1)[:, None]).astype(np.float32)

    def ngram_rows(self, tokens: Tokens) -> tuple[np.ndarray, np.ndarray]:
        """(token, input row) of the kept character n-grams of every `<token>`.

        Each code point start advances its own FNV-1a hash byte by byte, and emits it whenever
        it completes the minn-th..maxn-th code point without crossing its token's end. Starts
        that are done drop out, so the work follows the number of n-gram bytes.
        """
        data, ends = tokens.wrapped()
        count = ends.size
        if not count:  # lines of nothing but labels or </s>
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        # A code point starts at every byte that is not a UTF-8 continuation byte (and at the end).
        boundary = np.append((data & 0xC0) != 0x80, True)
        starts = np.flatnonzero(boundary[:-1])
        token = np.repeat(np.arange(count), np.diff(ends, prepend=0))[starts]
        end = ends[token]
        hashes = np.full(starts.size, FNV_OFFSET, dtype=np.uint32)
        at = starts.copy()
        characters = np.zeros(starts.size, dtype=np.int8)
        found_hashes, found_tokens = [], []
        minn, maxn = self.args.minn, self.args.maxn
        while at.size:
            hashes ^= SIGN_EXTENDED[data[at]]
            hashes *= FNV_PRIME
            at += 1
            characters += boundary[at]
            done = boundary[at] & (characters >= minn)
            found_hashes.append(hashes[done])
            found_tokens.append(token[done])
            going = (at < end) & (characters < maxn)
            at, hashes, characters = at[going], hashes[going], characters[going]
            token, end = token[going], end[going]
        rows = self.bucket_rows[np.concatenate(found_hashes) % np.uint32(self.args.bucket)]
        kept = rows >= 0
        return np.concatenate(found_tokens)[kept], rows[kept].astype(np.int64)


def row_products(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """rows @ matrix, one multiply-add per column of `rows` in a fixed order.

    Not a matrix product: BLAS would start threads of its own in every worker process, which spin
    on the cores the other workers need (measured: 12% more CPU for the whole stage); and its
    blocking depends on how many rows there are, so a text's score would depend on its chunk.
    """
    products = rows[:, :1] * matrix[0]
    for d in range(1, rows.shape[1]):
        products += rows[:, d : d + 1] * matrix[d]
    return products


def segment_sums(values: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """(count, columns) float64: the sum of the `values` rows of each owner."""
    if not values.size:
        return np.zeros((count, values.shape[1]), dtype=np.float64)
    return np.stack(
        [
            np.bincount(owners, weights=values[:, d], minlength=count)
            for d in range(values.shape[1])
        ],
        axis=1,
    )


def fasttext_line(text: str) -> bytes:
    """The UTF-8 line fastText would read, with what it never takes as input removed: tokens
    that are labels, and everything from a literal `</s>` on (the end of its line)."""
    line = text.encode("utf-8", "surrogatepass").replace(b"\0", b" ")
    if LABEL_PREFIX not in line and EOS not in line:
        return line
    kept = []
    for token in line.split():
        if token == EOS:
            break
        if not token.startswith(LABEL_PREFIX):
            kept.append(token)
    return b" ".join(kept)


@dataclass(frozen=True)
class Tokens:
    """The whitespace-separated tokens of a chunk of lines: each distinct one once, and where
    each occurrence comes from."""

    distinct: list[bytes]  # in order of first occurrence
    occurrences: np.ndarray  # for each token of each line, in order: its index in `distinct`
    owners: np.ndarray  # ... and its line

    @classmethod
    def of(cls, lines: list[bytes]) -> Tokens:
        # bytes.split() splits on the ASCII whitespace fastText splits on (\0 is made a space)
        per_line = [line.split() for line in lines]
        flat = list(chain.from_iterable(per_line))
        index = {token: i for i, token in enumerate(dict.fromkeys(flat))}
        occurrences = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))
        owners = np.repeat(np.arange(len(lines)), [len(tokens) for tokens in per_line])
        return cls(list(index), occurrences, owners)

    def wrapped(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct tokens as fastText takes their n-grams, `<token>`, laid end to end; and
        where each one ends."""
        data = np.frombuffer(BOW + (EOW + BOW).join(self.distinct) + EOW, dtype=np.uint8)
        ends = np.cumsum([len(token) + 2 for token in self.distinct], dtype=np.int64)
        return (data, ends) if self.distinct else (np.empty(0, np.uint8), ends)
