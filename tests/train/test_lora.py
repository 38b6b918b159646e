"""LoRA and QLoRA (`--lora-r`, `--qlora`, `--save-adapter`) with real peft, real DeepSpeed and
real bitsandbytes on CPU: the adapters train, resume exactly, and export a model that scores
exactly what the trainer validated.

The base is a pretrained-style folder one token short of the tokenizer, as a base Mistral is
without `<|end_of_turn|>`: that row is added, and trained, by the run.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenized_fixtures import toy_tokenizer  # noqa: F401

from crlft_train.condition_eval import evaluate_conditions
from train.test_train import (  # noqa: F401  (the same tokenized workspace)
    assert_one_line_error,
    crlft_train,
    finish,
    invoke_train,
    metrics,
    metrics_lines,
    train_args,
    workspace,
)

# 64 wide: bitsandbytes quantises in blocks of 64 values, and its CPU kernels need a whole block.
BASE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": False,
}
LORA = ("--lora-r", "4", "--lr", "1e-2", "--seed", "1")
WHOLE = ("--max-steps", "8", "--save-every", "2", "--eval-every", "4", *LORA)


@pytest.fixture(scope="module")
def base(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A Llama folder whose vocabulary lacks the tokenizer's last token (<|end_of_turn|>)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(str(workspace / "tokenized" / "tokenizer"))
    assert tokenizer.convert_tokens_to_ids("<|end_of_turn|>") == len(tokenizer) - 1
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**BASE, vocab_size=len(tokenizer) - 1))
    folder = tmp_path_factory.mktemp("base") / "llama"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lora_run(workspace: Path, base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    run = tmp_path_factory.mktemp("lora") / "run"
    finish(crlft_train(workspace, run, "--model", str(base), *WHOLE))
    return run


def assert_exported_model_scores_the_trainers_validation(
    run: Path,
    workspace: Path,  # noqa: F811
    rel: float,
) -> None:
    """crlft-eval on final/ gives each class, under its own condition, the trainer's last
    validation loss: the exported weights are the trained ones."""
    table = evaluate_conditions(run, workspace, device=torch.device("cpu"))
    validated = [r for r in metrics_lines(run) if "val/loss" in r][-1]
    for name, own in (("gpt4", "GPT4"), ("gpt35", "GPT3")):
        assert table.loss[name][own] == pytest.approx(validated[f"val/loss/{name}"], rel=rel)


def test_lora_trains_the_adapters_and_the_new_tokens_row_and_exports_a_merged_model(
    lora_run: Path,
    base: Path,
    workspace: Path,  # noqa: F811
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    validation = {r["step"]: r["val/loss"] for r in metrics_lines(lora_run) if "val/loss" in r}
    assert validation[8] < validation[4] < metrics(lora_run)[1]["loss"] - 0.05  # it learns
    # The checkpoint holds the trained tensors only: the adapters and the new token's rows.
    states = torch.load(
        lora_run / "checkpoints" / "step-8" / "mp_rank_00_model_states.pt", weights_only=False
    )["module"]
    assert states and all("lora_" in key or "trainable_tokens_delta" in key for key in states)
    assert {v.shape for k, v in states.items() if "trainable_tokens" in k} == {(1, 64)}

    final = lora_run / "final"
    record = json.loads((final / "config.json").read_text())
    assert "quantization_config" not in record
    exported = load_file(final / "model.safetensors")
    original = load_file(base / "model.safetensors")
    # A plain model: the base's tensor names, one more vocabulary row, no peft names.
    assert set(exported) == set(original)
    eot = exported["model.embed_tokens.weight"].shape[0] - 1
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert exported[name].shape[0] == original[name].shape[0] + 1
        torch.testing.assert_close(exported[name][:eot], original[name])  # the base's rows kept
        mean_row = original[name].mean(dim=0)
        assert (exported[name][eot] - mean_row).abs().max() > 1e-3  # the new row was trained
    torch.testing.assert_close(exported["model.norm.weight"], original["model.norm.weight"])
    merged = exported["model.layers.0.self_attn.q_proj.weight"]
    assert (merged - original["model.layers.0.self_attn.q_proj.weight"]).abs().max() > 1e-4
    assert_exported_model_scores_the_trainers_validation(lora_run, workspace, rel=1e-6)
    tokenizer = AutoTokenizer.from_pretrained(final, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(final, local_files_only=True)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert tokenizer.decode(inputs["input_ids"][0]).endswith("GPT4 Assistant:")
    assert (
        model.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1]
        > (inputs["input_ids"].shape[1])
    )


def test_lora_resumes_exactly(
    lora_run: Path,
    base: Path,
    workspace: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The run, stopped after its step-6 checkpoint, continues to the same step 7 and 8 losses:
    the frozen base is rebuilt from its folder, the adapters and the optimiser from the
    checkpoint."""
    resumed = tmp_path / "run"
    shutil.copytree(lora_run, resumed)
    shutil.rmtree(resumed / "final")
    shutil.rmtree(resumed / "checkpoints" / "step-8")
    (resumed / "checkpoints" / "latest").write_text("step-6")
    finish(crlft_train(workspace, resumed, "--model", str(base), *WHOLE, "--resume"))
    got, expected = metrics(resumed), metrics(lora_run)
    assert sorted(got) == list(range(1, 9))
    for step in (7, 8):
        assert got[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-9)
    assert_exported_model_scores_the_trainers_validation(resumed, workspace, rel=1e-6)
    another_rank = invoke_train(
        *train_args(workspace, resumed, "--model", str(base), *WHOLE, "--lora-r", "8", "--resume")
    )
    assert_one_line_error(another_rank, "LoRA (--lora-r", "r 8", "checkpoint: r 4")


