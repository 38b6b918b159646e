"""The C-RLFT training recipe: setup → loop → save, top to bottom.

One optimiser step = `accumulation` packed micro-batches per rank (whole sequences, each
≤ --batch-max-len tokens; --batch-tokens sets how many). The loss of a step is the token-level
weighted mean over the *global* batch, every rank and micro-batch of the step, Σ w_t·CE_t / Σ w_t.
The weights are data, so Σ w is summed before any forward and all-reduced once per step. Each
micro-batch back-propagates world_size × (its Σ w·CE) / (global Σ w); gradients add up over the
micro-batches and DeepSpeed averages them over ranks, so the result is exactly the gradient of the
global weighted mean, however the step is split.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from crlft_contract import Metric
from crlft_train import checkpoint, lora, loss, run_folder
from crlft_train.attention import (
    register_varlen_attention,
    torch_varlen_kernel,
)
from crlft_train.config import ConfigError, Offload, TrainConfig, auto_peak_lr, lr_at
from crlft_train.data import TokenizedData, check_supervised, load_tokenized, pack
from crlft_train.ds_config import load_deepspeed_config
from crlft_train.forward import (
    all_reduce_sum,
    class_losses,
    packed_loss_sums,
    scoring_plan,
    summed_losses,
    weight_sum,
)
from crlft_train.metrics import MetricsLog, console, loss_or_dash, summary_line
from crlft_train.model import count_parameters, load_base, resize_embeddings
from crlft_train.packing import MultipackSampler, Step, packing_efficiency, rank_share


class TrainingError(RuntimeError):
    """A failure during training that the user must act on (NaN loss, ...): one line."""


@dataclass
class Run:
    """Everything the loop needs, built once by `setup`."""

    config: TrainConfig
    data: TokenizedData
    tokenizer: object
    engine: object
    sampler: MultipackSampler
    lengths: list[int]
    class_index: dict[str, int]
    total_steps: int
    peak_lr: float
    accumulation: int  # micro-batches per rank and optimiser step
    rank: int
    world: int
    device: torch.device
    plan: dict  # what fixes the data order and the saved state's layout (`run_plan`)


# --- setup ----------------------------------------------------------------------------------------


def init_distributed() -> tuple[int, int]:
    """Join the launcher's process group (deepspeed / torchrun), or make a one-process group."""
    import deepspeed

    if os.environ.get("DS_ACCELERATOR", None) == "":
        del os.environ["DS_ACCELERATOR"]  # set-but-empty is an error in DeepSpeed
    if "RANK" not in os.environ:
        os.environ.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1"
        )
        os.environ.setdefault("LOCAL_RANK", "0")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    return dist.get_rank(), dist.get_world_size()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_bf16(config: TrainConfig) -> bool:
    return torch.cuda.is_available() if config.bf16 is None else config.bf16


def deepspeed_config(
    config: TrainConfig, bf16: bool, user: dict | None, accumulation: int = 1
) -> dict:
    batch = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": accumulation}
    base = {
        **batch,
        "gradient_clipping": config.max_grad_norm,
        "zero_optimization": {"stage": config.zero_stage, **offload_settings(config.offload)},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
    }
    if user is None:
        return base
    # The file's settings win over the flags' (--zero, precision, clipping); the packing sampler
    # defines the batch: `accumulation` packed micro-batches per rank per step (--batch-tokens).
    user = {key: value for key, value in user.items() if key != "train_batch_size"}
    return {**base, **user, **batch}


def offload_settings(offload: str) -> dict:
    """ZeRO's offload blocks for --offload (CPU memory; NVMe: a --deepspeed file)."""
    if offload == Offload.NONE:
        return {}
    # Pinned host memory makes the copies to and from the GPU faster; a CPU run has no GPU.
    device = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    blocks = {"offload_optimizer": device}
    if offload == Offload.PARAMS:
        blocks["offload_param"] = device
    return blocks


def optimizer_offloaded(ds_config: dict) -> bool:
    offload = ds_config.get("zero_optimization", {}).get("offload_optimizer") or {}
    return offload.get("device", "none") not in (None, "none")


