"""Faults while a stage is written: SIGTERM and SIGKILL of a real `clean`, and a full disk.

The signal tests run the real command in a subprocess with two worker processes and look at the
process table in /proc (no psutil needed); the disk-full tests send a stage's real writes to
/dev/full, whose every write fails with ENOSPC, as on a full disk.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tokenized_fixtures as fx
from tokenized_fixtures import labeled_row, write_stage
from typer.testing import CliRunner

from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.cli.main import app
from sharegpt_tools.tokenize.options import TokenizeOptions
from sharegpt_tools.tokenize.stage import run_tokenize
from sharegpt_tools.workspace import StageError, Workspace

toy_tokenizer = fx.toy_tokenizer  # the session fixture, shared with test_tokenization.py

LINUX_PROC = Path("/proc/self/stat").exists()
DEV_FULL = Path("/dev/full")
WAIT_S = 30  # generous: only a hang reaches it
EXIT_S = 10  # how long the workers may outlive the main process


# --- signals --------------------------------------------------------------------------------------


def process_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the name: [state, ppid, ...]; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


Process = tuple[int, str]  # pid and start time: a pid alone may be reused by another process


def running(process: Process) -> bool:
    fields = process_stat(process[0])
    # a zombie has exited; another start time is another process that got the pid later
    return fields is not None and fields[0] not in ("Z", "X") and fields[19] == process[1]


def children(pid: int) -> list[Process]:
    found = []
    for entry in Path("/proc").iterdir():
        fields = process_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            found.append((int(entry.name), fields[19]))
    return found


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough that `clean --workers 2` runs for seconds after its workers start."""
    from sharegpt_tools.synthetic.dump import write_sample

    path = tmp_path_factory.mktemp("raw") / "big.json"
    write_sample(path, n=6000, seed=1)
    return path


@dataclass
class CleanRun:
    process: subprocess.Popen
    workspace: Path
    helpers: list[Process]  # its children: two workers and the resource tracker
    stderr: Path


@pytest.fixture
def clean_run(big_raw: Path, tmp_path: Path) -> Iterator[CleanRun]:
    """A real `clean --workers 2` in a subprocess, once its workers exist and it is writing."""
    ws = tmp_path / "ws"
    command = [sys.executable, "-m", "sharegpt_tools", "clean", str(big_raw), "-w", str(ws)]
    stderr = tmp_path / "stderr.txt"
    # Files, not pipes: a worker that outlives the main process would hold a pipe open forever.
    with stderr.open("w") as err:
        process = subprocess.Popen([*command, "--workers", "2"], stdout=err, stderr=err)
    helpers: list[Process] = []
    try:
        # two workers + multiprocessing's resource tracker, all children of the main process
        wait_for(lambda: len(children(process.pid)) >= 3, WAIT_S, "the worker processes")
        wait_for(lambda: list(ws.glob(".clean.tmp-*")), WAIT_S, "the temporary stage")
        assert process.poll() is None, "clean finished before the test could signal it"
        helpers = children(process.pid)
        yield CleanRun(process, ws, helpers, stderr)
    finally:
        process.kill()
        process.wait()
        for pid, _ in filter(running, helpers):  # a failed test leaves no 160 MB orphans
            os.kill(pid, signal.SIGKILL)


def assert_helpers_exit(run: CleanRun) -> None:
    wait_for(lambda: not any(running(p) for p in run.helpers), EXIT_S, "the workers to exit")


@pytest.mark.skipif(not LINUX_PROC, reason="reads the process table in /proc")
def test_sigterm_cleans_up_like_ctrl_c(clean_run: CleanRun) -> None:
    clean_run.process.send_signal(signal.SIGTERM)
    assert clean_run.process.wait(timeout=WAIT_S) == 128 + signal.SIGTERM
    assert_helpers_exit(clean_run)
    ws = clean_run.workspace
    assert not list(ws.glob(".clean.tmp-*")) and not ws.joinpath("clean").exists()
    stderr = clean_run.stderr.read_text(encoding="utf-8")
    said = [line for line in stderr.splitlines() if "SIGTERM" in line]
    assert "Traceback" not in stderr
    assert len(said) == 1 and "removed the unfinished" in said[0], stderr


@pytest.mark.skipif(not LINUX_PROC, reason="reads the process table in /proc")
def test_sigkill_takes_the_workers_down_and_the_next_run_clears_the_temp_stage(
    clean_run: CleanRun, tmp_path: Path
) -> None:
    clean_run.process.kill()
    clean_run.process.wait(timeout=WAIT_S)  # reaped, as a shell would: its pid is gone
    # Nothing ran in the main process: only the workers' parent-death watch can end them (and,
    # once they are gone, the resource tracker sees its pipe close).
    assert_helpers_exit(clean_run)
    ws = clean_run.workspace
    assert len(list(ws.glob(".clean.tmp-*"))) == 1  # nobody was left to remove it
    run_clean([tiny_raw(tmp_path)], Workspace(ws), TINY_CLEAN)  # the next run does
    assert sorted(p.name for p in ws.iterdir()) == ["clean"]


# --- a full disk ----------------------------------------------------------------------------------

TINY_CLEAN = CleanOptions(workers=1, lang_backend="none")


