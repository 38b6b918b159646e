"""Workspace stage folders, manifests, fingerprints and atomic writes.

A workspace (default `./data`) holds one folder per stage. A stage is written into a hidden
temporary folder beside its final place and renamed into place only when complete, so an
interrupted run leaves the previous stage intact and never a half-written one.

Faults while a stage is written end the same way: the temporary folder is removed and the previous
stage stays as it was. SIGTERM unwinds like Ctrl-C (exit 143); a full disk becomes one StageError
line naming the file and the space needed. What a killed process (SIGKILL, power loss) leaves
behind — `.{stage}.tmp-*` and `.{stage}.old-*` folders — is cleared by the next run of that stage,
never while the run that owns it is alive: the owner's pid and start time are in the name, and the
owner holds a lock inside its temporary folder while it writes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import orjson

from sharegpt_tools import __version__

MANIFEST = "manifest.json"
CONVERSATIONS = "conversations.parquet"
REJECTS = "rejects.parquet"
# Held (flock) inside a temporary stage folder while it is written; removed before the rename.
WRITING_LOCK = ".writing.lock"
# What a user runs to produce each stage: named in the error when a stage is missing.
PRODUCED_BY = {
    "clean": "sharegpt-tools clean RAW.json",
    "labeled": "sharegpt-tools label --rules paper",
    "subsampled": "sharegpt-tools subsample --class NAME --ratio R",
    "tokenized": "sharegpt-tools tokenize --tokenizer PATH",
}
# Stages always made from a stage of the same workspace: subsample reads labeled/ and nothing
# else. (label -i and tokenize -i may read folders elsewhere, so their parents are not implied.)
UPSTREAM = {"subsampled": "labeled"}
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class StageError(Exception):
    """A stage that is missing, incomplete or stale: printed as one line, no traceback."""


class Terminated(SystemExit):
    """SIGTERM while a stage is written. A SystemExit, so it unwinds every `finally` and context
    manager like Ctrl-C does (partial stage removed, worker processes stopped) and then exits
    with the status a shell reports for SIGTERM, without a traceback."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root

    def stage(self, name: str) -> Path:
        return self.root / name

    def manifest(self, name: str) -> dict:
        path = self.stage(name) / MANIFEST
        return json.loads(path.read_text(encoding="utf-8"))

    def require(self, name: str) -> dict:
        """The manifest of a stage that must exist, or a StageError saying how to make it."""
        path = self.stage(name) / MANIFEST
        if not path.is_file():
            raise StageError(
                f"{self.stage(name)} does not exist (or is incomplete): run "
                f"`{PRODUCED_BY.get(name, name)} -w {self.root}` first"
            )
        try:
            return self.manifest(name)
        except json.JSONDecodeError as exc:
            raise StageError(f"{path} is not valid JSON ({exc}): re-run that stage") from exc

    def require_current(self, name: str, parent: str | None = None) -> dict:
        """The manifest of stage `name`, refused when it was made from an older `parent` stage.

        The one staleness check every reader of a stage uses (tokenize, export), so that no
        reader quietly consumes what another refuses. `parent` defaults to UPSTREAM[name]; a
        stage without one is only required to exist.
        """
        parent = parent or UPSTREAM.get(name)
        if parent is None:
            return self.require(name)
        upstream = self.require(parent)
        folder = self.stage(name)
        if not (folder / MANIFEST).is_file():
            raise StageError(
                f"{folder} is incomplete (no {MANIFEST}): re-run "
                f"`{PRODUCED_BY.get(name, name)} -w {self.root}` or remove it"
            )
        manifest = self.require(name)
        made_from = (manifest.get("parent") or {}).get("fingerprint")
        if made_from != upstream.get("fingerprint"):
            raise StageError(
                f"{folder} is stale: made from {parent} fingerprint {made_from}, but {parent}/ is "
                f"now {upstream.get('fingerprint')}; re-run "
                f"`{PRODUCED_BY.get(name, name)} -w {self.root}` or remove {folder}"
            )
        return manifest

    @contextmanager
    def writing_stage(self, name: str, expected_bytes: int | None = None) -> Iterator[Path]:
        """Yield a temporary folder; on success it atomically replaces the stage folder.

        `expected_bytes` (say, the input's size) sizes the advice when the disk fills up.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.root, name)
        final = self.stage(name)
        try:
            temp = make_temp_stage(self.root, name)
        except OSError as exc:
            self.raise_if_disk_full(exc, self.root, final, expected_bytes, 0)
            raise
        lock = hold_writing_lock(temp)
        try:
            with sigterm_unwinds():
                yield temp
        except BaseException as exc:
            written, failed = folder_size(temp), failed_path(exc, temp)
            shutil.rmtree(temp, ignore_errors=True)
            release(lock)
            if isinstance(exc, Terminated | KeyboardInterrupt):
                print(f"{interruption(exc)}: {unchanged_note(final, temp)}", file=sys.stderr)
            self.raise_if_disk_full(exc, failed, final, expected_bytes, written)
            raise
        (temp / WRITING_LOCK).unlink(missing_ok=True)
        replace_dir(temp, final)
        release(lock)

    def raise_if_disk_full(
        self, exc: BaseException, failed: Path, final: Path, expected: int | None, written: int
    ) -> None:
        """A full disk or quota as one StageError line: where, how much is free, how much the
        stage needs. The previous stage is untouched by then (the rename never happened)."""
        if not is_disk_full(exc):
            return
        advice = self.space_advice(final, expected, written)
        raise StageError(
            f"{disk_full_reason(exc)} writing {failed}: {advice}; {unchanged_note(final)}"
        ) from exc

    def space_advice(self, final: Path, expected_bytes: int | None, written: int) -> str:
        """How much is free (after the partial stage is gone) against what the stage needs: the
        caller's estimate, else the size of the stage it replaces, else more than it wrote."""
        free = shutil.disk_usage(self.root).free
        advice = f"{human_bytes(free)} free in {self.root}"
        if expected_bytes:
            estimate, basis = expected_bytes, "its input's size"
        else:
            estimate, basis = folder_size(final) if final.is_dir() else 0, f"the size of {final}"
        if estimate > written:
            return advice + f", this stage needs about {human_bytes(estimate)} ({basis})"
        return advice + f", this stage needs more than the {human_bytes(written)} it had written"


