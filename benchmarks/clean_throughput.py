"""Throughput and memory of `sharegpt-tools clean` against FastChat's classic ShareGPT cleaner.

What is measured, per input size N (rows of a synthetic raw dump from `sharegpt-tools sample`):

* `sharegpt-tools clean RAW -w WS` with its default options (HTML → Markdown, structure checks,
  exact + near dedup, language ID, model attribution, refusal marking; one worker process per
  core). Throughput = N input rows / wall seconds of the whole command (interpreter start-up and
  imports included). The stage timings (`read_and_clean_s`, `near_dedup_s`, `total_s`) come from
  the run's manifest.json.
* `python -m fastchat.data.clean_sharegpt --in-file FILTERED --out-file OUT` (fschat 0.2.36, in
  its own virtualenv under benchmarks/.work/, since FastChat is no dependency of the project).
  FastChat's cleaner dies on the first malformed row (a non-object row, a null value...), so it
  is timed on a filtered copy of the same dump holding only the well-formed rows; its throughput
  is those rows / its wall seconds. Writing the filtered copy is not timed.

Each command runs as a child process measured from outside:

* wall seconds: perf_counter around the child's whole life;
* peak RSS of the main process: the last VmHWM read from /proc/PID/status (sampled);
* peak RSS and PSS of the process tree: the largest sum over the main process and all its
  descendants (both tools use worker processes), sampled from /proc every 0.2 s (PSS less often
  for a large tree, as reading it costs kernel time in proportion to the RSS). The RSS sum
  counts pages shared between processes (FastChat forks its workers after loading the whole
  file) once per process; the PSS sum splits them fairly;
* CPU seconds of the tree (wait4 rusage), and the CPU seconds that other processes on the
  machine used during the run (/proc/stat minus the tree and this sampler): on a shared 2-core
  machine, anything well above zero there means the run competed for the cores.

Usage (from the repository root, with the project's virtualenv):

    /work/venv/bin/python benchmarks/clean_throughput.py --sizes 20000 100000

It prints a plain table and then the same results as Markdown for benchmarks/README.md, and
writes everything measured to benchmarks/.work/results.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
FASTCHAT_VENV = WORK / "fastchat-venv"
FASTCHAT_PACKAGES = ["fschat==0.2.36", "markdownify", "beautifulsoup4", "tqdm"]
SAMPLE_EVERY_S = 0.2
PSS_KB_PER_SAMPLE = 256 * 1024  # smaps_rollup costs ~14 ms of kernel time per GB of RSS read
MB = 1024 * 1024

# Goals the README reports against.
GOAL_SPEEDUP = 8.0  # clean rows/s ≥ 8× FastChat rows/s at the largest size (issue 12: 100k)
GOAL_RSS_GROWTH = 1.5  # peak RSS at the largest size ≤ 1.5× the smallest size
GOAL_NEAR_DEDUP_GROWTH = 1.5  # near_dedup_s per row at the largest size ≤ 1.5× the smallest


# --- measuring a child process ---------------------------------------------------------------


@dataclass
class Measurement:
    """One child process run, measured from outside."""

    command: list[str]
    returncode: int
    wall_s: float
    main_peak_rss_mb: float  # VmHWM of the main process (sampled)
    tree_peak_rss_mb: float  # largest sampled Σ VmRSS over the process tree
    tree_peak_pss_mb: float  # largest sampled Σ Pss over the process tree
    max_processes: int  # most processes seen at once in the tree
    cpu_s: float  # user + system CPU seconds of the tree (wait4 rusage)
    other_cpu_s: float  # CPU seconds other processes used meanwhile (/proc/stat; sampler excluded)
    log: str


def read_status_kb(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    """Fields of /proc/PID/status in kB (VmRSS, VmHWM...); empty once the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in keys:
                    found[name] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return {}
    return found