def run_plan(config: TrainConfig, data: TokenizedData, ds_config: dict) -> dict:
    """What fixes the data order, the batches and the saved state's layout: a resumed run must
    match it (`run_folder.check_plan`). Known before the process group starts."""
    precision = next(
        (name for name in ("bf16", "fp16") if ds_config.get(name, {}).get("enabled")), "fp32"
    )
    return {
        "data_fingerprint": data.manifest.get("fingerprint"),
        "sequences": len(data.train),
        "batch_max_len": config.batch_max_len,
        "accumulation": config.accumulation_steps(world_size()),
        "seed": config.seed,
        "world_size": world_size(),
        "zero_stage": zero_stage(ds_config),
        "offload": offload_plan(ds_config),
        "precision": precision,
        "lora": config.lora_plan(),
    }


def zero_stage(ds_config: dict) -> int:
    return int(ds_config.get("zero_optimization", {}).get("stage", 0))


def offload_plan(ds_config: dict) -> str:
    """Where ZeRO keeps the optimiser states and the parameters: fixes the checkpoint's layout."""
    zero = ds_config.get("zero_optimization", {})
    places = [
        f"{what} on {(zero.get(key) or {}).get('device')}"
        for key, what in (("offload_optimizer", "optimizer"), ("offload_param", "params"))
        if (zero.get(key) or {}).get("device", "none") not in (None, "none")
    ]
    return ", ".join(places) or "none"


def world_size() -> int:
    """The launcher's number of ranks (1 without a launcher), known before the group starts."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def parameter_layout(model: torch.nn.Module) -> dict:
    """The parameters' count and a digest of their names and shapes (the checkpoint's layout)."""
    # Under ZeRO-3 a parameter's local tensor is empty; DeepSpeed keeps the full shape in ds_shape.
    shapes = [[name, list(getattr(p, "ds_shape", p.shape))] for name, p in model.named_parameters()]
    digest = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]
    return {"count": count_parameters(model), "digest": digest}


def prepare(config: TrainConfig) -> tuple[TokenizedData, dict | None]:
    """Checks that need no process group (every rank makes them alike): bad input fails fast."""
    config.validate()
    data = load_tokenized(config.data)
    check_supervised(data)
    user_ds = load_deepspeed_config(config.deepspeed_config) if config.deepspeed_config else None
    stage = zero_stage(user_ds) if user_ds and "zero_optimization" in user_ds else config.zero_stage
    if config.lora_r and stage == 3:
        raise ConfigError(f"{config.deepspeed_config} sets ZeRO-3, which --lora-r does not support")
    config.check_offload(stage)
    return data, user_ds


def setup(config: TrainConfig, prepared: tuple[TokenizedData, dict | None] | None = None) -> Run:
    import deepspeed
    from transformers import AutoTokenizer

    data, user_ds = prepared or prepare(config)
    rank, world = init_distributed()
    tokenizer = AutoTokenizer.from_pretrained(str(data.tokenizer_dir), local_files_only=True)
    bf16 = default_bf16(config)
    model = build_policy(config, len(tokenizer), bf16)
    accumulation = config.accumulation_steps(world)
    ds_config = deepspeed_config(config, bf16, user_ds, accumulation)
    lengths = [int(n) for n in data.train["length"]]
    sampler = MultipackSampler(
        lengths, config.batch_max_len, world, config.seed, accumulation=accumulation
    )
    steps = sum(sampler.steps_per_epoch(epoch) for epoch in range(config.epochs))
    total_steps = min(steps, config.max_steps) if config.max_steps else steps
    capacity = config.step_token_capacity(world)
    peak = config.lr or auto_peak_lr(capacity, count_parameters(model), lora=bool(config.lora_r))
    groups = parameter_groups(model, config.weight_decay)
    optimizer = build_optimizer(groups, config, peak, optimizer_offloaded(ds_config), rank)
    if optimizer_offloaded(ds_config) and isinstance(optimizer, torch.optim.AdamW):
        ds_config["zero_force_ds_cpu_optimizer"] = False  # DeepSpeed's CPU Adam did not build
    warmup = config.warmup_count(total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, total_steps, 1.0, warmup, config.lr_min_ratio)
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=schedule,
        config=ds_config,
    )
    class_index = {name: i for i, name in enumerate(data.classes)}
    return Run(
        config, data, tokenizer, engine, sampler, lengths, class_index, total_steps, peak,
        accumulation, rank, world, engine.device, run_plan(config, data, ds_config),
    )  # fmt: skip


def build_policy(config: TrainConfig, vocab_size: int, bf16: bool) -> torch.nn.Module:
    """The model to train: the whole model, or (--lora-r) its frozen base with adapters."""
    quantization = lora.quantization_config(config, bf16)
    model = load_base(
        config.model, config.model_config, vocab_size, config.seed, quantization, local_device()
    )
    added = resize_embeddings(model, vocab_size)
    if use_varlen(config.attention):
        model.set_attn_implementation(register_varlen_attention())
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if not config.lora_r:
        return model
    torch.manual_seed(config.seed)  # the adapters' initialisation, whatever loaded the base
    return lora.add_adapters(model, config, list(range(vocab_size - added, vocab_size)))


def local_device() -> str:
    """This rank's device, known before DeepSpeed starts (where a 4-bit base is quantised)."""
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def use_varlen(mode: str) -> bool:
    from deepspeed.accelerator import get_accelerator

    if mode == "auto":
        return get_accelerator().device_name() == "cuda" and torch_varlen_kernel() is not None
    return mode == "varlen"


