"""The mixed-quality benchmark: the OpenChat paper's ablations in miniature, on a 2-core CPU.

Every variant goes through the real tool chain, as a user would run it:
  task.py (raw ShareGPT JSON) → sharegpt-tools clean → label (a shipped rules file) → subsample →
  toy-tokenizer (byte level) / tokenize → crlft-train (tiny Llama from a config, Hugging Face
  snapshots every few steps) → greedy generation with the run's chat template → exact match on
  held-out prompts (and crlft-eval's condition gap for conditioned variants).

Variants (paper Table 2, Fig. 5, 6, 7):
  c-rlft            conditions + weights 1 / 0.1            (the paper preset)
  no-reward         conditions, weights 1 / 1                (preset no-reward)
  no-condition      no tags, weights 1 / 0.1                 (preset no-condition)
  sft               one class, no tags                       (preset sft)
  only-expert       GPT-4 rows only                          (preset paper, subsample gpt35 0)
  only-sub-optimal  GPT-3.5 rows only                        (preset paper, subsample gpt4 0)
  Fig. 5: the c-rlft model prompted with the sub-optimal tag (GPT3) as well as the expert one;
  Fig. 6: c-rlft with gpt4 or gpt35 sub-sampled to 0.6 / 0.8;
  Fig. 7: c-rlft with the tag before the assistant only, or at the beginning.

The task (task.py) is reversing random lowercase words: 300 correct GPT-4 conversations and 6,000
GPT-3.5 ones, 70% of which double the answer's last letter ("olleh" → "ollehh"). Calibration runs
on this machine (0.4M-parameter Llama, ≤ 2,048 tokens per step) chose it:
- 2-digit addition (`--task add`) was still being learned at the end of the budget: every variant
  at 8-52%, moving by tens of points between neighbouring settings, so a table of noise;
- a peak lr of 3e-3 or 6e-3 learned more slowly than 1e-3;
- reversal with a mistake that swapped the answer's first two letters was learned, but whether
  the model used the tag to gate a mid-answer choice varied by seed (83% on one seed, 0.5% and
  22% on another, also with a wider model or smaller batches);
- with the mistake at the end of the answer (one token: stop, or repeat the last letter) C-RLFT
  converged on both seeds tried (98.5%, 99.5% by step 1,400; flat from step ~1,000).

Usage (repository root, the project's venv):
  python benchmarks/mixed_quality/run.py                 # the whole grid, 3 seeds
  python benchmarks/mixed_quality/run.py --quick         # a few minutes: fewer steps and variants
Results: benchmarks/.work/mixed_quality/<name>/results.json (or under --work), and with --report,
RESULTS.md + plots in benchmarks/mixed_quality/ (or --report-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from task import TaskSpec, graded, write  # noqa: E402

BIN = Path(sys.executable).parent
WORK = ROOT / "benchmarks" / ".work" / "mixed_quality"

# A ~0.4M-parameter Llama over a byte-level vocabulary: small enough for ~1 minute of training.
MODEL = {
    "model_type": "llama",
    "hidden_size": 96,
    "intermediate_size": 256,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
}


@dataclass(frozen=True)
class Variant:
    name: str
    figure: str
    rules: str = "paper"
    subsample: tuple[tuple[str, float], ...] = ()
    position: str = "before-speaker"
    extra_conditions: tuple[str, ...] = ()  # also prompted with these tags (Fig. 5)


VARIANTS = {
    v.name: v
    for v in (
        Variant("c-rlft", "Table 2", extra_conditions=("GPT3",)),
        Variant("no-reward", "Table 2", rules="no-reward", extra_conditions=("GPT3",)),
        Variant("no-condition", "Table 2", rules="no-condition"),
        Variant("sft", "Table 2", rules="sft"),
        Variant("only-expert", "Table 2", subsample=(("gpt35", 0.0),)),
        Variant("only-sub-optimal", "Table 2", subsample=(("gpt4", 0.0),)),
        Variant("gpt4-0.6", "Fig. 6", subsample=(("gpt4", 0.6),)),
        Variant("gpt4-0.8", "Fig. 6", subsample=(("gpt4", 0.8),)),
        Variant("gpt35-0.6", "Fig. 6", subsample=(("gpt35", 0.6),)),
        Variant("gpt35-0.8", "Fig. 6", subsample=(("gpt35", 0.8),)),
        Variant("before-assistant", "Fig. 7", position="before-assistant"),
        Variant("beginning", "Fig. 7", position="beginning"),
    )
}
QUICK_VARIANTS = ("c-rlft", "sft", "only-expert", "no-condition")


@dataclass(frozen=True)
class Settings:
    name: str
    task: TaskSpec
    steps: int = 1400
    export_every: int = 200
    batch_max_len: int = 2048
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = tuple(VARIANTS)
    jobs: int = 2
    model: dict = field(default_factory=lambda: dict(MODEL))
    root: Path = WORK

    @property
    def work(self) -> Path:
        return self.root / self.name


# --- the pipeline, stage by stage ----------------------------------------------------------------


def tool(*args: str | Path, log: Path) -> None:
    """Run one of the project's commands; its output goes to `log`, a failure stops the run."""
    command = [str(a) for a in args]
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed (exit {done.returncode}); see {log}")


