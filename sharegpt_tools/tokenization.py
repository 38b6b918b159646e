"""The `tokenize` stage: labeled (or subsampled) conversations → a Hugging Face `datasets` folder.

Each conversation is rendered into segments (`templates.render`); content segments (user,
assistant, system text) are tokenized as plain text in large batches by the fast tokenizer (the
ids of `tok(texts, add_special_tokens=False, split_special_tokens=True)`), so that
`<|end_of_turn|>`, `</s>` or `GPT4 Assistant:` typed by a user stay ordinary text; template pieces
are tokenized once per distinct string; the end-of-turn marker and BOS are added by id. Rows are
then assembled for a whole batch at once with numpy gathers, and streamed to Arrow.

Token rules (DESIGN.md): BOS, template text, system and user text get weight 0; assistant content
and the `<|end_of_turn|>` closing an assistant turn get class weight x that turn's `turn_weights`
entry; `labels` is `input_ids` where the weight is > 0, else -100.

Long conversations (`--long`):
* split: cut at exchange boundaries (an exchange is a user turn and the turns after it) into pieces
  that fit; every piece repeats the header (BOS, the `beginning` condition header, the system turn)
  and then starts with a user turn. An exchange that alone does not fit is truncated (counted).
  Pieces keep the conversation's `id`; the `piece` column numbers them from 0 (0 for whole rows).
* truncate: keep the first `max_length` tokens. * drop: drop the conversation (counted).
A row left with no supervised token by truncation is dropped (counted); a row whose assistant turns
all have weight 0 is kept as is (counted as `rows_without_supervision`).

Exact decoding: decoding `input_ids` gives back the rendered text for byte-level BPE tokenizers,
since every piece round-trips on its own. Token boundaries at a template/content join differ from
tokenizing the whole string at once (`:`,` `,`Q` rather than `:`,` Q`); the text is the same, and
an inference prompt ending in the generation prompt `GPT4 Assistant: ` ends with the same lone
space token as training rows. SentencePiece-style tokenizers (Metaspace pre-tokenizer or
a `Prepend("▁")` normaliser) add a dummy-prefix space to every separately tokenized piece; this is
detected by a probe and handled the way the piece is meant to be read: content keeps its dummy
prefix, which stands for the single space that ends every role prefix (`User:` + `▁Q`), and
template pieces are tokenized by a copy of the tokenizer that never prepends. The probe then checks
that a rendered sample decodes exactly, or the stage refuses the tokenizer.

Validation split: a conversation goes to `validation` when blake2b(seed, id) < val_fraction, so
the split depends only on (id, seed) and all pieces of one conversation share it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sharegpt_tools import templates
from sharegpt_tools.records import ROLE_GPT, ROLE_HUMAN, ROLE_SYSTEM
from sharegpt_tools.templates import CONTENT_KINDS, Position
from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    StageError,
    Workspace,
    fingerprint,
    stage_manifest,
    write_json_atomic,
)

TOKENIZER_DIR = "tokenizer"
SPLITS = ("train", "validation")
IGNORE_INDEX = -100
INPUT_COLUMNS = ["id", "conversations", "class", "weight", "condition", "turn_weights"]
OUTPUT_COLUMNS = ["input_ids", "labels", "loss_weights", "attention_mask", "length"]
OUTPUT_COLUMNS += ["class", "id", "piece"]

ProgressCallback = Callable[[int, int, int], None]  # (conversations done, total, tokens out)


class TokenizeError(Exception):
    """A user error (tokenizer unusable, --max-length too small...): one line, no traceback."""


class LongMode(StrEnum):
    SPLIT = "split"
    TRUNCATE = "truncate"
    DROP = "drop"


@dataclass(frozen=True)
class TokenizeOptions:
    tokenizer: Path
    position: Position = Position.BEFORE_SPEAKER
    max_length: int = 4096
    long: LongMode = LongMode.SPLIT
    eot: str = templates.DEFAULT_EOT
    val_fraction: float = 0.01
    seed: int = 0
    batch_rows: int = 1024  # conversations per encode call

    def to_json(self) -> dict:
        return {
            "tokenizer": str(self.tokenizer),
            "position": str(self.position),
            "max_length": self.max_length,
            "long": str(self.long),
            "eot": self.eot,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }


def features() -> Any:
    """The declared columns of the contract (datasets.Features; Arrow `list<int32>`, not large)."""
    from datasets import Features, List, Value

    return Features(
        {
            "input_ids": List(Value("int32")),
            "labels": List(Value("int32")),
            "loss_weights": List(Value("float32")),
            "attention_mask": List(Value("int8")),
            "length": Value("int32"),
            "class": Value("string"),
            "id": Value("string"),
            "piece": Value("int32"),
        }
    )


# --- the tokenizer --------------------------------------------------------------------------------


@dataclass
class ChatTokenizer:
    """A fast tokenizer with the end-of-turn token, plus the plain-text encoders the stage uses."""

    tok: Any  # transformers TokenizersBackend
    path: Path
    eot: str
    eot_id: int
    bos_id: int | None
    vocab_before: int
    vocab_after: int
    added: list[str]
    dummy_prefix: bool = False
    _content_backend: Any = None  # a private `tokenizers.Tokenizer` that keeps specials plain
    _template_backend: Any = None  # a never-prepending copy, for SentencePiece-style tokenizers
    _cache: dict[str, list[int]] = field(default_factory=dict)

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text as plain text: special-token strings are not special here.

        Same ids as `tok(texts, add_special_tokens=False, split_special_tokens=True)` (tested),
        from a private copy of the backend with `encode_special_tokens` on, no truncation or
        padding, and without offsets or the BatchEncoding round trip: the stage's budget is the
        bare `encode_batch` rate. The copy is private so transformers can never reset the flag.
        """
        if not texts:
            return []
        return [
            e.ids for e in self._content_backend.encode_batch_fast(texts, add_special_tokens=False)
        ]

    def template_ids(self, text: str) -> list[int]:
        """Ids of a template piece, cached: there are only a handful of distinct ones."""
        ids = self._cache.get(text)
        if ids is None:
            if text == self.eot:
                ids = [self.eot_id]
            elif self.dummy_prefix:
                # The trailing space of `User: ` is carried by the content's dummy prefix.
                piece = text[:-1] if text.endswith(" ") else text
                ids = self._template_backend.encode(piece, add_special_tokens=False).ids
            else:
                ids = self.encode_plain([text])[0]
            self._cache[text] = ids
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def describe(self) -> dict:
        files = tokenizer_files(self.path)
        return {
            "path": str(self.path.resolve()),
            "sha256": combined_sha256(files),
            "files": files,
            "class": type(self.tok).__name__,
            "vocab_size_before": self.vocab_before,
            "vocab_size_after": self.vocab_after,
            "added_special_tokens": self.added,
            "eot": {"token": self.eot, "id": self.eot_id},
            "bos": None
            if self.bos_id is None
            else {"token": self.tok.bos_token, "id": self.bos_id},
            "dummy_prefix": self.dummy_prefix,
            "saved_to": TOKENIZER_DIR,
        }


