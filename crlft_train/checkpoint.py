"""Checkpoints that resume exactly, and the final Hugging Face folder.

DeepSpeed writes each checkpoint under `checkpoints/step-N/`; we move the `latest` pointer (temp +
rename, so it is never half-written) only once every rank has finished, and we never rewrite the
checkpoint that `latest` names. A crash or a full disk while saving therefore leaves the previous
checkpoint valid, and resuming falls back to an older checkpoint if the newest one is unreadable
or incomplete anyway (copied partially, a file deleted). Our client state carries what DeepSpeed
does not know: the sampler position and the RNGs.

Beside DeepSpeed's files each checkpoint holds `crlft_run.json` (written last, before `latest`
moves): the size of every file, so that a missing or truncated file is found before DeepSpeed
tries to load it, and the options that fixed the run (`run_folder` compares them on --resume).

A write that fails (a full disk: ENOSPC) is caught on every rank; the ranks agree, the partial
checkpoint is removed, and the error is one line naming the path and the space it needs.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crlft_contract import END_OF_TURN

CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2
RECORD = "crlft_run.json"  # inside each checkpoint folder: its files' sizes and the run's options
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
    """No checkpoint of a run can be loaded, or one cannot be written: one line, which and why."""


def is_rank_zero() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


@dataclass
class Writes:
    """What a save attempted: the bytes of every state it wrote, and the first write that failed."""

    state_bytes: int = 0
    failed_path: Path | None = None
    error: OSError | None = None

    def fail(self, path: Path, error: OSError) -> None:
        if self.error is None:
            self.failed_path, self.error = path, error


def save_checkpoint(
    engine: object,
    run_dir: Path,
    step: int,
    client_state: dict,
    record: dict,
    frozen_saved: bool = True,
) -> Path:
    """Save `checkpoints/step-N` and its record, then point `latest` at it and drop all but the
    newest two. A failed write raises CheckpointError on every rank, with `latest` unmoved.

    `frozen_saved=False` (LoRA) leaves the frozen parameters out: the base model loads again from
    its own folder, and a 7B run's checkpoint is its adapters, not 14 GB.

    Callers must not save a step twice: rewriting the checkpoint `latest` names is the one moment
    a crash could leave nothing valid to resume from. A folder of that step that `latest` does not
    name, or that resuming skipped as unreadable, is the debris of a failed save: removed first.
    """
    folder = run_dir / CHECKPOINTS
    tag = f"step-{step}"
    target = folder / tag
    if is_rank_zero() and target.exists():
        shutil.rmtree(target)
    barrier()
    client_state = {**client_state, "rng": rng_state()}
    writes = Writes()
    try:
        with guarded_writes(engine, writes):
            engine.save_checkpoint(
                str(folder), tag=tag, client_state=client_state, save_latest=False,
                exclude_frozen_parameters=not frozen_saved,
            )  # fmt: skip
    except OSError as error:  # a write outside the checkpoint engine (DeepSpeed's helper script)
        writes.fail(target, error)
    if writes.error is None and is_rank_zero():
        try:
            write_record(target, {"step": step, **record})
            write_latest(folder, tag)
        except OSError as error:
            writes.fail(target / RECORD, error)
    if not all_ranks_agree(writes.error is None, engine.device):
        raise failed_save(folder, target, writes)
    if is_rank_zero():
        prune_checkpoints(folder, keep=KEEP_CHECKPOINTS)
    barrier()
    return target


@contextmanager
def guarded_writes(engine: object, writes: Writes) -> Iterator[None]:
    """Record (not raise) a failed write of DeepSpeed's checkpoint engine, so that every rank still
    reaches DeepSpeed's closing barrier and the ranks can agree on the failure afterwards."""
    checkpoint_engine = engine.checkpoint_engine
    original = checkpoint_engine.save
    own = "save" in vars(checkpoint_engine)  # an instance attribute already: restore it as such

    def save(state_dict: object, path: str) -> None:
        writes.state_bytes += tensor_bytes(state_dict)
        if writes.error is not None:
            return  # the checkpoint is lost already: writing more would only fill the disk
        try:
            original(state_dict, path)
        except OSError as error:
            writes.fail(Path(path), error)

    checkpoint_engine.save = save
    try:
        yield
    finally:
        if own:
            checkpoint_engine.save = original
        else:
            del checkpoint_engine.save  # the class's method again


