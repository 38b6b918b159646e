"""Workspace stage folders, manifests, fingerprints and atomic writes.

A workspace (default `./data`) holds one folder per stage. A stage is written into a hidden
temporary folder beside its final place and renamed into place only when complete, so an
interrupted run leaves the previous stage intact and never a half-written one.

Faults while a stage is written end the same way (the helpers are in stage_faults.py): the
temporary folder is removed and the previous stage stays as it was. SIGTERM unwinds like Ctrl-C
(exit 143); a full disk becomes one StageError line naming the file and the space needed. What a
killed process (SIGKILL, power loss) leaves behind — `.{stage}.tmp-*` and `.{stage}.old-*`
folders — is cleared by the next run of that stage, never while the run that owns it is alive:
the owner's pid and start time are in the name, and the owner holds a lock inside its temporary
folder while it writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from crlft_contract import MANIFEST_FILE
from sharegpt_tools import __version__
from sharegpt_tools.stage_faults import (
    WRITING_LOCK,
    Terminated,
    disk_full_reason,
    failed_path,
    folder_size,
    hold_writing_lock,
    human_bytes,
    interruption,
    is_disk_full,
    make_temp_stage,
    own_start,
    release,
    remove_leftovers,
    sigterm_unwinds,
    unchanged_note,
)

MANIFEST = MANIFEST_FILE  # the contract's name, for every stage
CONVERSATIONS = "conversations.parquet"
REJECTS = "rejects.parquet"
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


class StageError(Exception):
    """A stage that is missing, incomplete or stale: printed as one line, no traceback."""


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
        remove_leftovers(self.root, name, MANIFEST)
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
