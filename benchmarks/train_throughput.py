"""crlft-train on the CPU: packed + weighted steps against a plain padded transformers loop.

Setup (cached under benchmarks/.work/train/): the demo pipeline on N raw rows (sample → clean →
label with the paper preset → toy-tokenizer → tokenize, max length 1024). Then, on the
`tiny` preset (a 4-layer, hidden-256 Llama) with the same step plan (the multipack sampler's
steps for --batch-max-len):

1. crlft-train, the real command (DeepSpeed engine, ZeRO 0, fp32): tokens/s per step from its
   metrics.jsonl, steps 3.. (median), and its packing efficiency;
2. in-process, no DeepSpeed, the same model and steps, median step time of
   a. the packed step with the C-RLFT weighted loss (`forward.packed_loss_sums`: the step's
      sequences run as a padded sub-batch, see its docstring),
   b. the same step with an unweighted loss (plain mean CE of the supervised tokens), and
   c. a plain transformers loop: the same sequences of each step as one padded batch
      (`attention_mask`, `labels`, the model's own loss);
   reporting tokens/s (real tokens, padding excluded), the weighted-loss overhead (a / b - 1) and
   the padding waste of c.

Usage (repository root): /work/venv/bin/python benchmarks/train_throughput.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "train"
BIN = Path(sys.executable).parent


def sh(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def prepare(n: int) -> Path:
    ws = WORK / f"ws-{n}"
    if (ws / "tokenized" / "manifest.json").is_file():
        return ws
    tool = str(BIN / "sharegpt-tools")
    raw = WORK / f"raw-{n}.json"
    sh(tool, "sample", "--n", str(n), "-o", str(raw))
    sh(tool, "clean", str(raw), "-w", str(ws))
    sh(tool, "label", "--rules", "paper", "-w", str(ws))
    sh(tool, "toy-tokenizer", "-w", str(ws), "-o", str(ws / "tokenizer"))
    sh(tool, "tokenize", "--tokenizer", str(ws / "tokenizer"), "--max-length", "1024", "-w",
       str(ws))  # fmt: skip
    return ws


def crlft_train_rate(ws: Path, steps: int, batch_max_len: int, attention: str) -> dict:
    out = WORK / "run"
    subprocess.run(
        [str(BIN / "crlft-train"), str(ws), "--output", str(out), "--max-steps", str(steps),
         "--batch-max-len", str(batch_max_len), "--model-config", "tiny", "--fp32",
         "--attention", attention],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lines = (out / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if "tokens_per_s" in r][2:]
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in records),
        "packing_efficiency": statistics.mean(r["packing_efficiency"] for r in records),
    }


def in_process_rates(ws: Path, steps: int, batch_max_len: int, attention: str) -> dict:
    import torch
    from transformers import AutoTokenizer

    from crlft_train.attention import register_varlen_attention
    from crlft_train.data import load_tokenized, pack
    from crlft_train.forward import logits_at, packed_loss_sums
    from crlft_train.model import build_model
    from crlft_train.packing import MultipackSampler

    data = load_tokenized(ws)
    tokenizer = AutoTokenizer.from_pretrained(str(data.tokenizer_dir), local_files_only=True)
    model = build_model(None, "tiny", len(tokenizer), seed=0)
    packed_attention = register_varlen_attention() if attention == "varlen" else "sdpa"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    classes = {name: i for i, name in enumerate(data.classes)}
    lengths = [int(n) for n in data.train["length"]]
    plan = MultipackSampler(lengths, batch_max_len, 1, seed=0).plan(0)[:steps]
    batches = [[data.train[i] for i in step[0]] for step in plan]
    cpu = torch.device("cpu")

    def weighted(rows: list[dict]) -> torch.Tensor:
        sums = packed_loss_sums(model, pack(rows, classes), len(classes), False, cpu)
        return sums.loss_sum / sums.weight_sum.clamp(min=1e-12)

    def unweighted(rows: list[dict]) -> torch.Tensor:
        """The same forward as `weighted`, with a plain mean CE instead of the weighted loss."""
        batch = pack(rows, classes)
        targets = batch.labels[0, 1:]
        positions = torch.nonzero(targets != -100).squeeze(1)
        logits = logits_at(model, batch, positions, cpu)
        return torch.nn.functional.cross_entropy(logits, targets[positions])

    def padded(rows: list[dict]) -> torch.Tensor:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            attention[i, :n] = 1
            labels[i, :n] = torch.tensor(row["labels"])
        return model(input_ids=ids, attention_mask=attention, labels=labels).loss

    def median_step(loss_of: object) -> float:
        times = []
        for rows in batches:
            started = time.perf_counter()
            loss = loss_of(rows)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - started)
        return statistics.median(times[2:])

    tokens = statistics.median(sum(len(r["input_ids"]) for r in rows) for rows in batches[2:])
    padded_slots = sum(len(rows) * max(len(r["input_ids"]) for r in rows) for rows in batches)
    real = sum(len(r["input_ids"]) for rows in batches for r in rows)
    result = {}
    for name, fn, implementation in (("weighted", weighted, packed_attention),
                                     ("unweighted", unweighted, packed_attention),
                                     ("padded", padded, "sdpa")):  # fmt: skip
        model.set_attn_implementation(implementation)
        result[name] = median_step(fn)
    return {
        "tokens_per_step": tokens,
        "packed_weighted_tokens_per_s": tokens / result["weighted"],
        "packed_unweighted_tokens_per_s": tokens / result["unweighted"],
        "padded_tokens_per_s": tokens / result["padded"],
        "weighted_loss_overhead": result["weighted"] / result["unweighted"] - 1,
        "padding_waste": 1 - real / padded_slots,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="raw rows of the sample")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-max-len", type=int, default=4096)
    parser.add_argument("--attention", choices=("padded", "varlen"), default="padded")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    WORK.mkdir(parents=True, exist_ok=True)
    ws = prepare(args.n)
    command = crlft_train_rate(ws, args.steps, args.batch_max_len, args.attention)
    local = in_process_rates(ws, args.steps, args.batch_max_len, args.attention)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"tiny Llama, --batch-max-len {args.batch_max_len}, {args.steps} steps, "
          f"--attention {args.attention}")  # fmt: skip
    print("| measure | value |\n| --- | --- |")
    ratio = command["tokens_per_s"] / local["padded_tokens_per_s"]
    rows = [
        ("crlft-train tokens/s (DeepSpeed, packed, weighted)", f"{command['tokens_per_s']:,.0f}"),
        ("crlft-train packing efficiency", f"{command['packing_efficiency']:.2%}"),
        ("in-process packed + weighted loss, tokens/s",
         f"{local['packed_weighted_tokens_per_s']:,.0f}"),
        ("in-process packed + unweighted loss, tokens/s",
         f"{local['packed_unweighted_tokens_per_s']:,.0f}"),
        ("plain transformers loop, padded batches, real tokens/s",
         f"{local['padded_tokens_per_s']:,.0f}"),
        ("padding waste of the padded batches", f"{local['padding_waste']:.1%}"),
        ("weighted-loss overhead (packed weighted / unweighted - 1)",
         f"{local['weighted_loss_overhead']:+.1%}"),
        ("crlft-train / plain padded loop", f"{ratio:.2f}×"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"| {name} | {value} |")
    (WORK / "results.json").write_text(json.dumps({"command": command, "local": local}, indent=2))


if __name__ == "__main__":
    main()
