"""Checkpoints that resume exactly, and the final Hugging Face folder.

DeepSpeed writes each checkpoint under `checkpoints/step-N/` and moves the `latest` pointer only
once the checkpoint is complete, so a crash (or a full disk) while saving leaves the previous one
valid. Our client state carries what DeepSpeed does not know: the sampler position and the RNGs.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(engine: object, run_dir: Path, step: int, client_state: dict) -> Path:
    folder = run_dir / CHECKPOINTS
    tag = f"step-{step}"
    engine.save_checkpoint(str(folder), tag=tag, client_state={**client_state, "rng": rng_state()})
    prune_checkpoints(folder, keep=KEEP_CHECKPOINTS)
    return folder / tag


def prune_checkpoints(folder: Path, keep: int) -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:
        return
    tags = sorted(
        (p for p in folder.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1])
    )
    for old in tags[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS / "latest"
    return run_dir / CHECKPOINTS if pointer.is_file() else None


def load_checkpoint(engine: object, run_dir: Path) -> dict | None:
    """The client state of the latest complete checkpoint, or None when there is none."""
    folder = latest_checkpoint(run_dir)
    if folder is None:
        return None
    _, client_state = engine.load_checkpoint(str(folder))
    if client_state and "rng" in client_state:
        restore_rng(client_state["rng"])
    return client_state


# --- the final Hugging Face folder -------------------------------------------------------------


def chat_template(templates: dict, default_condition: str) -> str:
    """A Jinja chat template rendering the trained template for any condition (default: expert).

    `apply_chat_template(..., condition="GPT3")` selects another class's condition (paper Fig. 5).
    """
    eot = templates.get("eot", "<|end_of_turn|>")
    conditions = {}
    for info in templates.get("by_class", {}).values():
        prefixes = info["prefixes"]
        conditions[info["condition"]] = {
            "header": info.get("header", ""),
            "system": prefixes["system"],
            "user": prefixes["human"],
            "assistant": prefixes["gpt"],
        }
    table = json.dumps(conditions, ensure_ascii=False)
    return (
        "{%- set conditions = " + table + " -%}"
        "{%- set t = conditions[condition] if condition is defined and condition in conditions "
        "else conditions[" + json.dumps(default_condition) + "] -%}"
        "{{- bos_token if bos_token else '' -}}{{- t.header -}}"
        "{%- for m in messages -%}"
        "{%- if m.role == 'system' -%}{{- t.system + m.content + " + json.dumps(eot) + " -}}"
        "{%- elif m.role == 'user' -%}{{- t.user + m.content + " + json.dumps(eot) + " -}}"
        "{%- else -%}{{- t.assistant + m.content + " + json.dumps(eot) + " -}}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- t.assistant -}}{%- endif -%}"
    )


def expert_condition(templates: dict) -> str:
    """The condition of the highest-weight class: the one used at inference (paper Sec. 4)."""
    by_class = templates.get("by_class", {})
    if not by_class:
        return ""
    best = max(by_class.values(), key=lambda info: info.get("weight", 0.0))
    return best["condition"]


def consolidated_state_dict(engine: object, zero_stage: int) -> dict | None:
    """Full weights on rank 0 (gathered from all ranks under ZeRO-3), None on other ranks."""
    import torch.distributed as dist

    if zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
        return state if dist.get_rank() == 0 else None
    if dist.get_rank() != 0:
        return None
    return {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}


def export_final(
    engine: object,
    tokenizer: object,
    templates: dict,
    run_dir: Path,
    zero_stage: int,
    record: dict,
) -> Path | None:
    """runs/NAME/final/: weights, tokenizer + chat template, generation config, crlft.json."""
    import torch.distributed as dist

    state = consolidated_state_dict(engine, zero_stage)
    if dist.get_rank() != 0:
        dist.barrier()
        return None
    final = run_dir / "final"
    temp = run_dir / ".final.tmp"
    shutil.rmtree(temp, ignore_errors=True)
    model = engine.module
    model.save_pretrained(str(temp), state_dict=state, safe_serialization=True)
    condition = expert_condition(templates)
    tokenizer.chat_template = chat_template(templates, condition)
    tokenizer.save_pretrained(str(temp))
    write_generation_config(model, tokenizer, templates, temp)
    (temp / "crlft.json").write_text(
        json.dumps({**record, "expert_condition": condition}, indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    shutil.rmtree(final, ignore_errors=True)
    temp.rename(final)
    dist.barrier()
    return final


def write_generation_config(
    model: object, tokenizer: object, templates: dict, folder: Path
) -> None:
    from transformers import GenerationConfig

    eot_id = tokenizer.convert_tokens_to_ids(templates.get("eot", "<|end_of_turn|>"))
    stops = [i for i in (eot_id, tokenizer.eos_token_id) if i is not None]
    config = GenerationConfig(
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0],
        bos_token_id=tokenizer.bos_token_id,
        do_sample=False,
        max_new_tokens=512,
    )
    config.save_pretrained(str(folder))