def load_tokenizer(path: Path, eot: str = templates.DEFAULT_EOT) -> ChatTokenizer:
    """Load a local fast tokenizer and add `eot` as a special token when it lacks one."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # encode batches on all cores
    if not path.is_dir():
        raise TokenizeError(f"tokenizer folder {path} does not exist")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds; the user needs the message
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenizeError(f"cannot load a tokenizer from {path}: {first_line}") from exc
    if not getattr(tok, "is_fast", False) or not hasattr(tok, "backend_tokenizer"):
        raise TokenizeError(
            f"{path} holds a slow {type(tok).__name__}: a fast tokenizer (tokenizer.json) is "
            "required for batched tokenization"
        )
    vocab_before = len(tok)
    added: list[str] = []
    if eot not in tok.get_vocab():
        # transformers 5: extra special tokens live under `extra_special_tokens`; keep any the
        # model already has rather than replacing the list.
        tok.add_special_tokens({"extra_special_tokens": [eot]}, replace_extra_special_tokens=False)
        added.append(eot)
    eot_id = tok.convert_tokens_to_ids(eot)
    chat = ChatTokenizer(
        tok=tok,
        path=path,
        eot=eot,
        eot_id=eot_id,
        bos_id=tok.bos_token_id,
        vocab_before=vocab_before,
        vocab_after=len(tok),
        added=added,
        _content_backend=plain_copy(tok.backend_tokenizer),
    )
    check_exact_decoding(chat)
    return chat


def plain_copy(backend: Any) -> Any:
    """A copy of the backend that tokenizes special-token text as text, never truncating."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    copy.encode_special_tokens = True
    return copy


