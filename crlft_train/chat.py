"""Generation with a trained run: prompts encoded exactly like the training rows.

`PromptEncoder` builds a prompt's ids segment by segment, the way `sharegpt-tools tokenize`
built the rows (BOS, each template piece's recorded ids, content as plain text, the end-of-turn
id), from what the run recorded in `crlft.json`: message text can never become a control token,
and the generation prompt is a token prefix of a training row at that turn. For content free of
control-token text this equals `apply_chat_template(..., add_generation_prompt=True)` (tested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from crlft_train.model import ADAPTER_CONFIG, load_pretrained


class ChatError(ValueError):
    """A run folder that cannot be chatted with: printed as one line."""


def model_folder(run_dir: Path) -> Path:
    for folder in (run_dir / "final", run_dir):
        if (folder / "config.json").is_file() or (folder / ADAPTER_CONFIG).is_file():
            return folder
    raise ChatError(f"{run_dir} has no final/ model folder: train it first with crlft-train")


ROLES = {"system": "system", "user": "human", "assistant": "gpt"}  # message role → template's


class PromptEncoder:
    """Prompt ids for `messages` under a condition, built as the training rows were."""

    def __init__(self, tokenizer: Any, prompt_encoding: dict) -> None:
        templates = prompt_encoding["templates"]
        self.by_condition = {info["condition"]: info for info in templates["by_class"].values()}
        self.separator = templates.get("separator", " ")
        self.bos = [] if templates.get("bos_id") is None else [templates["bos_id"]]
        self.eot = [templates["eot_id"]]
        encoders = prompt_encoding["section_encoders"]
        backend = tokenizer.backend_tokenizer
        self.opening = plain_encoder(backend, encoders["opening"])
        self.continuation = plain_encoder(backend, encoders["continuation"])

    def ids(
        self, messages: list[dict], condition: str, add_generation_prompt: bool = True
    ) -> list[int]:
        if condition not in self.by_condition:
            known = ", ".join(repr(c) for c in self.by_condition)
            raise ChatError(f"unknown condition {condition!r}: this run knows {known}")
        info = self.by_condition[condition]
        prefixes, prefix_ids = info["prefixes"], info["ids"]["prefixes"]
        ids = self.bos + info["ids"]["header"]
        for n, message in enumerate(messages, 1):
            role = ROLES.get(message.get("role", ""))
            if role is None:
                raise ChatError(
                    f"message {n}: role {message.get('role')!r} is not {', '.join(ROLES)}"
                )
            ids += prefix_ids[role] + self.content_ids(message["content"], bool(prefixes[role]))
            ids += self.eot
        if add_generation_prompt:
            ids += prefix_ids["gpt"]
        return ids

    def content_ids(self, text: str, after_prefix: bool) -> list[int]:
        """Plain-text ids: after a role prefix with the separating space, else opening a section."""
        if after_prefix:
            return self.continuation.encode(self.separator + text, add_special_tokens=False).ids
        return self.opening.encode(text, add_special_tokens=False).ids


def plain_encoder(backend: Any, nodes: dict) -> Any:
    """The model's tokenizer with the recorded normaliser and pre-tokenizer, specials as text."""
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    spec.update(nodes)
    encoder = Tokenizer.from_str(json.dumps(spec))
    encoder.no_truncation()
    encoder.no_padding()
    encoder.encode_special_tokens = True
    return encoder


def load(folder: Path) -> tuple[object, object, str, PromptEncoder]:
    from transformers import AutoTokenizer

    record_file = folder / "crlft.json"
    if not record_file.is_file():
        raise ChatError(f"{folder} has no crlft.json: it was not written by crlft-train")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    if "prompt_encoding" not in record:
        raise ChatError(
            f"{record_file} predates exact prompt encoding: re-export it with crlft-train"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = load_pretrained(folder).eval()
    encoder = PromptEncoder(tokenizer, record["prompt_encoding"])
    return model, tokenizer, record["expert_condition"], encoder


def generate(
    model: object,
    tokenizer: object,
    encoder: PromptEncoder,
    messages: list[dict],
    condition: str,
    max_new_tokens: int,
) -> str:
    input_ids = torch.tensor([encoder.ids(messages, condition)])
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    new_tokens = output[0, input_ids.shape[1] :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def chat(run_dir: Path, condition: str | None, prompt: str | None, max_new_tokens: int) -> None:
    model, tokenizer, expert, encoder = load(model_folder(run_dir))
    condition = expert if condition is None else condition
    if prompt is not None:
        messages = [{"role": "user", "content": prompt}]
        print(generate(model, tokenizer, encoder, messages, condition, max_new_tokens))
        return
    messages: list[dict] = []
    while True:
        try:
            text = input(f"[{condition or 'no condition'}] you> ")
        except EOFError:
            return
        messages.append({"role": "user", "content": text})
        answer = generate(model, tokenizer, encoder, messages, condition, max_new_tokens)
        print(answer)
        messages.append({"role": "assistant", "content": answer})
