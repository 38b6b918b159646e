"""workspace: stages are written atomically, end up as ordinary folders, and what a killed run
leaves behind is cleared by the next run of that stage (never a live run's)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sharegpt_tools.stage_faults import WRITING_LOCK, own_start
from sharegpt_tools.workspace import Workspace


def test_a_stage_folder_gets_the_users_umask_not_mkdtemps_private_mode(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    previous = os.umask(0o022)
    try:
        with ws.writing_stage("clean") as out:
            (out / "conversations.parquet").write_bytes(b"")
    finally:
        os.umask(previous)
    assert ws.stage("clean").stat().st_mode & 0o777 == 0o755
    assert not list(ws.root.glob(".clean.tmp-*"))


# --- leftovers of killed runs ---------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped, as a killed run's is."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def leftover(root: Path, name: str, with_manifest: bool = False) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "conversations.parquet").write_bytes(b"partial")
    if with_manifest:
        (folder / "manifest.json").write_text('{"stage": "clean", "from": "old"}')
    return folder


def write_stage(ws: Workspace, text: str) -> None:
    with ws.writing_stage("clean") as out:
        (out / "manifest.json").write_text(text)


def test_the_next_run_removes_what_killed_runs_left(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    write_stage(ws, "{}")
    pid = dead_pid()
    killed = leftover(ws.root, f".clean.tmp-{pid}-12345-abcd1234")
    (killed / WRITING_LOCK).write_bytes(b"")  # its lock file, but nobody holds the lock any more
    older_version = leftover(ws.root, ".clean.tmp-k2j4h5g6")  # a name without pid
    moved_aside = leftover(ws.root, f".clean.old-{pid}-12345", with_manifest=True)
    other_stage = leftover(ws.root, f".labeled.tmp-{pid}-12345-abcd1234")
    write_stage(ws, '{"new": true}')
    assert not killed.exists() and not older_version.exists() and not moved_aside.exists()
    assert other_stage.exists()  # cleared by the next run of its own stage, not this one
    assert sorted(p.name for p in ws.root.iterdir()) == [other_stage.name, "clean"]
    assert ws.manifest("clean") == {"new": True}


def test_a_live_runs_temporary_folder_is_kept(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    # Held lock, owner not running here (another machine sharing the folder, say): kept.
    locked = leftover(ws.root, f".clean.tmp-{dead_pid()}-12345-abcd1234")
    holder = os.open(locked / WRITING_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    # Owner running (this process: pid and start time match), lock not taken yet: kept.
    starting = leftover(ws.root, f".clean.tmp-{os.getpid()}-{own_start()}-efgh5678")
    try:
        write_stage(ws, "{}")
        assert locked.exists() and starting.exists()
    finally:
        os.close(holder)
    shutil.rmtree(starting)
    write_stage(ws, "{}")
    assert not locked.exists()  # the lock is free and its owner gone: stale now


def test_the_stage_a_killed_swap_moved_aside_is_put_back(tmp_path: Path) -> None:
    """Killed between the two renames of replace_dir: clean/ is missing and .clean.old-* holds
    the last complete stage. The next run restores it, so even a failing run leaves it valid."""
    ws = Workspace(tmp_path / "ws")
    leftover(ws.root, f".clean.old-{dead_pid()}-12345", with_manifest=True)
    with pytest.raises(RuntimeError), ws.writing_stage("clean"):
        raise RuntimeError("this run fails too")
    assert ws.manifest("clean") == {"stage": "clean", "from": "old"}
    assert [p.name for p in ws.root.iterdir()] == ["clean"]


def test_a_finished_stage_holds_no_lock_file(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    write_stage(ws, "{}")
    write_stage(ws, "{}")  # the second replaces the first through .clean.old-*
    assert sorted(p.name for p in ws.stage("clean").iterdir()) == ["manifest.json"]
    assert [p.name for p in ws.root.iterdir()] == ["clean"]