def tensor_bytes(value: object) -> int:
    """The bytes of the tensors in a (nested) state: what writing it costs on disk, about."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(v) for v in value)
    return 0


def failed_save(folder: Path, target: Path, writes: Writes) -> Exception:
    """Remove the partial checkpoint; the one-line error.

    Everything in `target` is from this attempt (`save_checkpoint` cleared it first), so it goes
    even when `latest` names it (a resume that skipped it as unreadable is saving it again).
    """
    if is_rank_zero():
        shutil.rmtree(target, ignore_errors=True)
    barrier()
    if writes.error is None:
        return CheckpointError(f"another rank could not write checkpoint {target}; see its error")
    previous = intact_checkpoint(folder)
    kept = (
        f"the previous checkpoint {folder / previous} is intact"
        if previous
        else "no earlier checkpoint is intact"
    )
    estimate = max(writes.state_bytes, folder_bytes(folder / previous) if previous else 0)
    return write_error(f"checkpoint {target}", writes, estimate, kept, folder)


def intact_checkpoint(folder: Path) -> str | None:
    """The checkpoint --resume would load first, by its files (`missing_files`), or None."""
    return next((tag for tag in candidate_tags(folder) if missing_files(folder, tag) is None), None)


def write_error(
    what: str, writes: Writes, estimate: int, kept: str, where: Path
) -> CheckpointError:
    """One line: what could not be written where, the space it needs and what is still valid."""
    error = writes.error
    free = free_bytes(where)
    if error.errno in DISK_FULL:
        return CheckpointError(
            f"disk full while writing {what} ({writes.failed_path}): it needs about "
            f"{human_bytes(estimate)} free, {human_bytes(free)} free now; {kept}: free some "
            "space and run again with --resume"
        )
    return CheckpointError(
        f"cannot write {what} ({writes.failed_path}: {error.strerror or error}); {kept}: fix it "
        "and run again with --resume"
    )


def folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def free_bytes(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def write_record(target: Path, record: dict) -> None:
    """`crlft_run.json`: the record and the size of every file DeepSpeed wrote (atomically)."""
    files = {
        str(path.relative_to(target)): path.stat().st_size
        for path in sorted(target.rglob("*"))
        if path.is_file() and path.name != RECORD
    }
    write_json_atomic(target / RECORD, {**record, "files": files})


def write_json_atomic(path: Path, value: dict) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(value, indent=2, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


def read_record(folder: Path, tag: str) -> dict | None:
    path = folder / tag / RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def newest_record(run_dir: Path) -> tuple[str, dict] | None:
    """(tag, record) of the newest checkpoint that has a readable record, or None."""
    folder = run_dir / CHECKPOINTS
    for tag in candidate_tags(folder):
        record = read_record(folder, tag)
        if record is not None:
            return tag, record
    return None


def missing_files(folder: Path, tag: str) -> str | None:
    """What is missing or truncated in a checkpoint, by its record; None when it looks whole.

    A checkpoint without a record (written before records existed) is left to DeepSpeed's load.
    """
    target = folder / tag
    if not target.is_dir():
        return "its folder is missing"
    record = read_record(folder, tag)
    if record is None:
        if (target / RECORD).exists():
            return f"{RECORD} is unreadable"
        return None if any(target.glob("*model_states.pt")) else "no model states file"
    for name, size in record.get("files", {}).items():
        path = target / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} is truncated or changed ({path.stat().st_size:,} of {size:,} bytes)"
    return None


def write_latest(folder: Path, tag: str) -> None:
    temp = folder / ".latest.tmp"
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(tag)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(folder / "latest")
    finally:
        temp.unlink(missing_ok=True)


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


def load_checkpoint(
    engine: object, run_dir: Path, warn: object = print, frozen_saved: bool = True
) -> dict | None:
    """The client state of the newest loadable checkpoint, or None when the run has none.

    `frozen_saved=False`: the checkpoints hold the trainable parameters only (`save_checkpoint`);
    the frozen ones are the model's as built.

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
        client_state, problem = try_load(engine, folder, tag, frozen_saved)
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


