"""Where `sharegpt-tools clean` spends its time: cProfile of one in-process run.

`clean` normally hands rows to worker processes, which cProfile in the main process cannot see,
so this runs it with `--workers 1` (the same per-row code, in the main process) on a sample of N
rows and prints the functions with the most own time and the most cumulative time.

    /work/venv/bin/python benchmarks/profile_clean.py --n 5000

The raw sample and the profile stay in benchmarks/.work/ (profile-N.pstats, for snakeviz & co.).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=25)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    profiler = profile_clean(sample(args.n, args.seed), WORK / f"ws-profile-{args.n}")
    profiler.dump_stats(WORK / f"profile-{args.n}.pstats")
    print(top(profiler, "tottime", args.limit))
    print(top(profiler, "cumulative", args.limit))


if __name__ == "__main__":
    main()
