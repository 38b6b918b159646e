"""What can go wrong while a stage is written, and what a killed run leaves behind.

`Workspace.writing_stage` uses these: the temporary folder names its owner (pid and start time)
and holds a lock while it is written, so the next run can tell a killed run's leftovers from a
live one's; SIGTERM unwinds like Ctrl-C; a full disk or quota is recognised behind the errors of
pyarrow and polars and sized for a one-line message.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# Held (flock) inside a temporary stage folder while it is written; removed before the rename.
WRITING_LOCK = ".writing.lock"
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class Terminated(SystemExit):
    """SIGTERM while a stage is written. A SystemExit, so it unwinds every `finally` and context
    manager like Ctrl-C does (partial stage removed, worker processes stopped) and then exits
    with the status a shell reports for SIGTERM, without a traceback."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def process_start(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc; None if gone.

    The start time tells a live owner from an unrelated process that got its pid later (pids are
    reused quickly, in containers especially).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", 0)
    fields = stat.rsplit(")", 1)[1].split()  # the name in (...) may contain spaces
    return fields[0], int(fields[19])


def own_start() -> int:
    found = process_start(os.getpid()) if Path("/proc/self/stat").exists() else None
    return found[1] if found else 0


def owner_running(pid: int | None, start: int | None) -> bool:
    """Whether the process that named a leftover folder is still running (not a zombie)."""
    if pid is None:
        return False
    if start is None and pid == os.getpid():
        return False  # an old-style name: this process never makes one
    if not Path("/proc/self/stat").exists():  # no /proc: all we can ask is whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    found = process_start(pid)
    if found is None or found[0] in ("Z", "X"):
        return False
    return not start or found[1] == start


def make_temp_stage(root: Path, name: str) -> Path:
    """`.{name}.tmp-{pid}-{start}-XXXXXXXX`: the owner is in the name, for `remove_leftovers`."""
    temp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-{own_start()}-", dir=root))
    # mkdtemp makes the folder private (0700); a stage is ordinary data, readable as the
    # user's umask says, like every other folder they create.
    temp.chmod(0o777 & ~current_umask())
    return temp


def hold_writing_lock(temp: Path) -> int | None:
    """An exclusive flock inside `temp`, held while it is written: another run sees it is live
    even from another machine sharing the folder, where the pid in the name means nothing."""
    try:
        fd = os.open(temp / WRITING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None  # say, a full disk: the write that follows reports it
    # A filesystem without flock: the pid and start time in the name still count.
    with suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def release(lock: int | None) -> None:
    if lock is not None:
        os.close(lock)


def writing_lock_free(temp: Path) -> bool:
    """Whether nobody holds `temp`'s writing lock (True when there is no lock file)."""
    try:
        fd = os.open(temp / WRITING_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # cannot tell: keep it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


TEMP_OWNER = re.compile(r"\.tmp-(\d+)-(\d+)-[^-]+$")
OLD_OWNER = re.compile(r"\.old-(\d+)(?:-(\d+))?$")


def owner_of(folder: Path, pattern: re.Pattern[str]) -> tuple[int | None, int | None]:
    """(pid, start) from a leftover's name; (None, None) for a name without them."""
    match = pattern.search(folder.name)
    if not match:
        return None, None
    pid, start = match.groups()
    return int(pid), int(start) if start is not None else None


def remove_leftovers(root: Path, name: str, complete_marker: str) -> None:
    """Clear what killed runs of stage `name` left: unfinished `.{name}.tmp-*` folders, and
    `.{name}.old-*` (the previous stage, moved aside by `replace_dir`). Folders of a live run are
    kept. When a run died between the two renames of `replace_dir`, the stage folder is missing
    and the old one is the last complete stage: it is put back, so the previous stage stays
    valid even if this run fails too."""
    for temp in sorted(root.glob(f".{name}.tmp-*")):
        if is_stale_temp(temp):
            shutil.rmtree(temp, ignore_errors=True)
    final = root / name
    for old in sorted(root.glob(f".{name}.old-*"), key=modified, reverse=True):
        if not old.is_dir() or owner_running(*owner_of(old, OLD_OWNER)):
            continue
        if not final.exists() and (old / complete_marker).is_file():
            old.rename(final)  # the newest complete one, as the stage's last state
        else:
            shutil.rmtree(old, ignore_errors=True)


def is_stale_temp(temp: Path) -> bool:
    """Nobody holds its lock and the process named in it is gone: nobody will finish it."""
    if not temp.is_dir() or not writing_lock_free(temp):
        return False
    return not owner_running(*owner_of(temp, TEMP_OWNER))


def modified(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While a stage is written, SIGTERM raises Terminated in the main thread instead of ending
    the process on the spot, which would leave the temporary folder and the worker processes
    behind. A handler someone else installed is left alone, and so is a non-main thread (Python
    only runs handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the end of the block, then act as they would have.

    For starting a worker process: `spawn` creates the child, then writes its start-up data to
    it; an exception raised by a signal between the two leaves the child reading a closed pipe,
    and it dies with an `EOFError` traceback on the user's terminal. In the main thread only
    (Python runs handlers nowhere else).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    deferred = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda s, _: caught.append(s)) for signum in deferred}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            if callable(previous[signum]):
                previous[signum](signum, None)  # raises KeyboardInterrupt or Terminated
            elif previous[signum] == signal.SIG_DFL:
                signal.raise_signal(signum)


def interruption(exc: BaseException) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"


def unchanged_note(final: Path, removed: Path | None = None) -> str:
    gone = f"removed the unfinished {removed}; " if removed else ""
    kept = f"{final} is unchanged" if final.exists() else f"no {final} was written"
    return gone + kept


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from or during (libraries wrap OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def disk_full_errno(exc: BaseException) -> int | None:
    """ENOSPC/EDQUOT behind an exception: OSError's errno, or the OS message in the text of a
    library's own error (polars raises ComputeError "... No space left on device (os error 28)")."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
            return cause.errno
        text = str(cause)
        for number in DISK_FULL_ERRNOS:
            if os.strerror(number) in text or f"os error {number})" in text:
                return number
    return None


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and disk_full_errno(exc) is not None


def disk_full_reason(exc: BaseException) -> str:
    return (
        "disk quota exceeded" if disk_full_errno(exc) == errno.EDQUOT else "no space left on device"
    )


def failed_path(exc: BaseException, temp: Path) -> Path:
    """The file a write failed on: the exception's filename, else the file in `temp` written last
    (pyarrow and polars do not say which file), else `temp` itself."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and cause.filename:
            return Path(cause.filename)
    files = [p for p in temp.rglob("*") if p.is_file() and p.name != WRITING_LOCK]
    if not files:
        return temp
    return max(files, key=lambda p: p.stat().st_mtime_ns)


def folder_size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue  # removed while we looked
    return total


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