def read_pss_kb(pid: int) -> int:
    """Proportional set size of a process from /proc/PID/smaps_rollup (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return 0


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, in USER_HZ ticks)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """The root pid and all its live descendants, from the parent pids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
                ppid = int(stat.read().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def measure(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> Measurement:
    """Run `command` to its end, sampling the memory of its process tree every 0.2 s."""
    main_hwm_kb = tree_rss_kb = tree_pss_kb = max_processes = samples = 0
    with open(log_path, "w") as log:
        busy_before, own_before = machine_busy_s(), time.process_time()
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree = process_tree(proc.pid)
            rss = [read_status_kb(p, ("VmRSS",)).get("VmRSS", 0) for p in tree]
            tree_rss_kb = max(tree_rss_kb, sum(rss))
            # PSS every sample for a small tree, every 4th per GB: its cost stays ~2% of a core.
            if samples % max(1, sum(rss) // PSS_KB_PER_SAMPLE) == 0:
                tree_pss_kb = max(tree_pss_kb, sum(read_pss_kb(p) for p in tree))
            main_hwm_kb = max(main_hwm_kb, read_status_kb(proc.pid, ("VmHWM",)).get("VmHWM", 0))
            max_processes = max(max_processes, sum(1 for kb in rss if kb))
            samples += 1
            time.sleep(SAMPLE_EVERY_S)
        wall_s = time.perf_counter() - started
        busy_s = machine_busy_s() - busy_before - (time.process_time() - own_before)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        command=command,
        returncode=proc.returncode,
        wall_s=wall_s,
        main_peak_rss_mb=main_hwm_kb / 1024,
        tree_peak_rss_mb=tree_rss_kb / 1024,
        tree_peak_pss_mb=tree_pss_kb / 1024,
        max_processes=max_processes,
        cpu_s=usage.ru_utime + usage.ru_stime,
        other_cpu_s=max(0.0, busy_s - usage.ru_utime - usage.ru_stime),
        log=str(log_path.relative_to(ROOT)),
    )


def source_state() -> dict[str, object]:
    """Which code `clean` ran: HEAD, files differing from it, and a hash of the package's sources.

    Others may edit the tree while a benchmark runs; comparing the hash before and after a run
    tells whether the measured code stayed the same.
    """
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "sharegpt_tools"], capture_output=True, text=True
    )
    digest = hashlib.sha256()
    for path in sorted((ROOT / "sharegpt_tools").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {
        "head": head.stdout.strip(),
        "dirty": [line[3:] for line in dirty.stdout.splitlines()],
        "sources_sha256": digest.hexdigest()[:16],
    }


# --- preparing the inputs and the peer --------------------------------------------------------


def run_checked(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def ensure_fastchat_venv() -> Path:
    """The FastChat virtualenv's python, created and filled on first use.

    fschat 0.2.36's own requirements do not include torch (only its model_worker extra does), so
    a plain install pulls no CUDA build; the check below makes sure it stayed that way.
    """
    python = FASTCHAT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import fastchat.data.clean_sharegpt"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    run_checked([sys.executable, "-m", "venv", "--clear", str(FASTCHAT_VENV)])
    run_checked([str(python), "-m", "pip", "install", "--quiet", *FASTCHAT_PACKAGES])
    run_checked(probe)
    has_torch = [str(python), "-c", "import importlib.util as u; print(bool(u.find_spec('torch')))"]
    if subprocess.run(has_torch, capture_output=True, text=True).stdout.strip() == "True":
        print("warning: torch was installed into the FastChat venv", file=sys.stderr)
    return python


def package_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    result = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def tool_path(name: str) -> str:
    """A console script of the interpreter running this benchmark (the project's venv)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found beside {sys.executable} nor on PATH")
    return found


def generate_raw(size: int, seed: int, reuse: bool) -> Path:
    raw = WORK / f"raw-{size}.json"
    if not (reuse and raw.exists()):
        command = [tool_path("sharegpt-tools"), "sample", "--n", str(size), "--seed", str(seed)]
        run_checked([*command, "-o", str(raw)])
    return raw


def is_well_formed(row: object) -> bool:
    """What FastChat's cleaner survives: an object with an id and a list of {from, value} turns
    whose values are strings."""
    if not isinstance(row, dict) or "id" not in row:
        return False
    turns = row.get("conversations")
    return isinstance(turns, list) and all(
        isinstance(turn, dict)
        and isinstance(turn.get("from"), str)
        and isinstance(turn.get("value"), str)
        for turn in turns
    )


def write_well_formed(raw: Path) -> tuple[Path, int, int]:
    """A copy of the raw JSON array with only the rows FastChat can read: (path, kept, total)."""
    rows = json.loads(raw.read_bytes())
    kept = [row for row in rows if is_well_formed(row)]
    filtered = raw.with_name(raw.stem + "-well-formed.json")
    filtered.write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    return filtered, len(kept), len(rows)


def write_well_formed_apart(raw: Path) -> tuple[Path, int, int]:
    """write_well_formed in a short-lived process, so that this sampler stays small.

    (It matters beyond tidiness: a child's ru_maxrss starts from the high-water mark of the
    process that forked it, so a bloated parent would also blur any rusage-based reading.)
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(write_well_formed, (raw,))


# --- one size ---------------------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    clean: Measurement
    clean_timings: dict[str, float]
    clean_counts: dict[str, int]
    code_before: dict[str, object]
    code_after: dict[str, object]
    fastchat_rows: int = 0
    fastchat: Measurement | None = None
    fastchat_kept: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def clean_rows_per_s(self) -> float:
        return self.size / self.clean.wall_s

    @property
    def fastchat_rows_per_s(self) -> float | None:
        if self.fastchat is None or self.fastchat.returncode != 0:
            return None
        return self.fastchat_rows / self.fastchat.wall_s

    @property
    def speedup(self) -> float | None:
        peer = self.fastchat_rows_per_s
        return self.clean_rows_per_s / peer if peer else None


def run_clean(size: int, raw: Path) -> tuple[Measurement, dict, dict]:
    workspace = WORK / f"ws-{size}"
    shutil.rmtree(workspace, ignore_errors=True)
    command = [tool_path("sharegpt-tools"), "clean", str(raw), "-w", str(workspace)]
    print("$", " ".join(command), flush=True)
    measured = measure(command, WORK / f"clean-{size}.log")
    manifest_path = workspace / "clean" / "manifest.json"
    if measured.returncode != 0 or not manifest_path.exists():
        print(f"clean failed (exit {measured.returncode}), see {measured.log}", file=sys.stderr)
        return measured, {}, {}
    manifest = json.loads(manifest_path.read_text())
    counts = {k: v for k, v in manifest["counts"].items() if isinstance(v, int)}
    return measured, manifest["timings"], counts


def run_fastchat(size: int, python: Path, filtered: Path) -> tuple[Measurement, int | None]:
    out = WORK / f"fastchat-{size}-out.json"
    out.unlink(missing_ok=True)
    command = [str(python), "-m", "fastchat.data.clean_sharegpt"]
    command += ["--in-file", str(filtered), "--out-file", str(out)]
    print("$", " ".join(command), flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    measured = measure(command, WORK / f"fastchat-{size}.log", env=env)
    if measured.returncode != 0:
        print(f"FastChat failed (exit {measured.returncode}), see {measured.log}", file=sys.stderr)
        return measured, None
    return measured, len(json.loads(out.read_bytes()))


def bench_size(size: int, seed: int, fastchat_python: Path | None, reuse: bool) -> SizeResult:
    raw = generate_raw(size, seed, reuse)
    before = source_state()
    clean, timings, counts = run_clean(size, raw)
    after = source_state()
    result = SizeResult(size, clean, timings, counts, code_before=before, code_after=after)
    if before["sources_sha256"] != after["sources_sha256"]:
        result.notes.append(
            f"sharegpt_tools sources changed during the clean run "
            f"({before['sources_sha256']} → {after['sources_sha256']}): numbers are suspect"
        )
    if fastchat_python is not None:
        filtered, kept, total = write_well_formed_apart(raw)
        result.fastchat_rows = kept
        result.notes.append(f"FastChat input: {kept:,} well-formed of {total:,} rows")
        result.fastchat, result.fastchat_kept = run_fastchat(size, fastchat_python, filtered)
    return result


def as_json(result: SizeResult) -> dict:
    derived = {
        "clean_rows_per_s": result.clean_rows_per_s,
        "fastchat_rows_per_s": result.fastchat_rows_per_s,
        "speedup": result.speedup,
    }
    return {**asdict(result), **derived}


# --- reporting --------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def cpu(m: Measurement) -> str:
    """The tree's CPU seconds, and what the rest of the machine used meanwhile (noise)."""
    return f"{m.cpu_s:,.0f} ({m.other_cpu_s:,.0f})"


def main_table(results: list[SizeResult]) -> tuple[list[str], list[list[str]]]:
    header = [
        "rows",
        "tool",
        "input rows",
        "kept",
        "wall s",
        "rows/s",
        "peak RSS main MB",
        "peak RSS tree MB (Σ)",
        "peak PSS tree MB (Σ)",
        "CPU s (other procs)",
        "CPU ms/row",
        "clean/FastChat rows/s",
    ]
    body = []
    for r in results:
        body.append(
            [
                f"{r.size:,}",
                "sharegpt-tools clean",
                f"{r.size:,}",
                f"{r.clean_counts.get('kept', 0):,}" if r.clean_counts else "failed",
                fmt(r.clean.wall_s),
                fmt(r.clean_rows_per_s, 0),
                fmt(r.clean.main_peak_rss_mb, 0),
                fmt(r.clean.tree_peak_rss_mb, 0),
                fmt(r.clean.tree_peak_pss_mb, 0),
                cpu(r.clean),
                fmt(r.clean.cpu_s / r.size * 1000, 2),
                f"**{fmt(r.speedup, 1)}×**" if r.speedup else "—",
            ]
        )
        if r.fastchat is not None:
            f = r.fastchat
            body.append(
                [
                    f"{r.size:,}",
                    "FastChat clean_sharegpt (well-formed rows only)",
                    f"{r.fastchat_rows:,}",
                    f"{r.fastchat_kept:,}" if r.fastchat_kept is not None else "failed",
                    fmt(f.wall_s),
                    fmt(r.fastchat_rows_per_s, 0),
                    fmt(f.main_peak_rss_mb, 0),
                    fmt(f.tree_peak_rss_mb, 0),
                    fmt(f.tree_peak_pss_mb, 0),
                    cpu(f),
                    fmt(f.cpu_s / r.fastchat_rows * 1000, 2) if r.fastchat_rows else "—",
                    "",
                ]
            )
    return header, body


def stage_table(results: list[SizeResult]) -> tuple[list[str], list[list[str]]]:
    header = [
        "rows",
        "read_and_clean_s",
        "near_dedup_s",
        "near_dedup µs/row",
        "total_s (manifest)",
        "wall s",
        "rows/s",
    ]
    body = []
    for r in results:
        t = r.clean_timings
        near = t.get("near_dedup_s")
        body.append(
            [
                f"{r.size:,}",
                fmt(t.get("read_and_clean_s"), 2),
                fmt(near, 2),
                fmt(near / r.size * 1e6 if near is not None else None, 1),
                fmt(t.get("total_s"), 2),
                fmt(r.clean.wall_s),
                fmt(r.clean_rows_per_s, 0),
            ]
        )
    return header, body


def goals(results: list[SizeResult]) -> list[tuple[str, str, bool | None]]:
    """(goal, what was measured, met?) for the three performance goals."""
    largest = results[-1]
    met = None if largest.speedup is None else largest.speedup >= GOAL_SPEEDUP
    seen = ", ".join(f"{r.size:,}: {fmt(r.speedup)}×" for r in results)
    rows: list[tuple[str, str, bool | None]] = [
        (f"≥ {GOAL_SPEEDUP:g}× FastChat throughput at {largest.size:,} rows on 2 cores", seen, met)
    ]
    small, large = results[0], results[-1]
    if len(results) > 1 and small.clean_timings and large.clean_timings:
        rss = large.clean.main_peak_rss_mb / small.clean.main_peak_rss_mb
        tree = large.clean.tree_peak_rss_mb / small.clean.tree_peak_rss_mb
        rows.append(
            (
                f"peak RSS at {large.size:,} within {GOAL_RSS_GROWTH:g}× of {small.size:,}",
                f"main process {rss:.2f}×, process tree (Σ RSS) {tree:.2f}×",
                max(rss, tree) <= GOAL_RSS_GROWTH,
            )
        )
        per_row = [r.clean_timings["near_dedup_s"] / r.size for r in (small, large)]
        growth = per_row[1] / per_row[0] if per_row[0] else float("inf")
        rows.append(
            (
                f"near-dup cost near-linear (per-row cost grows ≤ {GOAL_NEAR_DEDUP_GROWTH:g}×)",
                f"near_dedup_s per row {growth:.2f}× from {small.size:,} to {large.size:,} rows; "
                f"rows/s {small.clean_rows_per_s:,.0f} → {large.clean_rows_per_s:,.0f}",
                growth <= GOAL_NEAR_DEDUP_GROWTH,
            )
        )
    return rows


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def plain(header: list[str], body: list[list[str]]) -> str:
    cells = [header, *[[c.replace("**", "") for c in row] for row in body]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    )


def report(results: list[SizeResult]) -> str:
    goal_rows = [
        [g, seen, {True: "met", False: "NOT met", None: "n/a"}[ok]]
        for g, seen, ok in goals(results)
    ]
    tables = [main_table(results), stage_table(results), (["goal", "measured", "met?"], goal_rows)]
    text = "\n\n".join(plain(*t) for t in tables)
    md = "\n\n".join(markdown(*t) for t in tables)
    notes = "\n".join(f"- {r.size:,} rows: {note}" for r in results for note in r.notes)
    return f"{text}\n\n{notes}\n\n--- Markdown ---\n\n{md}\n\n{notes}\n"


# --- entry point ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "load_avg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-fastchat", action="store_true", help="Time only our cleaner.")
    parser.add_argument(
        "--reuse-raw", action="store_true", help="Keep benchmarks/.work/raw-N.json if present."
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    info = machine()
    fastchat_python = None if args.skip_fastchat else ensure_fastchat_venv()
    versions = {"sharegpt-tools": package_versions(Path(sys.executable), ["sharegpt-tools"])}
    if fastchat_python is not None:
        names = ["fschat", "markdownify", "beautifulsoup4", "tqdm"]
        versions["fastchat-venv"] = package_versions(fastchat_python, names)
    results = [
        bench_size(size, args.seed, fastchat_python, args.reuse_raw) for size in sorted(args.sizes)
    ]
    info["load_avg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    (WORK / "results.json").write_text(
        json.dumps(
            {"machine": info, "versions": versions, "results": [as_json(r) for r in results]},
            indent=2,
        )
    )
    print()
    print(json.dumps({"machine": info, "versions": versions}, indent=2))
    print()
    print(report(results))


if __name__ == "__main__":
    main()