def test_save_adapter_keeps_the_adapter_alone_loadable_by_peft(
    base: Path,
    workspace: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """--save-adapter under --gradient-checkpointing (frozen embeddings need an input that
    requires grad): final/ is the adapter and the tokenizer; peft loads it onto the base."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    run = tmp_path / "run"
    args = ("--max-steps", "3", "--save-adapter", "--gradient-checkpointing", *LORA)
    finish(crlft_train(workspace, run, "--model", str(base), *args))
    final = run / "final"
    assert not (final / "model.safetensors").exists()
    adapter = json.loads((final / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base.resolve())
    weights = load_file(final / "adapter_model.safetensors")
    trained = [v for k, v in weights.items() if "lora_B" in k]  # lora_B starts at zero
    assert trained and all(v.abs().max() > 0 for v in trained)
    model = AutoPeftModelForCausalLM.from_pretrained(final, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(final, local_files_only=True)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)  # resized by peft
    assert_exported_model_scores_the_trainers_validation(run, workspace, rel=1e-6)


def test_qlora_trains_a_4bit_base_and_exports_a_dequantised_merged_model(
    base: Path,
    workspace: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    finish(crlft_train(workspace, run, "--model", str(base), "--max-steps", "4", "--qlora", *LORA))
    losses = [metrics(run)[step]["loss"] for step in range(1, 5)]
    assert all(math.isfinite(loss) for loss in losses)
    crlft = json.loads((run / "final" / "crlft.json").read_text())
    assert crlft["config"]["qlora"] is True
    config = json.loads((run / "final" / "config.json").read_text())
    assert "quantization_config" not in config  # a plain model: the 4-bit base dequantised
    exported = load_file(run / "final" / "model.safetensors")
    assert set(exported) == set(load_file(base / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in exported.values())
    # The trainer computes with the 4-bit weights, the export holds them dequantised: equal, up
    # to bitsandbytes' CPU kernel, which rounds the block scales to bf16 (1.4e-5 here).
    assert_exported_model_scores_the_trainers_validation(run, workspace, rel=1e-4)


def test_lora_refusals_are_one_readable_line(
    base: Path,
    workspace: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    cases = [
        (("--qlora",), "--qlora is for LoRA runs: give --lora-r too"),
        (("--save-adapter",), "--save-adapter is for LoRA runs"),
        (("--lora-r", "4", "--zero", "3"), "--lora-r with --zero 3 is not supported"),
        (("--lora-r", "4", "--qlora"), "--qlora quantises a pretrained model: give --model"),
    ]
    for args, message in cases:
        assert_one_line_error(invoke_train(*train_args(workspace, out, *args)), message)
    misspelt = crlft_train(
        workspace, out, "--model", str(base), "--lora-r", "4", "--lora-targets", "q_proj,v_prj"
    )
    output, _ = misspelt.communicate(timeout=300)
    assert misspelt.returncode == 2 and "Traceback" not in output
    assert "no layer named 'v_prj' in this model; its linear layers are" in output