def prepare_seed(settings: Settings, seed: int) -> Path:
    """Raw data, its clean stage and a byte-level tokenizer, shared by all variants of a seed."""
    base = settings.work / f"seed-{seed}" / "base"
    if (base / "tokenizer" / "tokenizer.json").is_file():
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    log = base / "pipeline.log"
    write(replace(settings.task, seed=seed), base / "raw.json", base / "eval.json")
    # Arithmetic prompts differ in a few characters: near-dedup would call them duplicates.
    tool(BIN / "sharegpt-tools", "clean", base / "raw.json", "-w", base, "--no-near-dedup",
         "--workers", "1", log=log)  # fmt: skip
    tool(BIN / "sharegpt-tools", "toy-tokenizer", "-w", base, "--vocab-size", "260",
         "-o", base / "tokenizer", log=log)  # fmt: skip
    return base


def prepare_variant(settings: Settings, seed: int, variant: Variant) -> Path:
    """A workspace holding the seed's clean stage, labeled and tokenized for `variant`."""
    base = prepare_seed(settings, seed)
    ws = settings.work / f"seed-{seed}" / variant.name / "data"
    if (ws / "tokenized" / "manifest.json").is_file():
        return ws
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    shutil.copytree(base / "clean", ws / "clean")
    log = ws.parent / "pipeline.log"
    tool(BIN / "sharegpt-tools", "label", "--rules", variant.rules, "-w", ws,
         log=log)  # fmt: skip
    if variant.subsample:
        pairs = [arg for name, ratio in variant.subsample for arg in ("--class", name,
                 "--ratio", str(ratio))]  # fmt: skip
        tool(BIN / "sharegpt-tools", "subsample", *pairs, "--seed", str(seed), "-w", ws, log=log)
    tool(BIN / "sharegpt-tools", "tokenize", "--tokenizer", base / "tokenizer", "--position",
         variant.position, "--max-length", "128", "--val-fraction", "0.05", "--seed", str(seed),
         "-w", ws, log=log)  # fmt: skip
    return ws


def train(settings: Settings, ws: Path, seed: int) -> tuple[Path, float | None, bool]:
    """(run folder, seconds its training took, reused). A finished run is reused, not retrained;
    its time is then the one recorded when it was trained (None if unknown)."""
    run = ws.parent / "run"
    timing = run / "timing.json"
    if (run / "final" / "config.json").is_file():
        took = json.loads(timing.read_text())["train_s"] if timing.is_file() else None
        return run, took, True
    started = time.perf_counter()
    shutil.rmtree(run, ignore_errors=True)
    model = ws.parent / "model.json"
    model.write_text(json.dumps(settings.model), encoding="utf-8")
    tool(BIN / "crlft-train", ws, "--output", run, "--model-config", model, "--fp32",
         "--epochs", "1000", "--max-steps", str(settings.steps),
         "--export-every", str(settings.export_every), "--batch-max-len",
         str(settings.batch_max_len), "--lr", str(settings.lr), "--seed", str(seed),
         "--eval-every", str(settings.steps), log=ws.parent / "train.log")  # fmt: skip
    took = time.perf_counter() - started
    timing.write_text(json.dumps({"train_s": took}), encoding="utf-8")
    return run, took, False


