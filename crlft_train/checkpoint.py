"""Checkpoints that resume exactly, and the final Hugging Face folder.

DeepSpeed writes each checkpoint under `checkpoints/step-N/`; we move the `latest` pointer (temp +
rename, so it is never half-written) only once every rank has finished, and we never rewrite the
checkpoint that `latest` names. A crash or a full disk while saving therefore leaves the previous
checkpoint valid, and resuming falls back to an older checkpoint if the newest one is unreadable
anyway (copied partially, say). Our client state carries what DeepSpeed does not know: the sampler
position and the RNGs.
"""

from __future__ import annotations

import json
import os
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


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be loaded: one line saying which and why."""


def save_checkpoint(engine: object, run_dir: Path, step: int, client_state: dict) -> Path:
    """Save `checkpoints/step-N`, then point `latest` at it and drop all but the newest two.

    Callers must not save a step twice: rewriting the checkpoint `latest` names is the one moment
    a crash could leave nothing valid to resume from.
    """
    import torch.distributed as dist

    folder = run_dir / CHECKPOINTS
    tag = f"step-{step}"
    client_state = {**client_state, "rng": rng_state()}
    engine.save_checkpoint(str(folder), tag=tag, client_state=client_state, save_latest=False)
    if not dist.is_initialized() or dist.get_rank() == 0:
        write_latest(folder, tag)
        prune_checkpoints(folder, keep=KEEP_CHECKPOINTS)
    if dist.is_initialized():
        dist.barrier()
    return folder / tag


def write_latest(folder: Path, tag: str) -> None:
    temp = folder / ".latest.tmp"
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(tag)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(folder / "latest")


def checkpoint_steps(folder: Path) -> list[int]:
    """The steps that have a checkpoint folder, oldest first."""
    steps = []
    for path in folder.glob("step-*"):
        number = path.name.removeprefix("step-")
        if path.is_dir() and number.isdigit():
            steps.append(int(number))
    return sorted(steps)


def prune_checkpoints(folder: Path, keep: int) -> None:
    latest = read_latest(folder)
    for step in checkpoint_steps(folder)[:-keep]:
        if f"step-{step}" != latest:
            shutil.rmtree(folder / f"step-{step}", ignore_errors=True)


def read_latest(folder: Path) -> str | None:
    pointer = folder / "latest"
    return pointer.read_text(encoding="utf-8").strip() or None if pointer.is_file() else None


def candidate_tags(folder: Path) -> list[str]:
    """Checkpoints to try, best first: the one `latest` names, then older ones, newest first."""
    latest = read_latest(folder)
    if latest is None:
        return []
    newest = int(latest.removeprefix("step-")) if latest.removeprefix("step-").isdigit() else None
    older = [
        f"step-{s}" for s in reversed(checkpoint_steps(folder)) if newest is None or s < newest
    ]
    return [latest, *older]


def load_checkpoint(engine: object, run_dir: Path, warn: object = print) -> dict | None:
    """The client state of the newest loadable checkpoint, or None when the run has none.

    A checkpoint that fails to load on any rank (truncated by a crash, files missing) is reported
    through `warn` and all ranks move on to the next older one together; DeepSpeed's load replaces
    the module, optimiser and scheduler state wholesale, so a failed attempt leaves nothing behind.
    """
    folder = run_dir / CHECKPOINTS
    tags = candidate_tags(folder)
    if not tags:
        return None
    problems = []
    for tag in tags:
        client_state, problem = try_load(engine, folder, tag)
        if all_ranks_agree(problem is None, engine.device):
            if problems:
                warn(f"skipped unreadable checkpoints ({'; '.join(problems)}); resuming from {tag}")
            restore_rng(client_state["rng"])
            return client_state
        problems.append(problem or f"{tag}: unreadable on another rank")
    raise CheckpointError(
        f"no checkpoint in {folder} can be loaded ({'; '.join(problems)}); delete the folder "
        "to start over, or run without --resume"
    )


def try_load(engine: object, folder: Path, tag: str) -> tuple[dict | None, str | None]:
    """(client state, None) when the checkpoint loads completely, else (None, what went wrong)."""
    try:
        path, client_state = engine.load_checkpoint(str(folder), tag=tag)
    except (EOFError, OSError, RuntimeError, KeyError, ValueError) as error:
        first_line = (str(error).splitlines() or [""])[0]
        return None, f"{tag}: {type(error).__name__}: {first_line}"
    if path is None or not client_state or "step" not in client_state or "rng" not in client_state:
        return None, f"{tag}: incomplete (model or trainer state missing)"
    return client_state, None


def all_ranks_agree(ok: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    if not dist.is_initialized():
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)  # NCCL: on the GPU
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


# --- the final Hugging Face folder -------------------------------------------------------------


def chat_template(templates: dict, default_condition: str, control_tokens: list[str]) -> str:
    """A Jinja chat template rendering the trained template for any condition (default: expert).

    `apply_chat_template(..., condition="GPT3")` selects another class's condition (paper Fig. 5).
    It renders exactly the text the training rows were tokenized from (`bos + text`), so its ids
    are the rows' ids (tested for every tokenizer family). A template cannot tokenize content as
    plain text, so a message holding a control token's text (`<|end_of_turn|>`, `</s>`, ...)
    raises instead of injecting it; `crlft-chat` (`chat.PromptEncoder`) encodes such content as
    plain text, segment by segment, as training did.
    """
    eot = templates.get("eot", "<|end_of_turn|>")
    separator = templates.get("separator", " ")
    conditions = {}
    for info in templates.get("by_class", {}).values():
        prefixes = info["prefixes"]
        conditions[info["condition"]] = {
            "header": info.get("header", ""),
            "system": turn_opening(prefixes["system"], separator),
            "user": turn_opening(prefixes["human"], separator),
            "assistant": turn_opening(prefixes["gpt"], separator),
            "prompt": info.get("generation_prompt", prefixes["gpt"]),
        }
    table = json.dumps(conditions, ensure_ascii=False)
    controls = json.dumps(sorted(set(control_tokens)), ensure_ascii=False)
    return (
        "{%- set conditions = " + table + " -%}"
        "{%- set controls = " + controls + " -%}"
        "{%- set t = conditions[condition] if condition is defined and condition in conditions "
        "else conditions[" + json.dumps(default_condition) + "] -%}"
        "{{- bos_token if bos_token else '' -}}{{- t.header -}}"
        "{%- for m in messages -%}{%- set n = loop.index -%}"
        "{%- for c in controls -%}{%- if c in m.content -%}"
        "{{- raise_exception('message ' ~ n ~ ' contains the control token ' ~ c ~ "
        "': a chat template cannot keep it plain text; encode it as crlft-chat does "
        "(crlft_train.chat.PromptEncoder)') -}}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if m.role == 'system' -%}{{- t.system -}}"
        "{%- elif m.role == 'user' -%}{{- t.user -}}"
        "{%- elif m.role == 'assistant' -%}{{- t.assistant -}}"
        "{%- else -%}{{- raise_exception('unknown role ' ~ m.role ~ ': use system, user or "
        "assistant') -}}{%- endif -%}"
        "{{- m.content + " + json.dumps(eot) + " -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- t.prompt -}}{%- endif -%}"
    )


def turn_opening(prefix: str, separator: str) -> str:
    """What comes before a turn's content: `GPT4 User: `, or nothing for bare system text."""
    return prefix + separator if prefix else ""


