"""The `tokenize` stage: labeled (or subsampled) conversations → a Hugging Face `datasets` folder.

This module runs the stage: it picks the input stage, loads the tokenizer (`chat_tokenizer`),
checks `--max-length` against the templates, streams batches through `rows` (batch k+1 is
rendered and encoded while batch k is assembled), saves the splits with `save_to_disk` next to the
tokenizer, and writes the manifest (options, counts, timings, the exact template strings).

Content segments (user, assistant, system text) are tokenized as plain text in large batches by
the fast tokenizer (the ids of `tok(texts, add_special_tokens=False, split_special_tokens=True)`),
so that `<|end_of_turn|>`, `</s>` or `GPT4 Assistant:` typed by a user stay ordinary text; template
pieces are tokenized once per distinct string; the end-of-turn marker and BOS are added by id.
The token rules, `--long` and the validation split are described in `rows`; how the ids
are made to equal what the exported tokenizer and chat template give (sections, SentencePiece's
dummy prefix, the probe that refuses a tokenizer) in `chat_tokenizer`.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crlft_contract import COLUMNS, CONDITION_EVAL_DIR, SPLITS
from sharegpt_tools.records import ROLE_GPT, ROLE_HUMAN, ROLE_SYSTEM
from sharegpt_tools.tokenize import templates
from sharegpt_tools.tokenize.chat_tokenizer import (
    TOKENIZER_DIR,
    ChatTokenizer,
    combined_sha256,
    load_tokenizer,
    tokenizer_files,
)
from sharegpt_tools.tokenize.options import TokenizeError, TokenizeOptions
from sharegpt_tools.tokenize.portable_tokenizer import save_portable
from sharegpt_tools.tokenize.rows import (
    INPUT_COLUMNS,
    Counts,
    Prepared,
    TemplatePool,
    assemble,
    features,
    in_validation,
    prepare,
)
from sharegpt_tools.tokenize.templates import CONTENT_KINDS
from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    StageError,
    Workspace,
    fingerprint,
    stage_manifest,
    write_json_atomic,
)

ProgressCallback = Callable[[int, int, int], None]  # (conversations done, total, tokens out)


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
    manifest = ws.require_current("subsampled", "labeled")  # the check export shares
    return InputStage("subsampled", sub, manifest, "subsampled/ is up to date with labeled/")


def class_table(parquet: Path, declared: list[str] | None = None) -> list[tuple[str, str, float]]:
    """Distinct (class, condition) of a stage with the class weight: in the rules file's order
    when `declared` gives it (classes it does not name after, most frequent first), else most
    frequent first.

    The order matters downstream: at equal weights (the "no reward" ablation) the trainer takes
    the first class as the expert one, whose condition is used at inference.
    """
    table = pq.read_table(parquet, columns=["class", "condition", "weight"])
    columns = (table.column(n).to_pylist() for n in ("class", "condition", "weight"))
    seen = Counter(zip(*columns, strict=True))
    table_rows: dict[tuple[str, str], float] = {}
    for (name, condition, weight), _ in seen.most_common():
        # float32 in Parquet: 0.1 reads back as 0.10000000149; keep the value the user wrote.
        table_rows.setdefault((name or "", condition or ""), float(f"{weight or 0.0:.7g}"))
    rank = {name: i for i, name in enumerate(declared or [])}
    ordered = sorted(table_rows.items(), key=lambda item: rank.get(item[0][0], len(rank)))
    return [(name, condition, weight) for (name, condition), weight in ordered]


def declared_classes(ws: Workspace, source: InputStage) -> list[str]:
    """Class names in the order of the rules file that labeled the data (empty if unknown)."""
    rules = source.manifest.get("rules")
    if rules is None and (ws.stage("labeled") / MANIFEST).is_file():
        rules = ws.manifest("labeled").get("rules")
    return [c.get("name") for c in (rules or {}).get("classes", [])]


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
    classes = class_table(parquet, declared_classes(ws, source))
    check_max_length(chat, classes, options)
    counts = Counts()
    splits = SPLITS if options.val_fraction > 0 else SPLITS[:1]
    timings: dict[str, float] = {"load_s": time.perf_counter() - started}
    with ws.writing_stage("tokenized") as out:
        scratch = out / ".arrow"
        scratch.mkdir()
        schema = features().arrow_schema
        writers = {s: pa.ipc.new_stream(str(scratch / f"{s}.arrow"), schema) for s in splits}
        held: list[pa.RecordBatch] = []  # the validation conversations, for condition_eval/
        try:
            for rows in tokenize_batches(parquet, chat, options, counts, progress, held):
                for split in splits:
                    writers[split].write_batch(rows[split])
        finally:
            for writer in writers.values():
                writer.close()
        timings["tokenize_s"] = time.perf_counter() - started - timings["load_s"]
        save_dataset(scratch, out, splits)
        shutil.rmtree(scratch)
        save_portable(chat.tok, out / TOKENIZER_DIR, chat.path)
        timings["save_s"] = time.perf_counter() - started - sum(timings.values())
        under_conditions = write_condition_eval(out, held, classes, chat, options)
        timings["condition_eval_s"] = time.perf_counter() - started - sum(timings.values())
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
            columns=COLUMNS,
            condition_eval=under_conditions,
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
    held_validation: list[pa.RecordBatch] | None = None,
) -> Iterator[dict[str, pa.RecordBatch]]:
    """Rows per split of a stage's Parquet file, batch by batch; the input rows of the
    validation conversations are appended to `held_validation` when it is given."""
    file = pq.ParquetFile(parquet)
    batches = file.iter_batches(batch_size=options.batch_rows, columns=INPUT_COLUMNS)
    if held_validation is not None and options.val_fraction > 0:
        batches = holding_validation(batches, options, held_validation)
    yield from tokenize_record_batches(
        batches, file.metadata.num_rows, chat, options, counts, progress
    )


def holding_validation(
    batches: Iterable[pa.RecordBatch], options: TokenizeOptions, held: list[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The batches unchanged; each one's validation conversations are kept in `held`."""
    for batch in batches:
        ids = batch.column("id").to_pylist()
        mask = [in_validation(str(i), options.seed, options.val_fraction) for i in ids]
        if any(mask):
            held.append(batch.filter(pa.array(mask)))
        yield batch


