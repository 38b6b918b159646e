"""Throughput of `sharegpt-tools tokenize` against the bare `encode_batch` of the same tokenizer.

DESIGN.md's budget: the whole tokenize stage (reading Parquet, templating, plain-text tokenizing,
masks and weights, Arrow writing, `save_to_disk`) runs at ≥ 80% of the bare tokenizer rate on the
same texts, which is the limit of any implementation.

Setup (cached under benchmarks/.work/tokenize/N/, not timed):
* `sharegpt-tools sample --n N` + `sharegpt-tools clean --workers 2`;
* a minimal labeled stage built from clean/conversations.parquet with polars (gpt-4 → class gpt4,
  weight 1, condition GPT4; everything else → gpt35, 0.1, GPT3; refusal turns weight 0), so the
  benchmark does not depend on the `label` command;
* the tokenizer, by `--tokenizer`:
  - `toy` (default): `sharegpt-tools toy-tokenizer --vocab-size 8000`, a byte-level BPE trained
    on the clean texts (cached in benchmarks/.work/tokenize/N/tokenizer/);
  - `mistral-v1`: Mistral-7B v0.1's real tokenizer (OpenChat-3.5's; SentencePiece BPE, 32,000
    tokens, `legacy: true`), the folder `packaged_tokenizers.build_mistral_tokenizer("v1", DIR)`
    writes from mistral-common's files (cached in benchmarks/.work/tokenize/mistral-v1/).

Measured, each in its own child process (wall time, peak RSS from wait4):
* bare: `tokenizer._tokenizer.encode_batch(texts, add_special_tokens=False)` on every turn text of
  the labeled stage, in chunks of the stage's batch size; only the encode calls are timed;
  rate = content tokens / encode seconds. It runs before and after the stage; the mean is used.
  Since e09dba2 the stage encodes each content piece with the separating space that follows its
  role prefix (` Q` after `User:`; a SentencePiece tokenizer's continuation encoder adds no dummy
  prefix, so ` Q` gives the `▁Q` that the bare `Q` gives), i.e. the same texts plus one space per
  turn (system turns rendered as bare text excepted): the bare run keeps encoding the turn texts
  as they are, and the two token counts may differ slightly (printed; a leading space can change
  a byte-level BPE text's first tokens: +0.22% with toy at N = 100,000, none with mistral-v1).
* stage: `sharegpt-tools tokenize --tokenizer TOK -w WS --max-length 4096`; rate = the content
  tokens it tokenized (manifest counts.content_tokens, the bare run's texts as above) / the
  stage's own total_s (manifest timings: from resolving the input to the written manifest,
  importing transformers and loading the tokenizer included, interpreter start-up and the CLI's
  own imports excluded), and also / the wall seconds of the whole command. The goal is on the
  first ratio.
* per CPU-second: the same token counts / process CPU seconds (all threads: the bare encode calls'
  process_time; the stage's manifest timings.cpu_s). Wall-clock rates swing by ±30% when other
  jobs share the cores; CPU rates much less, so the table shows both.

Usage (repository root):
    .venv/bin/python benchmarks/tokenize_throughput.py --n 100000 [--tokenizer mistral-v1]
Prints a Markdown table and writes benchmarks/.work/tokenize/results-N.json (toy) or
results-N-mistral-v1.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "tokenize"
CLI = [sys.executable, "-m", "sharegpt_tools"]
GOAL_RATIO = 0.8
BATCH_ROWS = 1024  # conversations per encode call, as TokenizeOptions.batch_rows
TOKENIZERS = ("toy", "mistral-v1")

BUILD_MISTRAL = r"""
import sys
from pathlib import Path
from sharegpt_tools.tokenize.packaged_tokenizers import build_mistral_tokenizer

build_mistral_tokenizer(sys.argv[1], Path(sys.argv[2]))
"""

BARE = r"""
import json, sys, time
import pyarrow.parquet as pq
from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)
backend = tok._tokenizer
tokens = texts_n = 0
seconds = cpu = 0.0
for batch in pq.ParquetFile(sys.argv[2]).iter_batches(batch_size=int(sys.argv[3]),
                                                      columns=["conversations"]):
    texts = batch.column(0).flatten().field("value").to_pylist()
    started, cpu_started = time.perf_counter(), time.process_time()
    encodings = backend.encode_batch(texts, add_special_tokens=False)
    seconds += time.perf_counter() - started
    cpu += time.process_time() - cpu_started
    tokens += sum(len(e) for e in encodings)
    texts_n += len(texts)
    del encodings