def control_tokens(tokenizer: object) -> list[str]:
    """Every added token's text: the tokenizer would turn any of them, typed, into its id."""
    return [t for t in tokenizer.get_added_vocab() if t]


def expert_condition(templates: dict) -> str:
    """The condition of the highest-weight class: the one used at inference (paper Sec. 4).

    At equal weights (the "no reward" ablation) the class the rules file declares first wins
    (`templates.class_order`, recorded by `tokenize`).
    """
    by_class = templates.get("by_class", {})
    if not by_class:
        return ""
    order = [name for name in templates.get("class_order", []) if name in by_class]
    order += [name for name in by_class if name not in order]
    best = max(order, key=lambda name: (by_class[name].get("weight", 0.0), -order.index(name)))
    return by_class[best]["condition"]


def consolidated_state_dict(engine: object, zero_stage: int) -> dict | None:
    """Full weights on rank 0 (gathered from all ranks under ZeRO-3), None on other ranks."""
    import torch.distributed as dist

    if zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
        return state if dist.get_rank() == 0 else None
    if dist.get_rank() != 0:
        return None
    return {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}


def export_model(
    engine: object,
    tokenizer: object,
    tokenizer_dir: Path,
    templates: dict,
    folder: Path,
    zero_stage: int,
    record: dict,
) -> Path | None:
    """A Hugging Face folder (final/ or a snapshot): weights, tokenizer + chat template,
    generation config, crlft.json. Written atomically on rank 0; None on other ranks.

    The tokenizer files are `tokenize`'s own (`tokenizer_dir`), copied rather than saved again:
    that stage wrote them to load identically in transformers 4.40+ and 5.x, and a transformers 5
    `save_pretrained` would drop what older versions need (`legacy`, `tokenizer.model`...).
    """
    import torch.distributed as dist

    state = consolidated_state_dict(engine, zero_stage)
    if dist.get_rank() != 0:
        dist.barrier()
        return None
    temp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.parent.mkdir(parents=True, exist_ok=True)
    model = engine.module
    model.save_pretrained(str(temp), state_dict=state, safe_serialization=True)
    condition = expert_condition(templates)
    template = chat_template(templates, condition, control_tokens(tokenizer))
    export_tokenizer(tokenizer_dir, temp, template)
    write_generation_config(model, tokenizer, templates, temp)
    (temp / "crlft.json").write_text(
        json.dumps({**record, "expert_condition": condition}, indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    shutil.rmtree(folder, ignore_errors=True)
    temp.rename(folder)
    dist.barrier()
    return folder


def export_tokenizer(source: Path, folder: Path, template: str) -> None:
    """The tokenizer files of `source` plus the chat template, where every version reads it:
    `chat_template.jinja` (transformers 5) and `tokenizer_config.json` (4.x)."""
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, folder / path.name)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["chat_template"] = template
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")


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