def check_exact_decoding(chat: ChatTokenizer) -> None:
    """Probe how separately tokenized pieces decode; handle a SentencePiece dummy prefix."""
    a, b = chat.encode_plain(["ab", "cd"])
    if chat.decode(a + b) != "abcd" and chat.decode(a) == "ab":
        chat._template_backend = never_prepending(chat.tok.backend_tokenizer)
        chat.dummy_prefix = chat._template_backend is not None
    roles = [ROLE_HUMAN, ROLE_GPT, ROLE_HUMAN, ROLE_GPT]
    texts = ["Hi there", "Hello! How can I help?", "x = 1", "Done."]
    rendered = templates.render(roles, texts, "GPT4", Position.BEFORE_SPEAKER, chat.eot)
    ids: list[int] = []
    for segment in rendered.segments():
        if segment.kind in CONTENT_KINDS:
            ids += chat.encode_plain([segment.text])[0]
        else:
            ids += chat.template_ids(segment.text)
    if chat.decode(ids) != rendered.text():
        raise TokenizeError(
            f"tokenizer {chat.path} does not decode separately tokenized pieces back to the "
            f"rendered text ({chat.decode(ids)!r} != {rendered.text()!r}); byte-level BPE or "
            "SentencePiece (Metaspace) tokenizers are supported"
        )


def never_prepending(backend: Any) -> Any:
    """A copy of a SentencePiece-style backend that adds no dummy prefix (None if not one)."""
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    changed = False

    def strip(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, dict):
            if node.get("type") == "Metaspace" and node.get("prepend_scheme") != "never":
                changed = True
                node = {**node, "prepend_scheme": "never", "add_prefix_space": False}
            if node.get("type") == "Sequence":
                for key in ("normalizers", "pretokenizers"):
                    if key in node:
                        kept = [strip(n) for n in node[key] if not is_prepend(n)]
                        changed |= len(kept) != len(node[key])
                        node = {**node, key: kept}
            return node
        return node

    def is_prepend(node: Any) -> bool:
        return isinstance(node, dict) and node.get("type") == "Prepend"

    normalizer = spec.get("normalizer")
    if is_prepend(normalizer):
        spec["normalizer"], changed = None, True
    else:
        spec["normalizer"] = strip(normalizer)
    spec["pre_tokenizer"] = strip(spec.get("pre_tokenizer"))
    if not changed:
        return None
    return plain_copy(Tokenizer.from_str(json.dumps(spec)))