def build_optimizer(
    groups: list[dict], config: TrainConfig, peak: float, offloaded: bool, rank: int
) -> torch.optim.Optimizer:
    """AdamW; on offloaded states (--offload) DeepSpeed's vectorised CPU Adam (AdamW mode), which
    steps them several times faster than torch's, when it builds here."""
    options = {"lr": peak, "betas": config.betas, "eps": config.eps}
    cpu_adam = cpu_adam_class(rank) if offloaded else None
    if cpu_adam is not None:
        return cpu_adam(groups, weight_decay=config.weight_decay, adamw_mode=True, **options)
    return torch.optim.AdamW(groups, **options)


def cpu_adam_class(rank: int) -> type | None:
    """DeepSpeedCPUAdam, compiled on first use (then cached in ~/.cache/torch_extensions); None
    when it cannot be built here (no C++ compiler): torch's AdamW steps the offloaded states."""
    from deepspeed.ops.adam import DeepSpeedCPUAdam
    from deepspeed.ops.op_builder import CPUAdamBuilder

    if rank == 0:
        console.print("loading DeepSpeed's CPU Adam (compiled the first time, 1–2 min)")
    try:
        CPUAdamBuilder().load(verbose=False)
    except (ImportError, OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        if rank == 0:
            first_line = (str(exc).splitlines() or [""])[0]
            console.print(f"DeepSpeed's CPU Adam cannot be built ({first_line}): torch's AdamW "
                          "steps the offloaded optimiser states (slower)")  # fmt: skip
        return None
    return DeepSpeedCPUAdam


DECAYED = "crlft_decayed"  # a param group's mark: whether --weight-decay applies to it


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and norms, as usual for transformers. Only groups with trainable
    parameters (LoRA trains no norm): DeepSpeed drops empty groups, the schedule would not."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay, DECAYED: True},
        {"params": no_decay, "weight_decay": 0.0, DECAYED: False},
    ]
    return [group for group in groups if group["params"]]


# --- one step -------------------------------------------------------------------------------------


def backward(run: Run, step: Step) -> tuple[loss.WeightedSums, torch.Tensor]:
    """Forward and backward of this rank's micro-batches of a step; (their sums, global Σ w).

    After it, every rank holds the gradient of the step's global weighted mean loss, and the
    caller's `engine.step()` applies it. Between this rank's micro-batches `engine.step()` only
    counts the micro-batch (DeepSpeed's accumulation boundary is the last one).
    """
    per_sequence = run.config.per_sequence_loss
    batches = [
        pack([run.data.train[i] for i in items], run.class_index)
        for items in rank_share(step, run.rank, run.world)
    ]
    global_weight = all_reduce_sum(weight_sum(batches, per_sequence).to(run.device))
    total: loss.WeightedSums | None = None
    for index, batch in enumerate(batches):
        if index:
            run.engine.step()
        sums = packed_loss_sums(
            run.engine, batch, len(run.class_index), per_sequence, run.device,
            run.config.chunked_loss,
        )  # fmt: skip
        # DeepSpeed averages gradients over ranks: × world size makes the average the global
        # mean's; the sum over micro-batches is kept as it is (no 1/accumulation scaling).
        step_loss = loss.weighted_mean_loss(sums.loss_sum, global_weight) * run.world
        run.engine.backward(step_loss.float(), scale_wrt_gas=False)  # DeepSpeed's loss dtype
        total = sums if total is None else loss.added(total, sums)
    assert total is not None, "a step has at least one micro-batch per rank"
    return total, global_weight