# --- the validation split under every condition (crlft-eval) --------------------------------------


def write_condition_eval(
    out: Path,
    held: list[pa.RecordBatch],
    classes: list[tuple[str, str, float]],
    chat: ChatTokenizer,
    options: TokenizeOptions,
) -> dict | None:
    """OUT/condition_eval/: the validation conversations rendered under each class's condition.

    One split per distinct condition (`condition_0`, ... in class order), the same tokenizer,
    position and long-conversation rule as the validation split; only the tag changes, and the
    class weight is 1 (turn weights are kept), so that a row's loss weights mark its supervised
    tokens. `crlft-eval` scores the model on them (paper Sec. 5.3) from the tokenized folder
    alone. None without a validation split.
    """
    if options.val_fraction <= 0 or not held:
        return None
    tags = list(dict.fromkeys(condition for _, condition, _ in classes))
    splits = {f"condition_{i}": tag for i, tag in enumerate(tags)}
    folder = out / CONDITION_EVAL_DIR
    scratch = folder / ".arrow"
    scratch.mkdir(parents=True)
    rows: dict[str, int] = {}
    # The held pieces are ~val_fraction of each input batch: encoded in full batches again.
    batches = pa.Table.from_batches(held).combine_chunks().to_batches(options.batch_rows)
    total = sum(len(batch) for batch in batches)
    for split, tag in splits.items():
        written = 0
        with pa.ipc.new_stream(str(scratch / f"{split}.arrow"), features().arrow_schema) as writer:
            under_tag = (with_condition(batch, tag) for batch in batches)
            for part in tokenize_record_batches(under_tag, total, chat, options, Counts()):
                writer.write_batch(part["validation"])
                written += len(part["validation"])
        rows[split] = written
    save_dataset(scratch, folder, tuple(splits))
    shutil.rmtree(scratch)
    return {"path": CONDITION_EVAL_DIR, "conditions": splits, "rows": rows}


