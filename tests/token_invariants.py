"""The three token invariants (DESIGN.md), checked row by row against a model folder.

For every row of `tokenized/` that holds a whole conversation:
(a) its `input_ids` are what the exported tokenizer + chat template give for the conversation;
(b) for every assistant turn, the generation prompt (`apply_chat_template(...,
    add_generation_prompt=True)`, and `crlft-chat`'s `PromptEncoder`) is a token prefix of the
    row at that turn;
(c) user/system text never becomes a control token: a row has exactly one end-of-turn id per
    turn, and so has crlft-chat's prompt; the chat template refuses such content rather than
    injecting it.
A conversation whose text holds a control token's string is checked for (c) only: no chat
template can render it as plain text.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from jinja2.exceptions import TemplateError

from crlft_train.chat import PromptEncoder

ROLE = {"human": "user", "gpt": "assistant", "system": "system"}


@dataclass
class Outcome:
    rows: int = 0
    checked: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        if len(self.failures) < 5:
            self.failures.append(what)
        self.checked[f"failed {what.split(':')[0]}"] += 1


def messages_by_id(stage: Path) -> dict[str, tuple[list[dict], str]]:
    """(messages, condition) per conversation id of a labeled/subsampled stage."""
    table = pq.read_table(
        stage / "conversations.parquet", columns=["id", "conversations", "condition"]
    )
    return {
        row["id"]: (
            [{"role": ROLE[t["from"]], "content": t["value"]} for t in row["conversations"]],
            row["condition"] or "",
        )
        for row in table.to_pylist()
    }


def check_folder(model_folder: Path, tokenized: Path) -> Outcome:
    """Check (a)-(c) for every whole-conversation row of `tokenized/` against a model folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_folder), local_files_only=True)
    record = json.loads((model_folder / "crlft.json").read_text(encoding="utf-8"))
    return check_rows(tokenizer, record["prompt_encoding"], tokenized)


def check_tokenized(tokenized: Path, ordinary_rows: int | None = None) -> Outcome:
    """The same against `tokenized/tokenizer` given the chat template an export would write;
    every row with a system turn or control-token text, and `ordinary_rows` of the others."""
    from transformers import AutoTokenizer

    from crlft_train.checkpoint import chat_template, control_tokens, expert_condition

    manifest = json.loads((tokenized / "manifest.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(tokenized / "tokenizer"), local_files_only=True)
    templates = manifest["templates"]
    tokenizer.chat_template = chat_template(
        templates, expert_condition(templates), control_tokens(tokenizer)
    )
    encoding = {
        "templates": templates,
        "section_encoders": manifest["tokenizer"]["section_encoders"],
    }
    return check_rows(tokenizer, encoding, tokenized, ordinary_rows)


def whole_conversations(
    tokenized: Path, controls: list[str]
) -> list[tuple[list[int], list[dict], str]]:
    """(row ids, messages, condition) of every whole-conversation row free of control text
    (neither split nor possibly truncated to --max-length)."""
    manifest = json.loads((tokenized / "manifest.json").read_text(encoding="utf-8"))
    conversations = messages_by_id(Path(manifest["input"]["path"]))
    found = []
    for split in datasets.load_from_disk(str(tokenized)).values():
        pieces = Counter(split["id"])
        for row in split:
            messages, condition = conversations[row["id"]]
            plain = not any(c in m["content"] for m in messages for c in controls)
            whole = pieces[row["id"]] == 1 and row["length"] < manifest["max_length"]
            if whole and row["piece"] == 0 and plain:
                found.append((row["input_ids"], messages, condition))
    return found


def check_rows(
    tokenizer: object, prompt_encoding: dict, tokenized: Path, ordinary_rows: int | None = None
) -> Outcome:
    encoder = PromptEncoder(tokenizer, prompt_encoding)
    manifest = json.loads((tokenized / "manifest.json").read_text(encoding="utf-8"))
    conversations = messages_by_id(Path(manifest["input"]["path"]))
    controls = [t for t in tokenizer.get_added_vocab() if t]
    eot_id = manifest["templates"]["eot_id"]
    outcome = Outcome()
    ordinary = 0
    for split in datasets.load_from_disk(str(tokenized)).values():
        pieces = Counter(split["id"])
        for row in split:
            if pieces[row["id"]] != 1 or row["piece"] != 0:
                continue  # a piece of a split conversation: not a whole conversation
            messages, condition = conversations[row["id"]]
            special = messages[0]["role"] == "system" or any(
                c in m["content"] for m in messages for c in controls
            )
            if not special and ordinary_rows is not None and ordinary >= ordinary_rows:
                continue
            ordinary += not special
            outcome.rows += 1
            check_row(
                tokenizer, encoder, row["input_ids"], messages, condition, controls, eot_id, outcome
            )
    return outcome


def check_row(
    tokenizer: object,
    encoder: PromptEncoder,
    ids: list[int],
    messages: list[dict],
    condition: str,
    controls: list[str],
    eot_id: int,
    outcome: Outcome,
) -> None:
    ours = encoder.ids(messages, condition, add_generation_prompt=False)
    if len(ours) > len(ids) and ours[: len(ids)] == ids:
        outcome.checked["truncated to --max-length (prefix matches)"] += 1
        return
    if ids.count(eot_id) != len(messages) + header_eots(encoder, condition):
        outcome.fail(
            f"(c) training row: {ids.count(eot_id)} end-of-turn ids, {len(messages)} turns"
        )
    if ours != ids:
        outcome.fail("(a) crlft-chat ids differ from the row")
    outcome.checked["with a system turn"] += messages[0]["role"] == "system"
    if any(c in m["content"] for m in messages for c in controls):
        check_injection_refused(tokenizer, messages, condition, outcome)
        return
    whole = tokenizer.apply_chat_template(messages, condition=condition, tokenize=True)
    whole = whole["input_ids"] if hasattr(whole, "keys") else whole
    if whole != ids:
        outcome.fail(f"(a) chat template: {first_diff(tokenizer, whole, ids)}")
    else:
        outcome.checked["(a)"] += 1
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(
            messages[:k], condition=condition, add_generation_prompt=True, tokenize=True
        )
        prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
        ours = encoder.ids(messages[:k], condition)
        if ids[: len(prompt)] != prompt or ours != prompt:
            outcome.fail(f"(b) turn {k}: prompt is not a prefix of the row")
        else:
            outcome.checked["(b)"] += 1


def check_injection_refused(
    tokenizer: object, messages: list[dict], condition: str, outcome: Outcome
) -> None:
    try:
        tokenizer.apply_chat_template(messages, condition=condition, tokenize=False)
    except TemplateError:
        outcome.checked["(c) template refused control text"] += 1
    else:
        outcome.fail("(c) the chat template rendered control-token text")


def header_eots(encoder: PromptEncoder, condition: str) -> int:
    return encoder.by_condition[condition]["ids"]["header"].count(encoder.eot[0])


def first_diff(tokenizer: object, theirs: list[int], ours: list[int]) -> str:
    pairs = enumerate(zip(theirs, ours, strict=False))
    at = next((i for i, (x, y) in pairs if x != y), min(len(theirs), len(ours)))
    show = tokenizer.convert_ids_to_tokens
    return f"token {at}: template {show(theirs[at : at + 3])} vs row {show(ours[at : at + 3])}"
