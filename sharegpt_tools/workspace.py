"""Workspace stage folders, manifests, fingerprints and atomic writes.

A workspace (default `./data`) holds one folder per stage. A stage is written into a hidden
temporary folder beside its final place and renamed into place only when complete, so an
interrupted run leaves the previous stage intact and never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from sharegpt_tools import __version__

MANIFEST = "manifest.json"
CONVERSATIONS = "conversations.parquet"
REJECTS = "rejects.parquet"
# What a user runs to produce each stage: named in the error when a stage is missing.
PRODUCED_BY = {
    "clean": "sharegpt-tools clean RAW.json",
    "labeled": "sharegpt-tools label --rules paper",
    "subsampled": "sharegpt-tools subsample --class NAME --ratio R",
    "tokenized": "sharegpt-tools tokenize --tokenizer PATH",
}


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

    @contextmanager
    def writing_stage(self, name: str) -> Iterator[Path]:
        """Yield a temporary folder; on success it atomically replaces the stage folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.root))
        # mkdtemp makes the folder private (0700); a stage is ordinary data, readable as the
        # user's umask says, like every other folder they create.
        temp.chmod(0o777 & ~current_umask())
        try:
            yield temp
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        replace_dir(temp, self.stage(name))


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_dir(new: Path, final: Path) -> None:
    """Swap `new` into `final`: two renames, so `final` is always a complete stage."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
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
    **extra: object,
) -> dict:
    """The manifest every stage writes: what it read, how, what came out, how long it took.

    The fingerprint covers the parent's fingerprint (or the inputs' hashes), the options and the
    tool version, so a downstream stage can tell whether it was made from the current upstream.
    """
    origin = parent["fingerprint"] if parent else [i["sha256"] for i in inputs or []]
    return {
        "stage": stage,
        "tool": "sharegpt-tools",
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs or [],
        "options": options,
        "fingerprint": fingerprint({"origin": origin, "options": options, "v": __version__}),
        "parent": {"stage": parent["stage"], "fingerprint": parent["fingerprint"]}
        if parent
        else None,
        "counts": counts,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        **extra,
    }
