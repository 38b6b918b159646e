"""Generation with a trained run: the chat template with a selectable condition."""

from __future__ import annotations

import json
from pathlib import Path

import torch


class ChatError(ValueError):
    """A run folder that cannot be chatted with: printed as one line."""


def model_folder(run_dir: Path) -> Path:
    for folder in (run_dir / "final", run_dir):
        if (folder / "config.json").is_file():
            return folder
    raise ChatError(f"{run_dir} has no final/ model folder: train it first with crlft-train")


def load(folder: Path) -> tuple[object, object, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    record = folder / "crlft.json"
    expert = json.loads(record.read_text())["expert_condition"] if record.is_file() else ""
    return model, tokenizer, expert


def generate(
    model: object, tokenizer: object, messages: list[dict], condition: str, max_new_tokens: int
) -> str:
    inputs = tokenizer.apply_chat_template(
        messages,
        add_generation_prompt=True,
        condition=condition,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def chat(run_dir: Path, condition: str | None, prompt: str | None, max_new_tokens: int) -> None:
    model, tokenizer, expert = load(model_folder(run_dir))
    condition = expert if condition is None else condition
    if prompt is not None:
        print(generate(model, tokenizer, [{"role": "user", "content": prompt}], condition,
                       max_new_tokens))  # fmt: skip
        return
    messages: list[dict] = []
    while True:
        try:
            text = input(f"[{condition or 'no condition'}] you> ")
        except EOFError:
            return
        messages.append({"role": "user", "content": text})
        answer = generate(model, tokenizer, messages, condition, max_new_tokens)
        print(answer)
        messages.append({"role": "assistant", "content": answer})
