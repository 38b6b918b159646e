"""Model FLOPs utilisation of crlft-train on one GPU: a ~1.1B random-init Llama, bf16, ZeRO-2.

Builds a synthetic tokenized dataset in the tokenized contract (random token ids, ShareGPT-like
lognormal lengths, two classes with weights 1.0 / 0.1) next to a copy of a local tokenizer, runs
the real `crlft-train` on it, and reports tokens/s (median of the steps after warm-up) and
MFU = 6 · N · tokens/s / peak, with N the parameter count and the peak the GPU's dense bf16 rate
(989.4 TFLOP/s for H100/H200 SXM). 6N counts the matrix work of forward and backward; attention's
own FLOPs are left out, so this MFU is a slight underestimate.

Each `--runs` entry is ATTENTION:TOKENS (attention mode of `crlft-train --attention`, and
`--batch-max-len`); all run in one call so that they share the machine. Before them, the varlen
kernel is checked against padded SDPA on a small bf16 model (the loss of the same packed batch).

Usage: python benchmarks/gpu_mfu.py --tokenizer DIR [--steps 14] [--runs varlen:16384 padded:8192]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# TinyLlama-1.1B's shape: 22 layers, hidden 2048, GQA with 4 key/value heads.
MODEL = {
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "max_position_embeddings": 4096,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
PEAK_BF16 = 989.4e12


def synthetic_dataset(folder: Path, tokenizer: Path, sequences: int, seed: int = 0) -> None:
    """A DatasetDict + manifest + tokenizer in the layout `sharegpt-tools tokenize` writes."""
    import datasets

    rng = np.random.default_rng(seed)
    vocab = 4000
    lengths = np.clip(rng.lognormal(6.3, 0.9, sequences), 64, 4096).astype(int)
    rows: dict[str, list] = {k: [] for k in ("input_ids", "labels", "loss_weights", "class")}
    for i, n in enumerate(lengths):
        ids = rng.integers(5, vocab, n).astype(np.int32)
        prompt = max(1, n // 4)  # the first quarter is the (unsupervised) prompt
        labels = ids.copy()
        labels[:prompt] = -100
        expert = i % 10 == 0
        weights = np.where(labels == -100, 0.0, 1.0 if expert else 0.1).astype(np.float32)
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
        rows["loss_weights"].append(weights)
        rows["class"].append("gpt4" if expert else "gpt35")
    rows["attention_mask"] = [np.ones(n, dtype=np.int8) for n in lengths]
    rows["length"] = lengths.astype(np.int32).tolist()
    rows["id"] = [f"s{i}" for i in range(sequences)]
    import pyarrow as pa
    from datasets.table import InMemoryTable

    # A fixed fingerprint: datasets' own hashes the table with dill, which fails on some
    # pyarrow/Python pairs (seen on a GPU image with Python 3.12).
    train = datasets.Dataset(InMemoryTable(pa.table(rows)), fingerprint="synthetic-train")
    datasets.DatasetDict({"train": train}).save_to_disk(str(folder))
    manifest = {
        "stage": "tokenized",
        "fingerprint": "synthetic0000000",
        **save_tokenizer(tokenizer, folder / "tokenizer"),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def save_tokenizer(tokenizer: Path, out: Path) -> dict:
    """The tokenizer with the end-of-turn token saved as `tokenize` saves it, and the manifest's
    `tokenizer` and `templates` as `tokenize` writes them (the trainer checks them and the export
    builds the chat template from them), for the paper's two classes."""
    from sharegpt_tools.tokenize.chat_tokenizer import load_tokenizer
    from sharegpt_tools.tokenize.options import TokenizeOptions
    from sharegpt_tools.tokenize.portable_tokenizer import save_portable
    from sharegpt_tools.tokenize.stage import template_info

    chat = load_tokenizer(tokenizer)
    save_portable(chat.tok, out, chat.path)
    classes = [("gpt4", "GPT4", 1.0), ("gpt35", "GPT3", 0.1)]
    templates = template_info(chat, classes, TokenizeOptions(tokenizer=tokenizer))
    return {"tokenizer": chat.describe(), "templates": templates}


def parameter_count(config: dict) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            AutoConfig.for_model(values.pop("model_type"), **values)
        )
    return sum(p.numel() for p in model.parameters())


