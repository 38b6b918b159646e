"""Where `sharegpt-tools clean` spends its time: cProfile of one in-process run.

`clean` normally hands rows to worker processes, which cProfile in the main process cannot see,
so this runs it with `--workers 1` (the same per-row code, in the main process) on a sample of N
rows and prints the functions with the most own time and the most cumulative time.

    .venv/bin/python benchmarks/profile_clean.py --n 5000

The raw sample and the profile stay in benchmarks/.work/ (profile-N.pstats, for snakeviz & co.).

cProfile's per-call overhead inflates Python-heavy code (the HTML renderer) against C code
(fastText, orjson, numpy). `--stages` measures instead, without a profiler, the wall time per row
of each step a worker runs on its chunks (best of `--repeat` passes over the same rows):

    .venv/bin/python benchmarks/profile_clean.py --n 5000 --stages
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"


def sample(n: int, seed: int) -> Path:
    raw = WORK / f"raw-{n}.json"
    if not raw.exists():
        tool = Path(sys.executable).parent / "sharegpt-tools"
        command = [str(tool), "sample", "--n", str(n), "--seed", str(seed), "-o", str(raw)]
        subprocess.run(command, check=True)
    return raw


def profile_clean(raw: Path, workspace: Path) -> cProfile.Profile:
    from sharegpt_tools.cli.main import app

    shutil.rmtree(workspace, ignore_errors=True)
    args = ["clean", str(raw), "-w", str(workspace), "--workers", "1"]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        app(args, standalone_mode=False)
    finally:
        profiler.disable()
    return profiler


def top(profiler: cProfile.Profile, sort: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort)
    stats.print_stats(limit)
    return out.getvalue()


def stage_costs(raw: Path, repeat: int) -> dict[str, float]:
    """µs per input row of each worker step, over chunks of the default batch size."""
    from sharegpt_tools.clean import steps
    from sharegpt_tools.clean.options import CleanOptions
    from sharegpt_tools.io.readers import RowReader

    options = CleanOptions()
    cleaner = steps.RowCleaner(options)
    rows = list(RowReader([raw]))
    chunks = [rows[i : i + options.batch_size] for i in range(0, len(rows), options.batch_size)]
    html_seconds = [0.0]
    convert = steps.html.convert_assistant_value

    def timed_convert(value: str) -> object:
        started = time.perf_counter()
        try:
            return convert(value)
        finally:
            html_seconds[0] += time.perf_counter() - started

    best: dict[str, float] = {}
    steps.html.convert_assistant_value = timed_convert  # type: ignore[assignment]
    try:
        for _ in range(repeat):
            html_seconds[0] = 0.0
            spent = dict.fromkeys(("prepare", "language", "dedup keys", "Arrow batches"), 0.0)
            for chunk in chunks:
                started = time.perf_counter()
                outcomes = [cleaner._prepare(raw_row) for raw_row in chunk]
                spent["prepare"] += time.perf_counter() - started
                for name, step, kept_only in (
                    ("language", cleaner._add_languages, True),
                    ("dedup keys", cleaner._add_dedup_keys, True),
                    ("Arrow batches", arrow_batches, False),
                ):
                    rows_in = [o for o in outcomes if o.reason is None] if kept_only else outcomes
                    started = time.perf_counter()
                    step(rows_in)
                    spent[name] += time.perf_counter() - started
            spent["  of prepare: HTML → Markdown"] = html_seconds[0]
            for name, seconds in spent.items():
                best[name] = min(best.get(name, float("inf")), seconds / len(rows) * 1e6)
    finally:
        steps.html.convert_assistant_value = convert  # type: ignore[assignment]
    return best


def arrow_batches(outcomes: list) -> None:
    from sharegpt_tools.clean import batches

    batches.candidates_batch([o for o in outcomes if o.reason is None])
    batches.rejects_batch([o for o in outcomes if o.reason is not None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--stages", action="store_true", help="µs per row of each worker step")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.stages:
        costs = stage_costs(sample(args.n, args.seed), args.repeat)
        total = sum(v for k, v in costs.items() if not k.startswith(" "))
        print(f"worker steps, µs per input row (best of {args.repeat}, {args.n:,} rows):")
        for name, micros in costs.items():
            print(f"  {name:32s} {micros:7.0f}")
        print(f"  {'total':32s} {total:7.0f}")
        return
    profiler = profile_clean(sample(args.n, args.seed), WORK / f"ws-profile-{args.n}")
    profiler.dump_stats(WORK / f"profile-{args.n}.pstats")
    print(top(profiler, "tottime", args.limit))
    print(top(profiler, "cumulative", args.limit))


if __name__ == "__main__":
    main()
