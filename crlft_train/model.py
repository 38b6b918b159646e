"""The policy model: a local Hugging Face causal LM, or a random-init one from a config.

New special tokens (`<|end_of_turn|>`) need embedding rows: they are initialised to the mean of
the existing rows, so the new token starts as an "average" token rather than noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")

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
    from transformers import AutoModelForCausalLM

    if model_path is not None:
        check_model_folder(model_path)
        model = AutoModelForCausalLM.from_pretrained(
            str(model_path), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa"
        )
    else:
        config = random_init_config(model_config or "tiny", vocab_size)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    resize_embeddings(model, vocab_size)
    return model


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
    # Under ZeRO-3 a parameter's local tensor is empty; DeepSpeed keeps the full size in ds_numel.
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