def tokenizer_files(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def combined_sha256(files: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()


# --- input ----------------------------------------------------------------------------------------


@dataclass
class InputStage:
    name: str
    path: Path
    manifest: dict
    note: str

    def fingerprint(self) -> str:
        """The stage's own fingerprint (a hash of its manifest for a hand-made --input folder)."""
        return self.manifest.get("fingerprint") or fingerprint(self.manifest)


def resolve_input(ws: Workspace, explicit: Path | None = None) -> InputStage:
    """subsampled/ when it was made from the current labeled/, else labeled/; stale → StageError."""
    if explicit is not None:
        manifest_path = explicit / MANIFEST
        if not (explicit / CONVERSATIONS).is_file() or not manifest_path.is_file():
            raise StageError(f"{explicit} is not a stage folder ({CONVERSATIONS} + {MANIFEST})")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        name = manifest.get("stage", explicit.name)
        return InputStage(name, explicit, manifest, f"given with --input ({name} stage)")
    labeled = ws.require("labeled")
    sub = ws.stage("subsampled")
    if not sub.exists():
        return InputStage("labeled", ws.stage("labeled"), labeled, "no subsampled/ stage")
    if not (sub / MANIFEST).is_file():
        raise StageError(f"{sub} is incomplete (no {MANIFEST}): re-run subsample or remove it")
    manifest = ws.manifest("subsampled")
    made_from = (manifest.get("parent") or {}).get("fingerprint")
    if made_from != labeled["fingerprint"]:
        raise StageError(
            f"{sub} is stale: made from labeled fingerprint {made_from}, but labeled/ is now "
            f"{labeled['fingerprint']}; re-run `sharegpt-tools subsample ... -w {ws.root}` "
            f"or remove {sub}"
        )
    return InputStage("subsampled", sub, manifest, "subsampled/ is up to date with labeled/")


def class_table(parquet: Path) -> list[tuple[str, str, float]]:
    """Distinct (class, condition) of a stage with the class weight, most frequent first."""
    table = pq.read_table(parquet, columns=["class", "condition", "weight"])
    columns = (table.column(n).to_pylist() for n in ("class", "condition", "weight"))
    seen = Counter(zip(*columns, strict=True))
    table_rows: dict[tuple[str, str], float] = {}
    for (name, condition, weight), _ in seen.most_common():
        # float32 in Parquet: 0.1 reads back as 0.10000000149; keep the value the user wrote.
        table_rows.setdefault((name or "", condition or ""), float(f"{weight or 0.0:.7g}"))
    return [(name, condition, weight) for (name, condition), weight in table_rows.items()]


def in_validation(conversation_id: str, seed: int, fraction: float) -> bool:
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}\0{conversation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


# --- one batch: render → encode → assemble --------------------------------------------------------


@dataclass
class Prepared:
    """A batch rendered into a flat segment table; content texts wait for the tokenizer."""

    ids: list[str]
    classes: list[str]
    validation: list[bool]
    texts: list[str]  # content to tokenize
    seg_content: list[bool]  # per segment: content (ref → texts) or template (ref → pool)
    seg_ref: list[int]
    seg_weight: list[float]
    potential: list[bool]  # per segment: would be supervised (weight > 0) if present
    # Per conversation: the segment index where its header, each exchange and the end start.
    bounds: list[list[int]]

    def add(self, content: bool, ref: int, weight: float) -> None:
        self.seg_content.append(content)
        self.seg_ref.append(ref)
        self.seg_weight.append(weight)
        self.potential.append(weight > 0)


class TemplatePool:
    """Distinct template pieces' ids in one array, so rows are assembled by numpy gathers."""

    def __init__(self, chat: ChatTokenizer) -> None:
        self.chat = chat
        self.index: dict[str, int] = {}
        self.pieces: list[list[int]] = []

    def ref(self, text: str) -> int:
        ref = self.index.get(text)
        if ref is None:
            ref = self.index[text] = len(self.pieces)
            self.pieces.append(self.chat.template_ids(text))
        return ref

    def bos_ref(self) -> int | None:
        if self.chat.bos_id is None:
            return None
        ref = self.index.get("\0bos")
        if ref is None:
            ref = self.index["\0bos"] = len(self.pieces)
            self.pieces.append([self.chat.bos_id])
        return ref

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(all ids, offsets, lengths)."""
        lengths = np.fromiter(map(len, self.pieces), np.int64, len(self.pieces))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = np.fromiter(itertools.chain.from_iterable(self.pieces), np.int32, lengths.sum())
        return flat, offsets, lengths


def prepare(batch: pa.RecordBatch, pool: TemplatePool, options: TokenizeOptions) -> Prepared:
    conversations = batch.column("conversations")
    turn_offsets = conversations.offsets.to_numpy() - conversations.offsets[0].as_py()
    turns = conversations.flatten()
    roles = turns.field("from").to_pylist()
    values = turns.field("value").to_pylist()
    turn_weights = batch.column("turn_weights").to_pylist()
    ids = batch.column("id").to_pylist()
    classes = [c or "" for c in batch.column("class").to_pylist()]
    weights = batch.column("weight").to_pylist()
    conditions = batch.column("condition").to_pylist()
    bos = pool.bos_ref()
    p = Prepared(ids, classes, [], [], [], [], [], [], [])
    for i, conversation_id in enumerate(ids):
        start, end = int(turn_offsets[i]), int(turn_offsets[i + 1])
        tw = turn_weights[i] if turn_weights[i] is not None else [1.0] * (end - start)
        if len(tw) != end - start:
            raise TokenizeError(
                f"conversation {conversation_id}: {len(tw)} turn_weights for {end - start} turns"
            )
        p.validation.append(in_validation(conversation_id, options.seed, options.val_fraction))
        rendered = templates.render(
            roles[start:end], values[start:end], conditions[i] or "", options.position, options.eot
        )
        class_weight = float(weights[i] or 0.0)
        bounds = [len(p.seg_ref)]
        if bos is not None:
            p.add(False, bos, 0.0)
        for group in [rendered.header, *rendered.exchanges]:
            if group is not rendered.header:
                bounds.append(len(p.seg_ref))
            for segment in group:
                weight = class_weight * tw[segment.turn] if segment.supervised else 0.0
                if segment.kind in CONTENT_KINDS:
                    p.add(True, len(p.texts), weight)
                    p.texts.append(segment.text)
                else:
                    p.add(False, pool.ref(segment.text), weight)
        bounds.append(len(p.seg_ref))
        p.bounds.append(bounds)
    return p


@dataclass
class Counts:
    """Additive counts of the stage (saved in the manifest)."""

    conversations_in: int = 0
    long_conversations: int = 0
    split_conversations: int = 0
    pieces_from_splits: int = 0
    truncated_exchanges: int = 0
    truncated_conversations: int = 0
    dropped_too_long: int = 0
    dropped_no_supervision_after_truncation: int = 0
    rows_without_supervision: int = 0
    content_tokens: int = 0
    by_class: dict[str, Counter] = field(default_factory=dict)
    rows_by_split: Counter = field(default_factory=Counter)
    # Conversations that produced no row at all, by reason.
    rejected_by_reason: Counter = field(default_factory=Counter)

    def to_json(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if isinstance(v, int)}
        # The shared manifest schema's conversation accounting: in = kept + rejected.
        data["in"] = self.conversations_in
        data["rejected"] = sum(self.rejected_by_reason.values())
        data["kept"] = self.conversations_in - data["rejected"]
        data["rejected_by_reason"] = dict(self.rejected_by_reason.most_common())
        data["rows"] = sum(self.rows_by_split.values())
        data["tokens"] = sum(c["tokens"] for c in self.by_class.values())
        data["supervised_tokens"] = sum(c["supervised_tokens"] for c in self.by_class.values())
        data["rows_by_split"] = {s: self.rows_by_split[s] for s in SPLITS}
        data["by_class"] = {k: dict(v) for k, v in sorted(self.by_class.items())}
        return data


def plan_rows(
    p: Prepared, seg_len: np.ndarray, options: TokenizeOptions, counts: Counts
) -> tuple[list[np.ndarray], list[int], list[int], list[int]]:
    """Which segments make each output row: (segment indexes, length cap, conversation, piece)."""
    limit = options.max_length
    seg_cum = np.concatenate([[0], np.cumsum(seg_len)])
    rows: list[np.ndarray] = []
    caps: list[int] = []
    owner: list[int] = []
    piece_no: list[int] = []

    def emit(segments: np.ndarray, conversation: int, piece: int, cap: int) -> None:
        rows.append(segments), caps.append(cap), owner.append(conversation)
        piece_no.append(piece)

    for c, bounds in enumerate(p.bounds):
        first, last = bounds[0], bounds[-1]
        length = int(seg_cum[last] - seg_cum[first])
        if length <= limit:
            emit(np.arange(first, last), c, 0, limit)
            continue
        counts.long_conversations += 1
        if options.long is LongMode.DROP:
            counts.dropped_too_long += 1
        elif options.long is LongMode.TRUNCATE:
            counts.truncated_conversations += 1
            emit(np.arange(first, last), c, 0, limit)
        else:
            head = np.arange(bounds[0], bounds[1])
            head_len = int(seg_cum[bounds[1]] - seg_cum[bounds[0]])
            pieces: list[list[int]] = []
            used = head_len
            for k in range(1, len(bounds) - 1):
                size = int(seg_cum[bounds[k + 1]] - seg_cum[bounds[k]])
                if pieces and pieces[-1] and used + size <= limit:
                    pieces[-1].append(k)
                    used += size
                else:
                    pieces.append([k])
                    used = head_len + size
                    counts.truncated_exchanges += used > limit
            counts.split_conversations += 1
            counts.pieces_from_splits += len(pieces)
            for n, exchanges in enumerate(pieces):
                body = [np.arange(bounds[k], bounds[k + 1]) for k in exchanges]
                emit(np.concatenate([head, *body]), c, n, limit)
    return rows, caps, owner, piece_no


def assemble(
    p: Prepared,
    content: list[list[int]],
    pool: TemplatePool,
    options: TokenizeOptions,
    counts: Counts,
) -> dict[str, pa.RecordBatch]:
    """Token ids of the content + the template pool → the batch's rows, per split."""
    n_texts = len(content)
    content_len = np.fromiter(map(len, content), np.int64, n_texts)
    flat_content = np.fromiter(
        itertools.chain.from_iterable(content), np.int32, int(content_len.sum())
    )
    counts.content_tokens += len(flat_content)
    template_flat, template_offsets, template_len = pool.arrays()
    token_pool = np.concatenate([template_flat, flat_content])
    content_offsets = np.cumsum(content_len) - content_len + len(template_flat)

    is_content = np.array(p.seg_content, dtype=bool)
    ref = np.array(p.seg_ref, dtype=np.int64)
    seg_len = np.zeros(len(ref), dtype=np.int64)
    seg_start = np.zeros(len(ref), dtype=np.int64)
    seg_len[is_content] = content_len[ref[is_content]]
    seg_start[is_content] = content_offsets[ref[is_content]]
    seg_len[~is_content] = template_len[ref[~is_content]]
    seg_start[~is_content] = template_offsets[ref[~is_content]]
    seg_weight = np.array(p.seg_weight, dtype=np.float32)
    potential = np.array(p.potential, dtype=bool)

    rows, caps, owner, piece_no = plan_rows(p, seg_len, options, counts)
    n_rows = len(rows)
    per_row_segs = np.fromiter(map(len, rows), np.int64, n_rows)
    sel = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    lengths = seg_len[sel]
    total = int(lengths.sum())
    seg_token_start = np.cumsum(lengths) - lengths
    source = np.repeat(seg_start[sel] - seg_token_start, lengths) + np.arange(total)
    input_ids = token_pool[source]
    weights = np.repeat(seg_weight[sel], lengths)

    row_of_seg = np.repeat(np.arange(n_rows), per_row_segs)
    full_len = np.bincount(row_of_seg, weights=lengths, minlength=n_rows).astype(np.int64)
    row_len = np.minimum(full_len, np.array(caps, dtype=np.int64))
    if (row_len < full_len).any():  # truncation: keep each row's first `cap` tokens
        row_start = np.cumsum(full_len) - full_len
        position = np.arange(total) - np.repeat(row_start, full_len)
        keep = position < np.repeat(row_len, full_len)
        input_ids, weights = input_ids[keep], weights[keep]
    row_of_token = np.repeat(np.arange(n_rows), row_len)
    supervised = np.bincount(row_of_token, weights=weights > 0, minlength=n_rows)
    could_be = np.bincount(row_of_seg, weights=potential[sel], minlength=n_rows) > 0

    lost = (supervised == 0) & could_be
    counts.dropped_no_supervision_after_truncation += int(lost.sum())
    counts.rows_without_supervision += int(((supervised == 0) & ~could_be).sum())
    owner_arr = np.array(owner, dtype=np.int64)
    validation = np.array(p.validation, dtype=bool)[owner_arr] if n_rows else np.zeros(0, bool)

    classes = [p.classes[c] for c in owner]
    # Per-class counts over the rows that are kept.
    kept = ~lost
    planned, produced_ids = set(owner), set(owner_arr[kept].tolist())
    counts.rejected_by_reason["too_long"] += len(p.ids) - len(planned)  # --long drop
    counts.rejected_by_reason["no_supervised_token_left"] += len(planned - produced_ids)
    produced = Counter(p.classes[c] for c in produced_ids)
    for name in set(p.classes) | set(classes):
        stats = counts.by_class.setdefault(name, Counter())
        stats["conversations_in"] += p.classes.count(name)
        stats["conversations_out"] += produced[name]
    for r in np.flatnonzero(kept):
        stats = counts.by_class[classes[r]]
        stats["rows"] += 1
        stats["tokens"] += int(row_len[r])
        stats["supervised_tokens"] += int(supervised[r])

    offsets = np.concatenate([[0], np.cumsum(row_len)]).astype(np.int32)
    labels = np.where(weights > 0, input_ids, IGNORE_INDEX).astype(np.int32)
    offsets_arr = pa.array(offsets)
    table = pa.RecordBatch.from_arrays(
        [
            pa.ListArray.from_arrays(offsets_arr, pa.array(input_ids, pa.int32())),
            pa.ListArray.from_arrays(offsets_arr, pa.array(labels)),
            pa.ListArray.from_arrays(offsets_arr, pa.array(weights.astype(np.float32))),
            pa.ListArray.from_arrays(offsets_arr, pa.array(np.ones(len(input_ids), np.int8))),
            pa.array(row_len.astype(np.int32)),
            pa.array(classes, pa.string()),
            pa.array([p.ids[c] for c in owner], pa.string()),
            pa.array(np.array(piece_no, dtype=np.int32)),
        ],
        names=OUTPUT_COLUMNS,
    )
    out = {}
    for split, mask in (("train", kept & ~validation), ("validation", kept & validation)):
        out[split] = table.filter(pa.array(mask))
        counts.rows_by_split[split] += out[split].num_rows
    return out


# --- the stage ------------------------------------------------------------------------------------


@dataclass
class TokenizeResult:
    stage: Path
    manifest: dict
    counts: dict
    source: InputStage


def run_tokenize(
    ws: Workspace,
    options: TokenizeOptions,
    input_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> TokenizeResult:
    started, cpu_started = time.perf_counter(), time.process_time()
    source = resolve_input(ws, input_dir)
    parquet = source.path / CONVERSATIONS
    chat = load_tokenizer(options.tokenizer, options.eot)
    classes = class_table(parquet)
    check_max_length(chat, classes, options)
    counts = Counts()
    splits = SPLITS if options.val_fraction > 0 else SPLITS[:1]
    timings: dict[str, float] = {"load_s": time.perf_counter() - started}
    with ws.writing_stage("tokenized") as out:
        scratch = out / ".arrow"
        scratch.mkdir()
        schema = features().arrow_schema
        writers = {s: pa.ipc.new_stream(str(scratch / f"{s}.arrow"), schema) for s in splits}
        try:
            for rows in tokenize_batches(parquet, chat, options, counts, progress):
                for split in splits:
                    writers[split].write_batch(rows[split])
        finally:
            for writer in writers.values():
                writer.close()
        timings["tokenize_s"] = time.perf_counter() - started - timings["load_s"]
        save_dataset(scratch, out, splits)
        shutil.rmtree(scratch)
        chat.tok.save_pretrained(str(out / TOKENIZER_DIR))
        timings["save_s"] = time.perf_counter() - started - sum(timings.values())
        timings["total_s"] = time.perf_counter() - started
        timings["cpu_s"] = time.process_time() - cpu_started  # all threads, tokenizer's included
        manifest = stage_manifest(
            "tokenized",
            {**options.to_json(), "tokenizer_sha256": combined_sha256(tokenizer_files(chat.path))},
            counts.to_json(),
            timings,
            parent={"stage": source.name, "fingerprint": source.fingerprint()},
            input={"stage": source.name, "path": str(source.path), "why": source.note},
            tokenizer=chat.describe(),
            templates=template_info(chat, classes, options),
            max_length=options.max_length,
            long=str(options.long),
            splits=list(splits),
            columns=OUTPUT_COLUMNS,
            id_scheme="pieces of a split conversation keep its `id`; `piece` numbers them from 0",
        )
        write_json_atomic(out / MANIFEST, manifest)
    return TokenizeResult(ws.stage("tokenized"), manifest, manifest["counts"], source)


def tokenize_batches(
    parquet: Path,
    chat: ChatTokenizer,
    options: TokenizeOptions,
    counts: Counts,
    progress: ProgressCallback | None,
) -> Iterator[dict[str, pa.RecordBatch]]:
    """Rows per split, batch by batch; batch k+1 is rendered and encoded while k is assembled.

    The tokenizer releases the GIL while it encodes (on all cores), so the Python side of the
    next batch and the numpy assembly of this one overlap with it.
    """
    file = pq.ParquetFile(parquet)
    total = file.metadata.num_rows
    pool = TemplatePool(chat)
    done = tokens = 0
    with ThreadPoolExecutor(1, thread_name_prefix="encode") as encoder:
        pending: tuple[Prepared, Future[list[list[int]]]] | None = None
        batches = file.iter_batches(batch_size=options.batch_rows, columns=INPUT_COLUMNS)
        for batch in itertools.chain(batches, [None]):
            ready = None
            if batch is not None:
                prepared = prepare(batch, pool, options)
                ready = (prepared, encoder.submit(chat.encode_plain, prepared.texts))
            if pending is not None:
                prepared_before, future = pending
                rows = assemble(prepared_before, future.result(), pool, options, counts)
                counts.conversations_in += len(prepared_before.ids)
                done += len(prepared_before.ids)
                tokens += sum(int(r.column("length").to_numpy().sum()) for r in rows.values())
                if progress:
                    progress(done, total, tokens)
                yield rows
            pending = ready


def check_max_length(
    chat: ChatTokenizer, classes: list[tuple[str, str, float]], options: TokenizeOptions
) -> None:
    """Refuse a --max-length that cannot hold one exchange; warms the template cache too."""
    chat.template_ids(templates.role_prefix("system", "", options.position))
    for name, condition, _ in classes:
        empty = templates.render([ROLE_HUMAN, ROLE_GPT], ["", ""], condition, options.position)
        needed = (chat.bos_id is not None) + sum(
            len(chat.template_ids(s.text)) for s in empty.segments() if s.kind not in CONTENT_KINDS
        )
        if options.max_length < needed + 2:
            raise TokenizeError(
                f"--max-length {options.max_length} is too small: the {options.position} "
                f"template of class {name!r} takes {needed} tokens before any content; use at "
                f"least {needed + 2}"
            )


def template_info(
    chat: ChatTokenizer, classes: list[tuple[str, str, float]], options: TokenizeOptions
) -> dict:
    """The exact strings each class was rendered with, for the manifest and the trainer."""
    by_class: dict[str, dict] = {}
    for name, condition, weight in classes:
        key = name if name not in by_class else f"{name}/{condition}"  # one condition per class
        by_class[key] = {
            "condition": condition,
            "weight": weight,
            "template": templates.example(condition, options.position, options.eot),
            "with_system": templates.example(condition, options.position, options.eot, True),
            "generation_prompt": templates.generation_prompt(condition, options.position),
            # The pieces, so that a trainer can write a chat template without parsing the above.
            "header": "".join(
                seg.text for seg in templates.header(condition, options.position, options.eot)
            ),
            "prefixes": {
                role: templates.role_prefix(role, condition, options.position)
                for role in (ROLE_SYSTEM, ROLE_HUMAN, ROLE_GPT)
            },
        }
    return {
        "position": str(options.position),
        "eot": options.eot,
        "bos": chat.tok.bos_token if chat.bos_id is not None else None,
        "by_class": by_class,
    }


def save_dataset(scratch: Path, out: Path, splits: tuple[str, ...]) -> None:
    """The scratch Arrow streams → a DatasetDict saved with `save_to_disk`."""
    import datasets
    from datasets import Dataset, DatasetDict, DatasetInfo, NamedSplit

    parts = {
        split: Dataset.from_file(
            str(scratch / f"{split}.arrow"),
            info=DatasetInfo(features=features()),
            split=NamedSplit(split),
        )
        for split in splits
    }
    # An empty split saved with the default 0 shards cannot be loaded back.
    num_shards = {split: 1 for split, part in parts.items() if part.num_rows == 0}
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        DatasetDict(parts).save_to_disk(str(out), num_shards=num_shards)
    finally:
        if not quiet:
            datasets.enable_progress_bars()
