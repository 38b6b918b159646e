"""One batch of the `tokenize` stage: render → encode → assemble, and the columns it makes.

Each conversation is rendered into segments (`templates.render`) in `prepare`; the content texts
are encoded by the tokenizer (`ChatTokenizer.encode_content`) and template pieces come from the
`TemplatePool`; `assemble` then builds the rows of a whole batch at once with numpy gathers, as
Arrow record batches per split, and adds to the stage's `Counts`.

Token rules (DESIGN.md): BOS, template text, system and user text get weight 0; assistant content
and the `<|end_of_turn|>` closing an assistant turn get class weight x that turn's `turn_weights`
entry; `labels` is `input_ids` where the weight is > 0, else -100.

Long conversations (`--long`, planned by `plan_rows`):
* split: cut at exchange boundaries (an exchange is a user turn and the turns after it) into pieces
  that fit; every piece repeats the header (BOS, the `beginning` condition header, the system turn)
  and then starts with a user turn. An exchange that alone does not fit is truncated (counted).
  Pieces keep the conversation's `id`; the `piece` column numbers them from 0 (0 for whole rows).
* truncate: keep the first `max_length` tokens. * drop: drop the conversation (counted).
A row left with no supervised token by truncation is dropped (counted); a row whose assistant turns
all have weight 0 is kept as is (counted as `rows_without_supervision`).

Validation split: a conversation goes to `validation` when blake2b(seed, id) < val_fraction, so
the split depends only on (id, seed) and all pieces of one conversation share it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from crlft_contract import COLUMN_TYPES, COLUMNS, IGNORE_INDEX, SPLITS
from sharegpt_tools.records import Reason, StageCounts
from sharegpt_tools.tokenize import templates
from sharegpt_tools.tokenize.chat_tokenizer import ChatTokenizer
from sharegpt_tools.tokenize.options import LongMode, TokenizeError, TokenizeOptions
from sharegpt_tools.tokenize.templates import CONTENT_KINDS

INPUT_COLUMNS = ["id", "conversations", "class", "weight", "condition", "turn_weights"]


def features() -> Any:
    """The contract's columns as datasets.Features (Arrow `list<int32>`, not large lists)."""
    from datasets import Features, List, Value

    def feature(arrow_type: str) -> Any:
        inner = arrow_type.removeprefix("list<").removesuffix(">")
        return List(Value(inner)) if inner != arrow_type else Value(arrow_type)

    return Features({name: feature(kind) for name, kind in COLUMN_TYPES.items()})


def in_validation(conversation_id: str, seed: int, fraction: float) -> bool:
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}\0{conversation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


@dataclass
class Prepared:
    """A batch rendered into a flat segment table; content texts wait for the tokenizer."""

    ids: list[str]
    classes: list[str]
    validation: list[bool]
    texts: list[str]  # content to tokenize
    text_opens: list[bool]  # per text: it opens a section (bare system text)
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
        self.index: dict[tuple[str, bool], int] = {}
        self.pieces: list[list[int]] = []

    def ref(self, text: str, opens: bool) -> int:
        ref = self.index.get((text, opens))
        if ref is None:
            ref = self.index[(text, opens)] = len(self.pieces)
            self.pieces.append(self.chat.template_ids(text, opens))
        return ref

    def bos_ref(self) -> int | None:
        if self.chat.bos_id is None:
            return None
        ref = self.index.get(("\0bos", False))
        if ref is None:
            ref = self.index[("\0bos", False)] = len(self.pieces)
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
    p = Prepared(ids, classes, [], [], [], [], [], [], [], [])
    for i, conversation_id in enumerate(ids):
        start, end = int(turn_offsets[i]), int(turn_offsets[i + 1])
        tw = turn_weights[i] if turn_weights[i] is not None else [1.0] * (end - start)
        if len(tw) != end - start:
            raise TokenizeError(
                f"conversation {conversation_id}: {len(tw)} turn_weights for {end - start} turns"
            )
        p.validation.append(in_validation(conversation_id, options.seed, options.val_fraction))
        rendered = templates.render(
            roles[start:end],
            values[start:end],
            conditions[i] or "",
            options.position,
            options.eot,
            options.system_format,
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
                    p.text_opens.append(segment.opens_section)
                else:
                    p.add(False, pool.ref(segment.text, segment.opens_section), weight)
        bounds.append(len(p.seg_ref))
        p.bounds.append(bounds)
    return p


@dataclass
class Counts:
    """Additive counts of the stage (saved in the manifest)."""

    # Conversations in, kept (made at least one row) and rejected (made none) by reason.
    conversations: StageCounts = field(default_factory=StageCounts)
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

    def to_json(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if isinstance(v, int)}
        data["conversations_in"] = self.conversations.rows_in
        data.update(self.conversations.to_json())  # the manifest schema's in/kept/rejected
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
    rejected = Counter(
        {
            Reason.TOO_LONG: len(p.ids) - len(planned),  # --long drop
            Reason.NO_SUPERVISED_TOKEN_LEFT: len(planned - produced_ids),
        }
    )
    counts.conversations += StageCounts(len(p.ids), len(produced_ids), rejected)
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
        names=COLUMNS,
    )
    out = {}
    for split, mask in (("train", kept & ~validation), ("validation", kept & validation)):
        out[split] = table.filter(pa.array(mask))
        counts.rows_by_split[split] += out[split].num_rows
    return out
