"""LoRA and QLoRA through peft: a 7B–13B fine-tune on one 24–80 GB GPU.

`--lora-r R` freezes the model and trains rank-R adapters on its linear layers (`--lora-targets`,
peft's "all-linear" by default: every linear layer but the LM head). Rows the embeddings gained
for the tokenizer's new tokens (`<|end_of_turn|>` on a base Mistral) are trained too, and only
they (peft's trainable tokens, in the input embeddings and an untied LM head): a frozen mean row
could not learn when a turn ends. `--qlora` loads the frozen base in 4 bits (bitsandbytes NF4).

Checkpoints hold the trainable tensors only: the frozen base is the --model folder (or the seeded
random init) again on --resume. The exported `final/` is a plain Hugging Face model with the
adapters merged in (`merged_state_dict`), loadable with `from_pretrained` by anything; with
`--save-adapter` it is the adapter alone, loadable with peft's `AutoPeftModelForCausalLM`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from crlft_train.config import TrainConfig
from crlft_train.model import ModelError, unwrapped

ADAPTER = "default"  # peft's name of the one adapter a run trains


def quantization_config(config: TrainConfig, bf16: bool) -> object | None:
    """bitsandbytes' 4-bit NF4 (double quantisation, compute in the training precision) for
    --qlora; None otherwise."""
    if not config.qlora:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )


def add_adapters(
    model: torch.nn.Module, config: TrainConfig, new_token_ids: list[int]
) -> torch.nn.Module:
    """The model with LoRA adapters (peft), everything else frozen but the new tokens' rows."""
    from peft import LoraConfig, get_peft_model

    if config.gradient_checkpointing:
        # Checkpointed blocks need an input that requires grad, which frozen embeddings are not.
        model.enable_input_require_grads()
    lora_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha_value(),
        lora_dropout=config.lora_dropout,
        target_modules=lora_targets(model, config.lora_targets),
        trainable_token_indices=trainable_tokens(model, new_token_ids),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        return get_peft_model(model, lora_config)


def lora_targets(model: torch.nn.Module, value: str) -> str | list[str]:
    """peft's `target_modules`: "all-linear", or module names ("q_proj,v_proj"), each of which
    must name layers of the model (peft would skip a misspelt one silently)."""
    if value == "all-linear":
        return value
    names = [name.strip() for name in value.split(",") if name.strip()]
    layers = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    unknown = [name for name in names if name not in layers]
    if unknown or not names:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ModelError(
            f"--lora-targets {value!r}: no layer named {', '.join(map(repr, unknown)) or '…'} "
            f"in this model; its linear layers are {', '.join(linear)} (or use all-linear)"
        )
    return names


def trainable_tokens(model: torch.nn.Module, new_token_ids: list[int]) -> dict | None:
    """peft's trainable token rows: the new tokens in the input embeddings, and in the LM head
    unless it is tied to them (peft then trains both through the one matrix)."""
    if not new_token_ids:
        return None
    names = {id(module): name for name, module in model.named_modules()}
    layers = {names[id(model.get_input_embeddings())]: list(new_token_ids)}
    head = model.get_output_embeddings()
    if head is not None and not model.config.tie_word_embeddings:
        layers[names[id(head)]] = list(new_token_ids)
    return layers


def trainable_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- the exported weights -------------------------------------------------------------------------


def merged_state_dict(engine: object) -> dict | None:
    """The base model's own state dict with the adapters merged in (W + scale·B·A, the new token
    rows put in place, 4-bit weights dequantised), on rank 0; None on other ranks. (LoRA runs
    use ZeRO ≤ 2: every rank holds the whole model.)

    Computed from the live modules without changing them: a snapshot (--export-every) is taken
    mid-run, and merging in place then unmerging would round the base weights.
    """
    import torch.distributed as dist

    if dist.get_rank() != 0:
        return None
    model = unwrapped(engine)
    dtype = model.get_input_embeddings().weight.dtype  # the base's precision, never 4-bit
    merged: dict[str, torch.Tensor] = {}
    done: tuple[str, ...] = ()  # the merged modules' key prefixes
    for name, module in model.named_modules():
        layer = None if name.startswith(done) else merged_layer(module)
        if layer is not None:  # (a part of a merged layer, its base layer or adapters, is skipped)
            done += (f"{name}.",)
            merged.update({f"{name}.{key}": value.to(dtype).cpu() for key, value in layer.items()})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(done)}
    return {**state, **merged}


def merged_layer(module: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """{"weight": …, "bias": …} that a peft layer (or a 4-bit linear) amounts to, or None for a
    module that is saved as it is."""
    from peft.tuners.lora import LoraLayer
    from peft.utils.integrations import dequantize_module_weight

    rows = getattr(module, "token_adapter", None)  # peft's wrapper of trainable token rows
    with torch.no_grad():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            weight = dequantize_module_weight(base).float() + module.get_delta_weight(ADAPTER)
        elif rows is not None:
            base = rows.base_layer
            weight = rows.get_merged_weights(rows.active_adapters)
        elif is_quantized(module):
            base, weight = module, dequantize_module_weight(module)
        else:
            return None
        layer = {"weight": weight.detach().clone()}
        if getattr(base, "bias", None) is not None:
            layer["bias"] = base.bias.detach().clone()
        return layer


def is_quantized(module: torch.nn.Module) -> bool:
    return type(getattr(module, "weight", None)).__name__ in ("Params4bit", "Int8Params")


def export_architecture(engine: object) -> torch.nn.Module:
    """An empty (meta) copy of the base architecture to save the merged weights with: the live
    model carries peft's layers, and a --qlora base's config its quantisation."""
    from transformers import AutoModelForCausalLM

    config = unwrapped(engine).config.__class__.from_dict(unwrapped(engine).config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def check_complete(state: dict, architecture: torch.nn.Module) -> None:
    """The merged state must name exactly the architecture's tensors: a key left under peft's
    name would load as a freshly initialised weight, silently."""
    expected, got = set(architecture.state_dict()), set(state)
    if expected != got:
        missing, extra = sorted(expected - got)[:3], sorted(got - expected)[:3]
        raise RuntimeError(
            f"merged LoRA weights do not match the model: missing {missing}, unexpected {extra}"
        )


def adapter_model(engine: object, base: Path | None) -> torch.nn.Module:
    """The peft model to save the adapter alone with (--save-adapter), naming its base folder."""
    model = engine.module
    model.peft_config[ADAPTER].base_model_name_or_path = str(base.resolve()) if base else None
    return model
