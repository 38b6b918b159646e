"""Peak memory and speed of the LM head + cross-entropy alone: chunked vs plain.

For each (vocabulary, method) a fresh child process builds hidden states [tokens, hidden] and an
LM head [vocab, hidden] (fp32 on CPU, bf16 on CUDA), then runs forward + backward of the weighted
Σ w·CE of every token: `plain` = `F.cross_entropy(hidden @ headᵀ)` (the [tokens × vocab] logits,
and their gradient, in memory at once), `chunked` = `crlft_train.chunked_ce.linear_cross_entropy`
(the trainer's default). Measured in the child: peak RSS growth over the inputs (CPU, VmHWM) or
peak allocated memory (CUDA), and the wall seconds of forward + backward; and whether the two
methods' loss and head gradient agree (checked in the parent, from files the children write).

Usage: .venv/bin/python benchmarks/loss_memory.py [--tokens 16384] [--hidden 256]
       [--vocab 32000 128256]
Results: benchmarks/.work/loss_memory.json (and a Markdown table on stdout).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / ".work"


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(method: str, tokens: int, hidden_size: int, vocab: int, out: Path) -> None:
    import torch
    import torch.nn.functional as F

    from crlft_train.chunked_ce import linear_cross_entropy

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, hidden_size, generator=generator).to(device, dtype)
    head = (torch.randn(vocab, hidden_size, generator=generator) / hidden_size**0.5).to(
        device, dtype
    )
    targets = torch.randint(0, vocab, (tokens,), generator=generator).to(device)
    weights = torch.rand(tokens, generator=generator).to(device)
    hidden.requires_grad_(True)
    head.requires_grad_(True)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    else:
        base = peak_rss_mib()
    started = time.perf_counter()
    if method == "plain":
        ce = F.cross_entropy((hidden @ head.T).float(), targets, reduction="none")
    else:
        ce = linear_cross_entropy(hidden, head, targets)
    total = (ce * weights).sum() / weights.sum()
    total.backward()
    if cuda:
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = peak_rss_mib() - base
    seconds = time.perf_counter() - started
    torch.save({"loss": total.detach().float().cpu(), "grad": head.grad.float().cpu()}, out)
    print(json.dumps({"peak_mib": peak, "seconds": seconds, "device": device}))


def run_case(method: str, tokens: int, hidden: int, vocab: int) -> dict:
    out = WORK / f"loss-{method}-{vocab}.pt"
    done = subprocess.run(
        [sys.executable, __file__, "--child", method, str(tokens), str(hidden), str(vocab),
         str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:  # e.g. killed for memory
        return {"method": method, "vocab": vocab, "failed": done.stderr.strip()[-300:] or "killed"}
    return {"method": method, "vocab": vocab, **json.loads(done.stdout.strip().splitlines()[-1])}


def agreement(vocab: int) -> dict:
    import torch

    plain, chunked = (torch.load(WORK / f"loss-{m}-{vocab}.pt") for m in ("plain", "chunked"))
    loss_rel = abs(float(plain["loss"] - chunked["loss"])) / abs(float(plain["loss"]))
    grad_rel = float((plain["grad"] - chunked["grad"]).norm() / plain["grad"].norm())
    return {"loss_rel_diff": loss_rel, "grad_rel_diff": grad_rel}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        method, tokens, hidden, vocab, out = sys.argv[2:]
        child(method, int(tokens), int(hidden), int(vocab), Path(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 128256])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for vocab in args.vocab:
        cases = {m: run_case(m, args.tokens, args.hidden, vocab) for m in ("plain", "chunked")}
        both = all("failed" not in c for c in cases.values())
        rows.append({"vocab": vocab, **cases, **(agreement(vocab) if both else {})})
    (WORK / "loss_memory.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"tokens {args.tokens}, hidden {args.hidden}")
    print(
        "| vocab | plain peak MiB | chunked peak MiB | ratio | plain s | chunked s | speed ratio "
        "| loss / grad rel. diff |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        plain, chunked = row["plain"], row["chunked"]
        if "failed" in plain or "failed" in chunked:
            print(f"| {row['vocab']:,} | {plain.get('peak_mib', plain.get('failed'))} | "
                  f"{chunked.get('peak_mib', chunked.get('failed'))} | | | | | |")  # fmt: skip
            continue
        print(
            f"| {row['vocab']:,} | {plain['peak_mib']:,.0f} | {chunked['peak_mib']:,.0f} | "
            f"{chunked['peak_mib'] / plain['peak_mib']:.2f}× | {plain['seconds']:.1f} | "
            f"{chunked['seconds']:.1f} | {plain['seconds'] / chunked['seconds']:.2f}× | "
            f"{row['loss_rel_diff']:.1e} / {row['grad_rel_diff']:.1e} |"
        )


if __name__ == "__main__":
    main()