# --- evaluation ---------------------------------------------------------------------------------


def answers(folder: Path, prompts: list[str], condition: str | None) -> list[str]:
    """Greedy replies to each prompt with the model's chat template (batched, left-padded)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    extra = {} if condition is None else {"condition": condition}
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False, **extra
        )
        for p in prompts
    ]
    tokenizer.padding_side = "left"
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    new = output[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def accuracy(folder: Path, items: list[dict], condition: str | None) -> dict:
    replies = answers(folder, [item["prompt"] for item in items], condition)
    grades = [graded(reply, item) for reply, item in zip(replies, items, strict=True)]
    return {
        "accuracy": sum(g["correct"] for g in grades) / len(grades),
        "systematic_mistake": sum(g["systematic_mistake"] for g in grades) / len(grades),
        "example": {"prompt": items[0]["prompt"], "reply": replies[0]},
    }


def evaluate(run: Path, ws: Path, items: list[dict], variant: Variant) -> dict:
    """Accuracy of every snapshot (and final/) under the expert tag and the extra ones."""
    from crlft_train.condition_eval import evaluate_conditions

    folders = sorted((run / "snapshots").glob("step-*"), key=lambda p: int(p.name[5:]))
    conditions: list[str | None] = [None, *variant.extra_conditions]  # None: the expert default
    curve = {}
    for folder in folders:
        step = int(folder.name[5:])
        curve[step] = {c or "expert": accuracy(folder, items, c) for c in conditions}
    result = {"curve": curve, "final": curve[max(curve)] if curve else {}}
    if variant.extra_conditions:  # crlft-eval's class × condition table (needs two tags)
        table = evaluate_conditions(run, ws)
        result["condition_eval"] = table.to_json()
    return result


def job(settings: Settings, seed: int, variant_name: str) -> dict:
    """One (variant, seed): prepare, train, evaluate. Runs in a worker process, one thread."""
    import torch
    from transformers.utils import logging

    torch.set_num_threads(1)
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    variant = VARIANTS[variant_name]
    ws = prepare_variant(settings, seed, variant)
    items = json.loads((settings.work / f"seed-{seed}" / "base" / "eval.json").read_text())
    run, train_s, reused = train(settings, ws, seed)
    trained = time.perf_counter()
    result = evaluate(run, ws, items, variant)
    manifest = json.loads((ws / "tokenized" / "manifest.json").read_text())
    return {
        "variant": variant_name,
        "figure": variant.figure,
        "seed": seed,
        "train_rows": manifest["counts"].get("rows", {}),
        "train_s": train_s,  # None: reused from an earlier invocation that did not record it
        "reused": reused,
        "eval_s": time.perf_counter() - trained,
        **result,
    }


def run_grid(settings: Settings) -> list[dict]:
    settings.work.mkdir(parents=True, exist_ok=True)
    for seed in settings.seeds:  # the shared clean stage first, so jobs never race on it
        prepare_seed(settings, seed)
    pairs = [(seed, name) for name in settings.variants for seed in settings.seeds]
    env_threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    os.environ.update(env_threads)  # crlft-train subprocesses inherit one thread each
    results = []
    with ProcessPoolExecutor(settings.jobs) as pool:
        futures = [pool.submit(job, settings, seed, name) for seed, name in pairs]
        for future in futures:
            result = future.result()
            final = result["final"].get("expert", {})
            took = "reused" if result["reused"] else f"{result['train_s']:.0f} s"
            print(f"{result['variant']:>17} seed {result['seed']}: accuracy "
                  f"{final.get('accuracy', float('nan')):.1%} ({took})", flush=True)  # fmt: skip
            results.append(result)
    return results


# --- summary --------------------------------------------------------------------------------------


def fresh_grid_minutes(results: list[dict], jobs: int) -> float | None:
    """What the grid takes from scratch: Σ (training + evaluation) over runs / parallel jobs.

    Reused runs count with the training time recorded when they were trained (None if unknown).
    """
    if any(r["train_s"] is None for r in results):
        return None
    return sum(r["train_s"] + r["eval_s"] for r in results) / jobs / 60


def mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(results: list[dict]) -> dict[str, dict]:
    """Per variant and condition: mean ± standard deviation over seeds of the final accuracy."""
    out: dict[str, dict] = {}
    for result in results:
        entry = out.setdefault(result["variant"], {"figure": result["figure"], "by": {}})
        for condition, scores in result["final"].items():
            cell = entry["by"].setdefault(condition, {"accuracy": [], "systematic_mistake": []})
            cell["accuracy"].append(scores["accuracy"])
            cell["systematic_mistake"].append(scores["systematic_mistake"])
        gap = result.get("condition_eval", {}).get("condition_gap", {}).get("gpt4")
        if gap is not None:
            entry.setdefault("condition_gap", []).append(gap)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, variants and one seed")
    parser.add_argument("--name", help="results folder under benchmarks/.work/mixed_quality/")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-max-len", type=int, help="tokens per step")
    parser.add_argument("--task", choices=("reverse", "add"), help="the task (default: reverse)")
    parser.add_argument("--hidden", type=int, help="model width (default %(default)s)",
                        default=MODEL["hidden_size"])  # fmt: skip
    parser.add_argument("--layers", type=int, default=MODEL["num_hidden_layers"])
    parser.add_argument("--export-every", type=int)
    parser.add_argument("--expert", type=int, help="expert (GPT-4) conversations")
    parser.add_argument("--sub-optimal", type=int, help="sub-optimal (GPT-3.5) conversations")
    parser.add_argument("--held-out", type=int, help="evaluation prompts")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--work", type=Path, default=WORK, help="where runs and results go")
    parser.add_argument("--report", action="store_true", help="write RESULTS.md and the plots")
    parser.add_argument("--report-dir", type=Path, default=HERE, help="where --report writes")
    parser.add_argument("--note", help="a paragraph for RESULTS.md (e.g. how runs were reused)")
    args = parser.parse_args()
    settings = Settings(
        name="quick" if args.quick else "full", task=TaskSpec(), jobs=args.jobs, root=args.work
    )
    if args.quick:
        settings = replace(settings, steps=600, export_every=200, seeds=(0,),
                           variants=QUICK_VARIANTS)  # fmt: skip
    task = replace(
        settings.task,
        **{k: v for k, v in (("expert", args.expert), ("sub_optimal", args.sub_optimal),
                             ("held_out", args.held_out), ("kind", args.task)) if v is not None},
    )  # fmt: skip
    overrides = {
        "name": args.name, "seeds": tuple(args.seeds) if args.seeds else None,
        "variants": tuple(args.variants) if args.variants else None, "steps": args.steps,
        "export_every": args.export_every, "lr": args.lr, "batch_max_len": args.batch_max_len,
    }  # fmt: skip
    settings = replace(settings, task=task, **{k: v for k, v in overrides.items() if v})
    model = {**MODEL, "hidden_size": args.hidden, "intermediate_size": args.hidden * 8 // 3,
             "num_hidden_layers": args.layers}  # fmt: skip
    settings = replace(settings, model=model)
    started = time.perf_counter()
    results = run_grid(settings)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "command": shlex.join(["python", *sys.argv]),
        "wall_s": time.perf_counter() - started,
        "note": args.note,
        "settings": {**asdict(settings), "task": asdict(settings.task)},
        "fresh_grid_min": fresh_grid_minutes(results, settings.jobs),
        "summary": summary(results),
        "runs": results,
    }
    out = settings.work / "results.json"
    out.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    print(f"results: {out} ({record['wall_s'] / 60:.1f} min)")
    if args.report:
        from report import write_report

        print(f"report: {write_report(record, args.report_dir)}")


if __name__ == "__main__":
    main()