def train_step(run: Run, step: Step) -> dict:
    """One optimiser step: this rank's packed micro-batches, the global weighted mean loss."""
    started = time.perf_counter()
    sums, global_weight = backward(run, step)
    grad_norm = gradient_norm(run)
    run.engine.step()
    global_loss = all_reduce_sum(sums.loss_sum) / global_weight.clamp(min=1e-12)
    per_class = all_reduce_sum(
        torch.stack([torch.stack([c.loss_sum, c.weight_sum]) for c in sums.per_class.values()])
    )
    if run.config.zero_stage > 0:
        grad_norm = float(run.engine.get_global_grad_norm() or float("nan"))
    elapsed = time.perf_counter() - started
    step_tokens = sum(run.lengths[i] for items in step for i in items)
    record = {
        Metric.LOSS: global_loss.item(),
        Metric.LR: run.engine.get_lr()[0],
        Metric.TOKENS_PER_S: step_tokens / max(elapsed, 1e-9),
        Metric.PACKING_EFFICIENCY: packing_efficiency(
            run.lengths, [step], run.config.batch_max_len
        ),
        Metric.GRAD_NORM: grad_norm,
        Metric.WEIGHT_SUM: global_weight.item(),
        Metric.TOKENS: step_tokens,
    }
    record.update(class_losses(run.class_index, per_class))
    return record


def gradient_norm(run: Run) -> float:
    """The global gradient norm before clipping (DeepSpeed reports it only under ZeRO ≥ 1)."""
    if run.config.zero_stage > 0:
        return float("nan")  # read after the step from the engine, see train_step
    squares = [p.grad.detach().float().pow(2).sum() for p in run.engine.module.parameters()
               if p.grad is not None]  # fmt: skip
    return torch.stack(squares).sum().sqrt().item() if squares else 0.0


def evaluate(run: Run) -> dict:
    """Validation loss (weighted mean, and mean CE per class), over the whole validation split."""
    validation = run.data.validation
    if validation is None or len(validation) == 0:
        return {}
    plan = scoring_plan(validation["length"], run.config.batch_max_len, run.world)
    run.engine.eval()
    totals, per_class = summed_losses(
        run.engine, ([validation[i] for i in bins[run.rank]] for bins in plan), run.class_index,
        run.config.per_sequence_loss, run.device, chunked=run.config.chunked_loss,
    )  # fmt: skip
    run.engine.train()
    # On the device: an NCCL group has no CPU all-reduce.
    totals, per_class = (
        all_reduce_sum(totals.to(run.device)),
        all_reduce_sum(per_class.to(run.device)),
    )
    record = {Metric.VAL_LOSS: (totals[0] / totals[1].clamp(min=1e-12)).item()}
    record.update(class_losses(run.class_index, per_class, validation=True))
    return record


SNAPSHOTS = "snapshots"  # --export-every: Hugging Face folders of intermediate steps


# --- the loop -------------------------------------------------------------------------------------


