"""The policy model: a local Hugging Face causal LM, or a random-init one from a config.

New special tokens (`<|end_of_turn|>`) need embedding rows: they are initialised to the mean of
the existing rows, so the new token starts as an "average" token rather than noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
ADAPTER_CONFIG = "adapter_config.json"  # peft's: a folder holding an adapter alone

# For tests and the demo: a ~8M-parameter Llama (4 layers, hidden 256) that trains on a CPU.
TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


class ModelError(ValueError):
    """A model folder or config that cannot be used: printed as one line by the CLI."""


def build_model(
    model_path: Path | None, model_config: str | None, vocab_size: int, seed: int
) -> torch.nn.Module:
    model = load_base(model_path, model_config, vocab_size, seed)
    resize_embeddings(model, vocab_size)
    return model


def load_base(
    model_path: Path | None,
    model_config: str | None,
    vocab_size: int,
    seed: int,
    quantization: object | None = None,
    device: str = "cpu",
) -> torch.nn.Module:
    """The model as its folder (or config) has it, before `resize_embeddings`. A quantised
    (--qlora) base is quantised as it loads, onto `device`, where bitsandbytes needs it."""
    from transformers import AutoModelForCausalLM

    if model_path is None:
        config = random_init_config(model_config or "tiny", vocab_size)
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    check_model_folder(model_path)
    extra = {}
    if quantization is not None:
        extra = {"quantization_config": quantization, "device_map": {"": device}}
    return AutoModelForCausalLM.from_pretrained(
        str(model_path), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa",
        **extra,
    )  # fmt: skip


def load_pretrained(folder: Path, **kwargs: object) -> torch.nn.Module:
    """An exported folder: a whole model, or an adapter alone (--save-adapter), which peft loads
    onto its base model folder (resized to the tokenizer copied beside it)."""
    if (folder / ADAPTER_CONFIG).is_file():
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, **kwargs
        )
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, **kwargs)


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model inside a DeepSpeed engine and a peft model (LoRA layers in place)."""
    model = getattr(model, "module", model)
    get_base_model = getattr(model, "get_base_model", None)  # a peft model
    return get_base_model() if callable(get_base_model) else model


def check_model_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(
            f"{path} has a config.json but no weights ({', '.join(WEIGHT_FILES)}); "
            "use --model-config to train from random initialisation instead"
        )


def random_init_config(model_config: str, vocab_size: int) -> object:
    from transformers import AutoConfig, LlamaConfig

    if model_config == "tiny":
        return LlamaConfig(**{**TINY_LLAMA, "vocab_size": vocab_size})
    path = Path(model_config)
    if not path.is_file():
        raise ModelError(f"--model-config {model_config!r}: use 'tiny' or a config.json path")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    model_type = values.pop("model_type", "llama")
    values["vocab_size"] = max(int(values.get("vocab_size", 0)), vocab_size)
    return AutoConfig.for_model(model_type, **values)


def resize_embeddings(model: torch.nn.Module, vocab_size: int) -> int:
    """Grow the embeddings to `vocab_size`; new rows = mean of the old rows. Returns rows added."""
    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return 0
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        for matrix in {id(m): m for m in embedding_matrices(model)}.values():
            matrix[old:] = matrix[:old].mean(dim=0, keepdim=True)
    return vocab_size - old


def embedding_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None:
        matrices.append(output.weight)
    return matrices


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter_size(p) for p in model.parameters())


def parameter_size(parameter: torch.Tensor) -> int:
    """The parameter's number of values: under ZeRO-3 its local tensor is empty (DeepSpeed keeps
    the size in ds_numel); a 4-bit weight packs two values a byte (quant_state has its shape)."""
    if hasattr(parameter, "ds_numel"):
        return parameter.ds_numel
    quant_state = getattr(parameter, "quant_state", None)
    return quant_state.shape.numel() if quant_state is not None else parameter.numel()