def tiny_raw(folder: Path) -> Path:
    path = folder / "tiny.json"
    turns = [{"from": "human", "value": "Hi there?"}, {"from": "gpt", "value": "Hello, friend."}]
    path.write_text(json.dumps([{"id": "a", "conversations": turns}]), encoding="utf-8")
    return path


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """full_disk(name, ...): in temporary stage folders made from now on, those files are
    /dev/full, so the stage's own writes to them (pyarrow, polars, plain Python) fail with
    ENOSPC."""
    if not DEV_FULL.exists():
        pytest.skip("needs /dev/full")

    def plant(*names: str) -> None:
        make = tempfile.mkdtemp

        def mkdtemp_on_full_disk(*args: Any, **kwargs: Any) -> str:
            temp = Path(make(*args, **kwargs))
            if re.match(r"\.\w+\.tmp-", temp.name):  # a temporary stage folder, nothing else
                for file in names:
                    (temp / file).symlink_to(DEV_FULL)
            return str(temp)

        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_on_full_disk)

    return plant


def assert_disk_full_line(message: str, stage: str) -> None:
    assert message.startswith("no space left on device writing ")
    assert f".{stage}.tmp-" in message and " free in " in message
    assert message.endswith(" is unchanged") and "\n" not in message.strip()


def stage_snapshot(ws: Workspace, name: str) -> dict[str, bytes]:
    folder = ws.stage(name)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_clean_on_a_full_disk(tmp_path: Path, full_disk: Callable[..., None]) -> None:
    ws = Workspace(tmp_path / "ws")
    raw = tiny_raw(tmp_path)
    run_clean([raw], ws, TINY_CLEAN)
    before = stage_snapshot(ws, "clean")
    full_disk("conversations.parquet")
    with pytest.raises(StageError) as error:
        run_clean([raw], ws, TINY_CLEAN)
    assert_disk_full_line(str(error.value), "clean")
    assert "this stage needs " in str(error.value)
    assert stage_snapshot(ws, "clean") == before
    assert [p.name for p in ws.root.iterdir()] == ["clean"]
    # and the command says it in one line, exit 2, not a traceback
    args = ["clean", str(raw), "-w", str(ws.root), "--workers", "1", "--lang-backend", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "no space left on device writing" in result.output
    assert stage_snapshot(ws, "clean") == before


RULES = """\
classes:
  - {name: gpt4, weight: 1.0, condition: GPT4, match: {model: gpt-4}}
  - {name: rest, weight: 0.1, condition: GPT3}
"""


def test_label_on_a_full_disk_is_one_line(tmp_path: Path, full_disk: Callable[..., None]) -> None:
    ws = Workspace(tmp_path / "ws")
    run_clean([tiny_raw(tmp_path)], ws, TINY_CLEAN)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    args = ["label", "--rules", str(rules), "-w", str(ws.root)]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = stage_snapshot(ws, "labeled")
    full_disk("conversations.parquet")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no space left on device writing" in result.output
    assert stage_snapshot(ws, "labeled") == before


def labeled_workspace(root: Path) -> Workspace:
    ws = Workspace(root / "ws")
    write_stage(ws, [labeled_row(f"c{i}", [("human", "Hi?"), ("gpt", "Hello.")]) for i in (1, 2)])
    return ws


def test_subsample_on_a_full_disk_is_one_line(
    tmp_path: Path, full_disk: Callable[..., None]
) -> None:
    ws = labeled_workspace(tmp_path)
    args = ["subsample", "--class", "gpt4", "--ratio", "0.5", "-w", str(ws.root)]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = stage_snapshot(ws, "subsampled")
    full_disk("conversations.parquet")  # polars writes it: its error only says "os error 28"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no space left on device writing" in result.output
    assert "this stage needs " in result.output
    assert stage_snapshot(ws, "subsampled") == before


def test_tokenize_on_a_full_disk(
    tmp_path: Path, toy_tokenizer: Path, full_disk: Callable[..., None]
) -> None:
    ws = labeled_workspace(tmp_path)
    options = TokenizeOptions(tokenizer=toy_tokenizer, val_fraction=0.0)
    run_tokenize(ws, options)
    before = stage_snapshot(ws, "tokenized")
    full_disk(".manifest.json.tmp")  # the last file the stage writes
    with pytest.raises(StageError) as error:
        run_tokenize(ws, options)
    assert_disk_full_line(str(error.value), "tokenized")
    assert stage_snapshot(ws, "tokenized") == before
    assert not list(ws.root.glob(".tokenized.*"))


DEFERRED = textwrap.dedent(
    """
    import os, signal
    from sharegpt_tools.stage_faults import Terminated, sigterm_unwinds, signals_deferred

    steps = []
    try:
        with sigterm_unwinds(), signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("after SIGTERM")
    except Terminated:
        steps.append("Terminated")
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after Ctrl-C")
    except KeyboardInterrupt:
        steps.append("KeyboardInterrupt")
    print(steps)
    """
)


def test_signals_wait_for_a_worker_to_be_started_then_act() -> None:
    """SIGTERM or Ctrl-C in the middle of starting a worker (between creating the process and
    handing it its start-up data) would leave it dying with an EOFError traceback."""
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        ["after SIGTERM", "Terminated", "after Ctrl-C", "KeyboardInterrupt"]
    )