def train(config: TrainConfig) -> Path | None:
    data, user_ds = prepare(config)
    run_folder.check_output(config.output, config.resume, config.overwrite)
    if config.resume:
        plan = run_plan(config, data, deepspeed_config(config, default_bf16(config), user_ds))
        run_folder.check_plan(config.output, plan)
    run = setup(config, (data, user_ds))
    if config.overwrite and run.rank == 0:
        run_folder.clear_run(config.output)
    checkpoint.barrier()  # no rank writes before the old run is gone
    state = resume(run) if config.resume else None
    step = saved_step = state["step"] if state else 0
    announce(run, describe(run))
    resumed_at = step if state else None  # metrics.jsonl drops what was logged after it
    with MetricsLog(config.output, enabled=run.rank == 0, resume_step=resumed_at) as log:
        for epoch in range(run.sampler.epoch, config.epochs):
            run.sampler.set_epoch(epoch)
            for planned in run.sampler:
                if step >= run.total_steps:
                    break
                record = {Metric.STEP: step + 1, Metric.EPOCH: epoch, **train_step(run, planned)}
                step += 1
                check_finite(run, record, step)
                log.log(record)
                if run.rank == 0 and (step % config.log_every == 0 or step == run.total_steps):
                    console.print(summary_line(record), highlight=False, soft_wrap=True)
                if config.save_every and step % config.save_every == 0:
                    save(run, step)
                    saved_step = step
                if config.eval_every and step % config.eval_every == 0:
                    log_validation(run, log, step)
                if config.export_every and step % config.export_every == 0:
                    export(run, step, config.output / SNAPSHOTS / f"step-{step}")
        if (not config.eval_every or step % config.eval_every) and not validated(run, log, step):
            log_validation(run, log, step)  # always end with a validation loss
    if step != saved_step:  # never rewrite the checkpoint `latest` names: a crash would lose it
        save(run, step)
    return export(run, step)


def validated(run: Run, log: MetricsLog, step: int) -> bool:
    """Whether metrics.jsonl has a validation at `step` already (a run resumed at its last step,
    to export it again). Rank 0 holds the log; every rank must agree, validation is collective."""
    return checkpoint.all_ranks_agree(run.rank != 0 or step in log.validated_steps, run.device)


def resume(run: Run) -> dict | None:
    """Load the newest loadable checkpoint: model, optimiser, schedule, sampler, RNGs; say what
    differs from the checkpoint's options (the command line wins: `run_folder`)."""
    output = run.config.output
    run_folder.check_model(output, parameter_layout(run.engine.module))
    state = checkpoint.load_checkpoint(
        run.engine, output, lambda m: announce(run, m), frozen_saved=not run.config.lora_r
    )
    if state is None:
        announce(run, f"--resume: no checkpoint in {output}, starting from step 0")
        return None
    try:
        run.sampler.load_state_dict(state["sampler"])
    except ValueError as exc:  # a checkpoint without a record: the sampler's own check
        raise checkpoint.CheckpointError(
            f"--resume: {exc}: pass the checkpoint's options, or --overwrite to start over"
        ) from exc
    notice = run_folder.option_changes(state.get("run", {}).get("options", {}), options(run))
    if notice:
        announce(run, notice)
    apply_optimizer_options(run)
    announce(run, f"resumed from step {state['step']} ({output / checkpoint.CHECKPOINTS})")
    return state


def apply_optimizer_options(run: Run) -> None:
    """Make this run's optimiser options the optimiser's: loading restored the checkpoint's (the
    scheduler's base LRs, each group's LR, weight decay and betas), and the command line wins."""
    for index, group in enumerate(run.engine.lr_scheduler.optimizer.param_groups):
        # `parameter_groups`' mark; a checkpoint from before it has the decayed group first.
        decayed = group.get(DECAYED, index == 0)
        group["weight_decay"] = run.config.weight_decay if decayed else 0.0
        group["betas"] = run.config.betas
    set_peak_lr(run)


def set_peak_lr(run: Run) -> None:
    """Make this run's peak LR the schedule's (--lr on the command line wins over the
    checkpoint's)."""
    scheduler = run.engine.lr_scheduler
    if all(base == run.peak_lr for base in scheduler.base_lrs):
        return
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)  # this run's schedule at the step
    scheduler.base_lrs = [run.peak_lr for _ in scheduler.base_lrs]
    for group in scheduler.optimizer.param_groups:
        group["initial_lr"] = run.peak_lr
        group["lr"] = run.peak_lr * factor
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def options(run: Run) -> dict:
    """The options a resumed run may change (`run_folder.OPTION_FLAGS`), as this run has them."""
    config = run.config
    return {
        "lr": run.peak_lr, "warmup_ratio": config.warmup_ratio,
        "warmup_steps": config.warmup_steps, "lr_min_ratio": config.lr_min_ratio,
        "weight_decay": config.weight_decay, "adam_beta2": config.betas[1],
        "max_grad_norm": config.max_grad_norm,
        "epochs": config.epochs, "max_steps": config.max_steps,
        "per_sequence_loss": config.per_sequence_loss, "chunked_loss": config.chunked_loss,
        "lora_dropout": config.lora_dropout, "save_adapter": config.save_adapter,
        "gradient_checkpointing": config.gradient_checkpointing, "attention": config.attention,
        "eval_every": config.eval_every, "save_every": config.save_every,
        "export_every": config.export_every,
    }  # fmt: skip