# --- writing a stage: temporary folder, lock, signals, errors -------------------------------------


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


def remove_leftovers(root: Path, name: str) -> None:
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
        if not final.exists() and (old / MANIFEST).is_file():
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


def replace_dir(new: Path, final: Path) -> None:
    """Swap `new` into `final`: two renames, so `final` is always a complete stage.

    A process killed between the renames leaves the previous stage at `.{name}.old-…`;
    `remove_leftovers` puts it back.
    """
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{own_start()}")
        final.rename(old)
        new.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(final)


def write_json_atomic(path: Path, obj: object) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    os.replace(temp, path)


def fingerprint(obj: object) -> str:
    """A short stable hash of any JSON-able description (inputs, options, parent stage)."""
    data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]


def stage_manifest(
    stage: str,
    options: dict,
    counts: dict,
    timings: dict[str, float],
    parent: dict | None = None,
    inputs: list[dict] | None = None,
    execution_only: Collection[str] = (),
    **extra: object,
) -> dict:
    """The manifest every stage writes: what it read, how, what came out, how long it took.

    The fingerprint covers the parent's fingerprint (or the inputs' hashes), the options and the
    tool version, so a downstream stage can tell whether it was made from the current upstream.
    Options named in `execution_only` (worker count, chunk size: how the stage ran, not what it
    wrote) are recorded in `options` but left out of the fingerprint.
    """
    origin = parent["fingerprint"] if parent else [i["sha256"] for i in inputs or []]
    data_options = {k: v for k, v in options.items() if k not in execution_only}
    return {
        "stage": stage,
        "tool": "sharegpt-tools",
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs or [],
        "options": options,
        "fingerprint": fingerprint({"origin": origin, "options": data_options, "v": __version__}),
        "parent": {"stage": parent["stage"], "fingerprint": parent["fingerprint"]}
        if parent
        else None,
        "counts": counts,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        **extra,
    }