print(json.dumps({"tokens": tokens, "texts": texts_n, "encode_s": seconds, "encode_cpu_s": cpu}))
"""


def run(command: list[str], log: Path) -> dict:
    """Run a child to its end: wall seconds, peak RSS (wait4), CPU seconds, its stdout."""
    with open(log, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, text=True)
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}); see {log}")
    return {
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stdout": stdout,
    }


def prepare(n: int, workdir: Path, kind: str) -> tuple[Path, Path]:
    """Sample → clean → labeled (polars) → the tokenizer; cached between runs."""
    ws, raw = workdir / "ws", workdir / "raw.json"
    if not (ws / "clean" / "manifest.json").is_file():
        print(f"preparing {n:,} conversations in {workdir} (sample + clean --workers 2)...")
        run([*CLI, "sample", "-o", str(raw), "--n", str(n)], workdir / "sample.log")
        run([*CLI, "clean", str(raw), "-w", str(ws), "--workers", "2"], workdir / "clean.log")
    if not (ws / "labeled" / "manifest.json").is_file():
        write_labeled(ws)
    if kind == "toy":
        tokenizer = workdir / "tokenizer"
        if not (tokenizer / "tokenizer.json").is_file():
            print("training the 8000-token BPE...")
            command = [*CLI, "toy-tokenizer", "-w", str(ws), "-o", str(tokenizer)]
            run([*command, "--vocab-size", "8000"], workdir / "toy-tokenizer.log")
    else:
        tokenizer = build_packaged(kind.removeprefix("mistral-"), WORK / kind)
    return ws, tokenizer


def build_packaged(version: str, cache: Path) -> Path:
    """A real Mistral tokenizer folder (mistral-common's files), built once into cache/tokenizer."""
    tokenizer = cache / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        print(f"building the Mistral {version} tokenizer folder...")
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / "tokenizer.partial"
        shutil.rmtree(partial, ignore_errors=True)
        command = [sys.executable, "-c", BUILD_MISTRAL, version, str(partial)]
        run(command, cache / "build.log")
        shutil.rmtree(tokenizer, ignore_errors=True)
        partial.rename(tokenizer)
    return tokenizer


def write_labeled(ws_root: Path) -> None:
    """A labeled stage from the clean one, by model attribution, without the `label` command."""
    import polars as pl

    sys.path.insert(0, str(ROOT))
    from sharegpt_tools.records import LABELED_SCHEMA
    from sharegpt_tools.workspace import (
        CONVERSATIONS,
        MANIFEST,
        Workspace,
        stage_manifest,
        write_json_atomic,
    )

    ws = Workspace(ws_root)
    clean = ws.require("clean")
    df = pl.read_parquet(ws.stage("clean") / CONVERSATIONS).with_row_index("_row")
    weights = (
        df.select(
            "_row", "refusal_turns", turn=pl.int_ranges(0, pl.col("conversations").list.len())
        )
        .explode("turn")
        .select(
            "_row",
            w=pl.when(pl.col("refusal_turns").list.contains(pl.col("turn")))
            .then(0.0)
            .otherwise(1.0)
            .cast(pl.Float32),
        )
        .group_by("_row", maintain_order=True)
        .agg(turn_weights=pl.col("w"))
    )
    gpt4 = pl.col("model") == "gpt-4"
    df = df.join(weights, on="_row").with_columns(
        pl.when(gpt4).then(pl.lit("gpt4")).otherwise(pl.lit("gpt35")).alias("class"),
        pl.when(gpt4).then(1.0).otherwise(0.1).cast(pl.Float32).alias("weight"),
        pl.when(gpt4).then(pl.lit("GPT4")).otherwise(pl.lit("GPT3")).alias("condition"),
    )
    table = df.drop("_row").to_arrow().select(LABELED_SCHEMA.names).cast(LABELED_SCHEMA)
    with ws.writing_stage("labeled") as out:
        import pyarrow.parquet as pq

        pq.write_table(table, out / CONVERSATIONS, compression="zstd")
        options = {"rules": "benchmark: gpt-4 → gpt4 (1.0, GPT4); else gpt35 (0.1, GPT3)"}
        manifest = stage_manifest("labeled", options, {"rows": table.num_rows}, {}, parent=clean)
        write_json_atomic(out / MANIFEST, manifest)


def bare(tokenizer: Path, ws: Path, log: Path) -> dict:
    parquet = ws / "labeled" / "conversations.parquet"
    measured = run([sys.executable, "-c", BARE, str(tokenizer), str(parquet), str(BATCH_ROWS)], log)
    result = json.loads(measured.pop("stdout"))
    return {
        **measured,
        **result,
        "tokens_per_s": result["tokens"] / result["encode_s"],
        "tokens_per_cpu_s": result["tokens"] / result["encode_cpu_s"],
    }


def git_commit() -> str:
    """HEAD's short hash, `+dirty` when the package measured (sharegpt_tools/) differs from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = (
        subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "sharegpt_tools"]).returncode != 0
    )
    return head.stdout.strip() + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="raw rows to generate")
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default="toy",
        help="toy: an 8000-token byte-level BPE trained here; mistral-v1: Mistral-7B's real one",
    )
    args = parser.parse_args()
    workdir = WORK / str(args.n)
    workdir.mkdir(parents=True, exist_ok=True)
    ws, tokenizer = prepare(args.n, workdir, args.tokenizer)
    tag = "" if args.tokenizer == "toy" else f"-{args.tokenizer}"

    print(f"bare encode_batch (1/2), tokenizer {args.tokenizer}...")
    before = bare(tokenizer, ws, workdir / f"bare-1{tag}.log")
    print("tokenize stage...")
    command = [*CLI, "tokenize", "--tokenizer", str(tokenizer), "-w", str(ws)]
    stage = run([*command, "--max-length", str(args.max_length)], workdir / f"tokenize{tag}.log")
    print("bare encode_batch (2/2)...")
    after = bare(tokenizer, ws, workdir / f"bare-2{tag}.log")
    manifest = json.loads((ws / "tokenized" / "manifest.json").read_text())

    content = manifest["counts"]["content_tokens"]
    bare_rate = (before["tokens_per_s"] + after["tokens_per_s"]) / 2
    stage_rate = content / manifest["timings"]["total_s"]
    wall_rate = content / stage["wall_s"]
    bare_cpu_rate = (before["tokens_per_cpu_s"] + after["tokens_per_cpu_s"]) / 2
    stage_cpu_rate = content / manifest["timings"]["cpu_s"]
    results = {
        "n_raw": args.n,
        "tokenizer": args.tokenizer,
        "tokenizer_path": str(tokenizer),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "conversations": manifest["counts"]["conversations_in"],
        "rows": manifest["counts"]["rows"],
        "content_tokens": content,
        "bare_tokens": before["tokens"],
        "output_tokens": manifest["counts"]["tokens"],
        "bare": [before, after],
        "stage": {**{k: v for k, v in stage.items() if k != "stdout"}, **manifest["timings"]},
        "bare_tokens_per_s": bare_rate,
        "stage_tokens_per_s": stage_rate,
        "stage_wall_tokens_per_s": wall_rate,
        "ratio": stage_rate / bare_rate,
        "ratio_wall": wall_rate / bare_rate,
        "bare_tokens_per_cpu_s": bare_cpu_rate,
        "stage_tokens_per_cpu_s": stage_cpu_rate,
        "ratio_cpu": stage_cpu_rate / bare_cpu_rate,
    }
    (WORK / f"results-{args.n}{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    if before["tokens"] != content:
        print(
            f"note: bare counted {before['tokens']:,} tokens, the stage {content:,} "
            f"({content / before['tokens'] - 1:+.2%}; its content pieces carry the space)"
        )

    bare_rss = max(before["peak_rss_mb"], after["peak_rss_mb"])

    def m(x: float) -> str:
        return f"{x / 1e6:.2f} M"

    print(
        f"\n{results['date']}, commit {results['commit']}, {results['machine']}; "
        f"--tokenizer {args.tokenizer}, "
        f"--max-length {args.max_length}\n"
    )
    print(
        "| tokenizer | raw rows | conversations | content tokens "
        "| bare encode_batch tok/s (before, after) "
        "| tokenize tok/s (stage total_s) | ratio | tokenize tok/s (wall) | ratio (wall) "
        "| peak RSS tokenize | peak RSS bare |"
    )
    print("|" + " --- |" * 11)
    print(
        f"| {args.tokenizer} | {args.n:,} | {results['conversations']:,} | {m(content)} "
        f"| {m(bare_rate)} ({m(before['tokens_per_s'])}, {m(after['tokens_per_s'])}) "
        f"| {m(stage_rate)} | {results['ratio']:.2f} | {m(wall_rate)} "
        f"| {results['ratio_wall']:.2f} | {stage['peak_rss_mb']:,.0f} MB | {bare_rss:,.0f} MB |"
    )
    print(
        f"\nper CPU-second (all threads; robust when other jobs share the cores): bare "
        f"{m(bare_cpu_rate)}, tokenize {m(stage_cpu_rate)}, ratio {results['ratio_cpu']:.2f}"
    )
    t = manifest["timings"]
    print(
        f"\nstage timings: load {t['load_s']:.1f} s, tokenize {t['tokenize_s']:.1f} s, "
        f"save {t['save_s']:.1f} s, total {t['total_s']:.1f} s (wall {stage['wall_s']:.1f} s), "
        f"CPU {t['cpu_s']:.1f} s; "
        f"goal ratio ≥ {GOAL_RATIO}: {'met' if results['ratio'] >= GOAL_RATIO else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