def with_condition(batch: pa.RecordBatch, condition: str) -> pa.RecordBatch:
    """The batch with every conversation's condition set to `condition` and class weight 1."""
    n = len(batch)
    columns = {name: batch.column(name) for name in batch.schema.names}
    columns["condition"] = pa.array([condition] * n, batch.schema.field("condition").type)
    columns["weight"] = pa.array([1.0] * n, batch.schema.field("weight").type)
    return pa.RecordBatch.from_pydict(columns, schema=batch.schema)


def tokenize_record_batches(
    batches: Iterable[pa.RecordBatch],
    total: int,
    chat: ChatTokenizer,
    options: TokenizeOptions,
    counts: Counts,
    progress: ProgressCallback | None = None,
) -> Iterator[dict[str, pa.RecordBatch]]:
    """Rows per split; batch k+1 is rendered and encoded while batch k is assembled.

    Batches have the labeled stage's columns (`INPUT_COLUMNS`). The tokenizer releases the GIL
    while it encodes (on all cores), so the Python side of the next batch and the numpy assembly
    of this one overlap with it.
    """
    pool = TemplatePool(chat)
    done = tokens = 0
    with ThreadPoolExecutor(1, thread_name_prefix="encode") as encoder:
        pending: tuple[Prepared, Future[list[list[int]]]] | None = None
        for batch in itertools.chain(batches, [None]):
            ready = None
            if batch is not None:
                prepared = prepare(batch, pool, options)
                encoding = encoder.submit(chat.encode_content, prepared.texts, prepared.text_opens)
                ready = (prepared, encoding)
            if pending is not None:
                prepared_before, future = pending
                rows = assemble(prepared_before, future.result(), pool, options, counts)
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
    for name, condition, _ in classes:
        empty = templates.render(
            [ROLE_HUMAN, ROLE_GPT], ["", ""], condition, options.position, options.eot
        )
        needed = (chat.bos_id is not None) + sum(
            len(chat.segment_ids(s)) for s in empty.segments() if s.kind not in CONTENT_KINDS
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
    """The exact strings each class was rendered with, for the manifest and the trainer.

    With the ids of every template piece, so that inference (`crlft-chat`) can build prompts
    segment by segment exactly as the rows were built, without this package.
    """
    by_class: dict[str, dict] = {}
    for name, condition, weight in classes:
        key = name if name not in by_class else f"{name}/{condition}"  # one condition per class
        header = templates.header(condition, options.position, options.eot)
        prefixes = {
            role: templates.role_prefix(role, condition, options.position, options.system_format)
            for role in (ROLE_SYSTEM, ROLE_HUMAN, ROLE_GPT)
        }
        by_class[key] = {
            "condition": condition,
            "weight": weight,
            "template": templates.example(
                condition, options.position, options.eot, False, options.system_format
            ),
            "with_system": templates.example(
                condition, options.position, options.eot, True, options.system_format
            ),
            "generation_prompt": templates.generation_prompt(condition, options.position),
            # The pieces, so that a trainer can write a chat template without parsing the above.
            "header": "".join(seg.text for seg in header),
            "prefixes": prefixes,
            "ids": {
                "header": [i for seg in header for i in chat.segment_ids(seg)],
                "prefixes": {role: chat.template_ids(text) for role, text in prefixes.items()},
            },
        }
    return {
        "position": str(options.position),
        "eot": options.eot,
        "eot_id": chat.eot_id,
        "bos": chat.tok.bos_token if chat.bos_id is not None else None,
        "bos_id": chat.bos_id,
        "separator": templates.SEPARATOR,
        "system_format": str(options.system_format),
        "by_class": by_class,
        # The rules file's class order (JSON objects are written with sorted keys): at equal
        # weights the trainer takes the first class as the expert one.
        "class_order": list(by_class),
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