def check_varlen_kernel() -> float:
    """|Δ| / |loss| between varlen and padded SDPA on one packed batch of a small bf16 Llama."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from crlft_train.attention import register_varlen_attention
    from crlft_train.data import PackedBatch
    from crlft_train.forward import packed_loss_sums

    device = torch.device("cuda")
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=4000, max_position_embeddings=4096,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model = model.to(device, torch.bfloat16).eval()
    lengths = [700, 33, 1200, 5, 410]
    ids = torch.randint(5, 4000, (1, sum(lengths)))
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    labels = ids.clone()
    starts = torch.cumsum(torch.tensor([0, *lengths[:-1]]), 0)
    labels[0, starts] = -100
    batch = PackedBatch(ids, positions, labels, torch.ones_like(ids, dtype=torch.float32),
                        torch.zeros_like(ids), lengths, sum(lengths))  # fmt: skip
    with torch.no_grad():
        padded = packed_loss_sums(model, batch, 1, False, device).loss_sum.float()
        model.set_attn_implementation(register_varlen_attention())
        varlen = packed_loss_sums(model, batch, 1, False, device).loss_sum.float()
    return float((varlen - padded).abs() / padded.abs())


def measure(args: argparse.Namespace, work: Path, attention: str, tokens: int) -> dict:
    import torch

    run = work / f"run-{attention}-{tokens}"
    command = [
        sys.executable, "-m", "crlft_train", str(work / "data"), "--output", str(run),
        "--model-config", str(work / "model.json"), "--zero", "2",
        "--bf16" if torch.cuda.is_available() else "--fp32", "--attention", attention,
        "--batch-max-len", str(tokens), "--max-steps", str(args.steps),
        "--lr", "1e-4", "--epochs", "1",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    log = args.out / f"train-{attention}-{tokens}.log"
    log.write_text(finished.stdout[-20000:] + finished.stderr[-20000:])
    if finished.returncode != 0:
        return {"attention": attention, "batch_max_len": tokens, "error": finished.stderr[-600:]}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "tokens_per_s" in r][4:]
    rates = sorted(r["tokens_per_s"] for r in steps)
    shutil.rmtree(run, ignore_errors=True)  # the checkpoint of a 1.1B model is 13 GB
    return {
        "attention": attention,
        "batch_max_len": tokens,
        "steps_measured": len(steps),
        "tokens_per_s": statistics.median(rates),
        "tokens_per_s_range": [rates[0], rates[-1]],
        "packing_efficiency": statistics.mean(r["packing_efficiency"] for r in steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--runs", nargs="+", default=["varlen:16384"])
    parser.add_argument("--sequences", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--model", type=Path, help="a config.json instead of the 1.1B shape")
    args = parser.parse_args()
    import torch

    model = json.loads(args.model.read_text()) if args.model else MODEL
    params = parameter_count(model)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    results: dict = {"device": device, "parameters": params, "torch": torch.__version__}
    if torch.cuda.is_available():
        difference = results["varlen_vs_padded_rel_diff"] = check_varlen_kernel()
        print(f"varlen vs padded SDPA, bf16 loss of one packed batch: rel. diff {difference:.2e}")
    work = Path(tempfile.mkdtemp(prefix="crlft-mfu-"))
    synthetic_dataset(work / "data", args.tokenizer, args.sequences)
    (work / "model.json").write_text(json.dumps(model))
    print("| device | params | attention | tokens/step | tokens/s | range | packing | MFU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    results["runs"] = []
    for spec in args.runs:
        attention, tokens = spec.split(":")
        row = measure(args, work, attention, int(tokens))
        results["runs"].append(row)
        (args.out / "mfu.json").write_text(json.dumps(results, indent=2))  # partial results survive
        if "error" in row:
            print(f"| {device} | {attention} {tokens}: failed: {row['error'][-300:]!r} |")
            continue
        row["mfu_6N"] = 6 * params * row["tokens_per_s"] / PEAK_BF16
        low, high = row["tokens_per_s_range"]
        print(
            f"| {device} | {params / 1e9:.2f} B | {attention} | {int(tokens):,} | "
            f"{row['tokens_per_s']:,.0f} | {low:,.0f}–{high:,.0f} | "
            f"{row['packing_efficiency']:.1%} | {row['mfu_6N']:.1%} |",
            flush=True,
        )
    (args.out / "mfu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