def try_load(
    engine: object, folder: Path, tag: str, frozen_saved: bool = True
) -> tuple[dict | None, str | None]:
    """(client state, None) when the checkpoint loads completely, else (None, what went wrong)."""
    missing = missing_files(folder, tag)
    if missing:
        return None, f"{tag}: {missing}"
    try:
        path, client_state = engine.load_checkpoint(
            str(folder), tag=tag, load_module_strict=frozen_saved
        )
    # DeepSpeed asserts that the files it globbed exist: a deleted file is an AssertionError.
    except (AssertionError, EOFError, OSError, RuntimeError, KeyError, ValueError) as error:
        first_line = (str(error).splitlines() or [""])[0] or "files missing or unreadable"
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
    eot = templates.get("eot", END_OF_TURN)
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


@dataclass
class Weights:
    """What an exported folder holds: `state`, written by `model.save_pretrained` (a Hugging Face
    model, or a peft model for an adapter alone), on rank 0; both None on other ranks."""

    model: object | None
    state: dict | None


def export_model(
    engine: object,
    tokenizer: object,
    tokenizer_dir: Path,
    templates: dict,
    folder: Path,
    weights: Weights,
    record: dict,
) -> Path | None:
    """A Hugging Face folder (final/ or a snapshot): weights, tokenizer + chat template,
    generation config, crlft.json. Written atomically on rank 0; None on other ranks. A failed
    write (a full disk) raises CheckpointError on every rank, and an older `folder` stays.

    The tokenizer files are `tokenize`'s own (`tokenizer_dir`), copied rather than saved again:
    that stage wrote them to load identically in transformers 4.40+ and 5.x, and a transformers 5
    `save_pretrained` would drop what older versions need (`legacy`, `tokenizer.model`...).
    """
    problem = None
    if is_rank_zero():
        problem = write_model_folder(weights.model, weights.state, tokenizer, tokenizer_dir,
                                     templates, folder, record)  # fmt: skip
    if not all_ranks_agree(problem is None, engine.device):
        raise problem or CheckpointError(f"rank 0 could not write {folder}; see its error")
    return folder if is_rank_zero() else None


def write_model_folder(
    model: object,
    state: dict,
    tokenizer: object,
    tokenizer_dir: Path,
    templates: dict,
    folder: Path,
    record: dict,
) -> CheckpointError | None:
    """Write the folder under a temporary name and rename it into place; on a failed write (a full
    disk), remove the temporary folder, keep any older `folder`, and return the one-line error."""
    temp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    # Measured now: save_pretrained empties the state dict it is given as it writes the shards.
    estimate = tensor_bytes(state) + folder_bytes(tokenizer_dir)
    try:
        temp.parent.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(temp), state_dict=state, safe_serialization=True)
        condition = expert_condition(templates)
        template = chat_template(templates, condition, control_tokens(tokenizer))
        export_tokenizer(tokenizer_dir, temp, template)
        write_generation_config(model, tokenizer, templates, temp)
        (temp / "crlft.json").write_text(
            json.dumps({**record, "expert_condition": condition}, indent=2, default=str) + "\n",
            encoding="utf-8",
        )
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        writes = Writes(failed_path=Path(error.filename or temp), error=error)
        kept = "the run's checkpoints are intact" + (
            f" and the older {folder.name}/ is kept" if folder.exists() else ""
        )
        return write_error(f"the Hugging Face model {folder}", writes, estimate, kept, folder)
    shutil.rmtree(folder, ignore_errors=True)
    temp.rename(folder)
    return None


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

    eot_id = tokenizer.convert_tokens_to_ids(templates.get("eot", END_OF_TURN))
    stops = [i for i in (eot_id, tokenizer.eos_token_id) if i is not None]
    config = GenerationConfig(
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0],
        bos_token_id=tokenizer.bos_token_id,
        do_sample=False,
        max_new_tokens=512,
    )
    config.save_pretrained(str(folder))