def log_validation(run: Run, log: MetricsLog, step: int) -> None:
    record = evaluate(run)
    if record:
        log.log({Metric.STEP: step, **record})
        classes = "  ".join(
            f"{k.removeprefix('val/')} {loss_or_dash(v, 4)}" for k, v in record.items()
        )
        announce(run, f"validation at step {step}: {classes}")


def check_finite(run: Run, record: dict, step: int) -> None:
    """Stop on a NaN/inf loss, keeping the state for inspection (the weights are already bad)."""
    if torch.isfinite(torch.tensor(record[Metric.LOSS])):
        return
    path = save(run, step)
    raise TrainingError(
        f"loss is {record[Metric.LOSS]} at step {step}; state saved to {path}. Lower --lr, check "
        "the data (render it), or try --fp32"
    )


def save(run: Run, step: int) -> Path:
    record = {
        "plan": run.plan,
        "parameters": parameter_layout(run.engine.module),
        "options": options(run),
    }
    client = {"step": step, "sampler": run.sampler.state_dict(), "run": record}
    return checkpoint.save_checkpoint(
        run.engine, run.config.output, step, client, record, frozen_saved=not run.config.lora_r
    )


def export(run: Run, step: int, folder: Path | None = None) -> Path | None:
    """The final Hugging Face folder, or a snapshot at `folder` (--export-every)."""
    record = {
        "data": str(run.data.folder),
        "data_fingerprint": run.data.manifest.get("fingerprint"),
        "steps": step,
        "peak_lr": run.peak_lr,
        "world_size": run.world,
        "config": run.config.to_json(),
    }
    templates = run.data.manifest.get("templates", {})
    # What crlft-chat needs to encode prompts segment by segment, exactly like the rows.
    record["prompt_encoding"] = {
        "templates": templates,
        "section_encoders": run.data.manifest["tokenizer"]["section_encoders"],
    }
    return checkpoint.export_model(
        run.engine, run.tokenizer, run.data.tokenizer_dir, templates,
        folder or run.config.output / "final", exported_weights(run), record,
    )  # fmt: skip


def exported_weights(run: Run) -> checkpoint.Weights:
    """What the Hugging Face folder holds: the model, the model with its adapters merged in
    (LoRA), or the adapter alone (--save-adapter). Collective under ZeRO-3: every rank calls it."""
    engine, config = run.engine, run.config
    if not config.lora_r or config.save_adapter:
        state = checkpoint.consolidated_state_dict(engine, config.zero_stage)
        model = lora.adapter_model(engine, config.model) if config.lora_r else engine.module
        return checkpoint.Weights(model, state)
    merged = lora.merged_state_dict(engine)
    if merged is None:
        return checkpoint.Weights(None, None)  # not rank 0
    architecture = lora.export_architecture(engine)
    lora.check_complete(merged, architecture)
    return checkpoint.Weights(architecture, merged)


def describe(run: Run) -> str:
    params = count_parameters(run.engine.module)
    trained = ""
    if run.config.lora_r:
        count = lora.trainable_count(run.engine.module)
        trained = f" (LoRA {run.config.lora_plan()}: {count:,} trained)"
    return (
        f"{params / 1e6:.1f}M parameters{trained}, {len(run.lengths):,} sequences, "
        f"{run.sampler.steps_per_epoch()} steps/epoch × {run.config.epochs} epochs → "
        f"{run.total_steps} steps on {run.world} rank(s) ({run.device}), "
        f"{run.accumulation} micro-batch(es) of ≤ {run.config.batch_max_len:,} tokens per rank and "
        f"step (≤ {run.config.step_token_capacity(run.world):,} tokens), peak lr {run.peak_lr:.2e}"
    )


def announce(run: Run, message: str) -> None:
    if run.rank == 0:
        console.print(message, highlight=False, soft_wrap=True)
